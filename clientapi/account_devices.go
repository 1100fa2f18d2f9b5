package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// maxDeleteDevices bounds one /delete_devices request.
const maxDeleteDevices = 1000

func (c *ClientAPI) getDevices(req *httputil.Request) (any, error) {
	resp, err := userapi.QueryDevices.Call(req.Context(), c.bus, &userapi.QueryDevicesRequest{UserID: req.Device.UserID})
	if err != nil {
		return nil, err
	}
	return map[string]any{"devices": resp.Devices}, nil
}

// device returns one of the requester's devices, or M_NOT_FOUND.
func (c *ClientAPI) device(req *httputil.Request) (*userapi.DeviceInfo, error) {
	deviceID := req.PathValue("deviceId")
	if deviceID == "" || len(deviceID) > 255 {
		return nil, mxerr.NotFound("no such device")
	}
	resp, err := userapi.QueryDevices.Call(req.Context(), c.bus, &userapi.QueryDevicesRequest{UserID: req.Device.UserID, DeviceID: deviceID})
	if err != nil {
		return nil, err
	}
	if len(resp.Devices) == 0 {
		return nil, mxerr.NotFound("no such device %s", deviceID)
	}
	return &resp.Devices[0], nil
}

func (c *ClientAPI) getDevice(req *httputil.Request) (any, error) {
	return c.device(req)
}

// putDevice renames a device; a body without display_name changes nothing.
func (c *ClientAPI) putDevice(req *httputil.Request) (any, error) {
	var body struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	dev, err := c.device(req)
	if err != nil {
		return nil, err
	}
	if body.DisplayName == nil {
		return struct{}{}, nil
	}
	if _, err := userapi.UpdateDevice.Call(req.Context(), c.bus, &userapi.UpdateDeviceRequest{
		UserID: req.Device.UserID, DeviceID: dev.DeviceID, DisplayName: *body.DisplayName,
	}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// deleteDevice logs a device out (the requester's own current one too),
// after user-interactive auth.
func (c *ClientAPI) deleteDevice(req *httputil.Request) (any, error) {
	var body struct {
		Auth *uiaAuth `json:"auth"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	dev, err := c.device(req)
	if err != nil {
		return nil, err
	}
	spec := uiaSpec{route: "DELETE /devices/" + dev.DeviceID, userID: req.Device.UserID, flows: passwordFlows}
	if _, err := c.authenticate(req, body.Auth, spec); err != nil {
		return nil, err
	}
	if _, err := userapi.DeleteDevices.Call(req.Context(), c.bus, &userapi.DeleteDevicesRequest{
		UserID: req.Device.UserID, DeviceIDs: []string{dev.DeviceID},
	}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) deleteDevices(req *httputil.Request) (any, error) {
	var body struct {
		Devices *[]string `json:"devices"`
		Auth    *uiaAuth  `json:"auth"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.Devices == nil {
		return nil, mxerr.MissingParam("devices is required")
	}
	if len(*body.Devices) > maxDeleteDevices {
		return nil, mxerr.InvalidParam("at most %d devices at once", maxDeleteDevices)
	}
	for _, d := range *body.Devices {
		if len(d) > 255 {
			return nil, mxerr.InvalidParam("device IDs are at most 255 bytes")
		}
	}
	spec := uiaSpec{route: "POST /delete_devices", userID: req.Device.UserID, flows: passwordFlows}
	if _, err := c.authenticate(req, body.Auth, spec); err != nil {
		return nil, err
	}
	if _, err := userapi.DeleteDevices.Call(req.Context(), c.bus, &userapi.DeleteDevicesRequest{
		UserID: req.Device.UserID, DeviceIDs: *body.Devices,
	}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
