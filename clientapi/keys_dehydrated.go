package clientapi

import (
	"encoding/json"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/syncapi"
	"github.com/chappe-matrix/chappe/userapi"
)

// Dehydrated devices (MSC3814, unstable): a user's one device kept on the
// server, encrypted by the client, that receives room keys while the user
// has no session. The userapi stores it and its keys; syncapi keeps its
// to-device messages, which a new session reads through /events.
// Clients find support by GET /dehydrated_device answering M_NOT_FOUND
// rather than M_UNRECOGNIZED (Synapse does not list it in /versions).
const msc3814 = "/_matrix/client/unstable/org.matrix.msc3814.v1"

// maxDehydratedEventsLimit bounds /events' limit parameter (syncapi
// answers at most its own batch size anyway).
const maxDehydratedEventsLimit = 1000

func (c *ClientAPI) putDehydratedDevice(req *httputil.Request) (any, error) {
	var body struct {
		DeviceID     string                     `json:"device_id"`
		DeviceData   json.RawMessage            `json:"device_data"`
		DisplayName  string                     `json:"initial_device_display_name"`
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	// The algorithm names the client's encryption of device_data; the
	// server only requires it to be there, as Synapse does.
	var data struct {
		Algorithm string `json:"algorithm"`
	}
	if len(body.DeviceData) == 0 || json.Unmarshal(body.DeviceData, &data) != nil || data.Algorithm == "" {
		return nil, mxerr.BadJSON("device_data must be an object with a string algorithm")
	}
	if len(body.DeviceKeys) == 0 || string(body.DeviceKeys) == "null" {
		return nil, mxerr.MissingParam("device_keys is required")
	}
	resp, err := userapi.DehydratedDevice.Call(req.Context(), c.bus, &userapi.DehydratedDeviceRequest{
		Op: userapi.DehydratedPut, UserID: req.Device.UserID, DeviceID: body.DeviceID, DeviceData: body.DeviceData,
		DisplayName: body.DisplayName, DeviceKeys: body.DeviceKeys, OneTimeKeys: body.OneTimeKeys, FallbackKeys: body.FallbackKeys,
	})
	if err != nil {
		return nil, err
	}
	c.purgeDehydrated(req, resp.Removed)
	return map[string]string{"device_id": resp.DeviceID}, nil
}

func (c *ClientAPI) getDehydratedDevice(req *httputil.Request) (any, error) {
	resp, err := userapi.DehydratedDevice.Call(req.Context(), c.bus, &userapi.DehydratedDeviceRequest{Op: userapi.DehydratedGet, UserID: req.Device.UserID})
	if err != nil {
		return nil, err
	}
	return map[string]any{"device_id": resp.DeviceID, "device_data": resp.DeviceData}, nil
}

func (c *ClientAPI) deleteDehydratedDevice(req *httputil.Request) (any, error) {
	resp, err := userapi.DehydratedDevice.Call(req.Context(), c.bus, &userapi.DehydratedDeviceRequest{Op: userapi.DehydratedDelete, UserID: req.Device.UserID})
	if err != nil {
		return nil, err
	}
	c.purgeDehydrated(req, resp.Removed)
	return map[string]string{"device_id": resp.DeviceID}, nil
}

// purgeDehydrated deletes the to-device messages of a dehydrated device
// that was replaced or deleted. The device is gone whatever happens here:
// a failure leaves unreadable rows behind, which is logged, not answered.
func (c *ClientAPI) purgeDehydrated(req *httputil.Request, deviceID string) {
	if deviceID == "" {
		return
	}
	if _, err := syncapi.DehydratedToDevice.Call(req.Context(), c.bus, &syncapi.DehydratedToDeviceRequest{
		UserID: req.Device.UserID, DeviceID: deviceID, Purge: true,
	}); err != nil {
		req.Log.Warn("to-device messages of a removed dehydrated device not deleted", "device_id", deviceID, "err", err)
	}
}

// dehydratedEvents is POST /dehydrated_device/{deviceId}/events: the
// dehydrated device's to-device messages after next_batch (a stream
// position), in batches. The last batch's next_batch gives an empty one.
func (c *ClientAPI) dehydratedEvents(req *httputil.Request) (any, error) {
	var body struct {
		NextBatch string `json:"next_batch"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	var since int64
	if body.NextBatch != "" {
		n, err := strconv.ParseInt(body.NextBatch, 10, 64)
		if err != nil || n < 0 {
			return nil, mxerr.InvalidParam("next_batch is not a token this server gave")
		}
		since = n
	}
	limit := 0
	if s := req.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDehydratedEventsLimit {
			return nil, mxerr.InvalidParam("limit must be 1 to %d", maxDehydratedEventsLimit)
		}
		limit = n
	}
	dd, err := userapi.DehydratedDevice.Call(req.Context(), c.bus, &userapi.DehydratedDeviceRequest{Op: userapi.DehydratedGet, UserID: req.Device.UserID})
	if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
		return nil, mxerr.Forbidden("you have no dehydrated device")
	}
	if err != nil {
		return nil, err
	}
	if dd.DeviceID != req.PathValue("deviceId") {
		return nil, mxerr.Forbidden("you may only read the messages of your dehydrated device")
	}
	resp, err := syncapi.DehydratedToDevice.Call(req.Context(), c.bus, &syncapi.DehydratedToDeviceRequest{
		UserID: req.Device.UserID, DeviceID: dd.DeviceID, Since: since, Limit: limit,
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"events": resp.Events, "next_batch": strconv.FormatInt(resp.Next, 10)}, nil
}
