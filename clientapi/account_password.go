package clientapi

import (
	"context"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// changePassword sets a new password after user-interactive auth. Unless
// logout_devices is false, every other device is logged out: a changed
// password usually means the old one leaked.
func (c *ClientAPI) changePassword(req *httputil.Request) (any, error) {
	var body struct {
		NewPassword   string   `json:"new_password"`
		LogoutDevices *bool    `json:"logout_devices"`
		Auth          *uiaAuth `json:"auth"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	// Checked before auth, so the user is not asked for a password in vain.
	if body.NewPassword == "" {
		return nil, mxerr.MissingParam("new_password is required")
	}
	if len(body.NewPassword) > userapi.MaxPasswordBytes {
		return nil, mxerr.InvalidParam("new_password is longer than %d bytes", userapi.MaxPasswordBytes)
	}
	spec := uiaSpec{route: "POST /account/password", userID: req.Device.UserID, flows: passwordFlows}
	if _, err := c.authenticate(req, body.Auth, spec); err != nil {
		return nil, err
	}
	logout := body.LogoutDevices == nil || *body.LogoutDevices
	if _, err := userapi.SetPassword.Call(req.Context(), c.bus, &userapi.SetPasswordRequest{
		UserID: req.Device.UserID, Password: body.NewPassword, LogoutDevices: logout, KeepDeviceID: req.Device.DeviceID,
	}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// deactivate closes the account after user-interactive auth: the user
// leaves every room (and declines invitations), then the account is
// deactivated (no more logins, every token revoked) and, with erase, its
// profile cleared.
func (c *ClientAPI) deactivate(req *httputil.Request) (any, error) {
	var body struct {
		Auth     *uiaAuth `json:"auth"`
		Erase    bool     `json:"erase"`
		IDServer string   `json:"id_server"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	userID := req.Device.UserID
	spec := uiaSpec{route: "POST /account/deactivate", userID: userID, flows: passwordFlows}
	if _, err := c.authenticate(req, body.Auth, spec); err != nil {
		return nil, err
	}
	// Past auth the operation must finish even if the client hangs up.
	ctx := context.WithoutCancel(req.Context())
	c.leaveAllRooms(ctx, req, userID)
	if _, err := userapi.Deactivate.Call(ctx, c.bus, &userapi.DeactivateRequest{UserID: userID, Erase: body.Erase}); err != nil {
		return nil, err
	}
	req.Log.Info("account deactivated by its user", "erase", body.Erase)
	// No identity server is ever bound: there is nothing to unbind.
	return map[string]string{"id_server_unbind_result": "no-support"}, nil
}

// leaveAllRooms leaves joined rooms, declines invitations and withdraws
// knocks. A room that refuses is logged and skipped: deactivation must
// not be blocked by one room.
func (c *ClientAPI) leaveAllRooms(ctx context.Context, req *httputil.Request, userID string) {
	rooms, err := roomserver.QueryRoomsOfUser.Call(ctx, c.bus, &roomserver.QueryRoomsOfUserRequest{
		UserID:      userID,
		Memberships: []string{roomserver.MembershipJoin, roomserver.MembershipInvite, roomserver.MembershipKnock},
	})
	if err != nil {
		req.Log.Warn("deactivation: rooms not left", "err", err)
		return
	}
	for _, room := range rooms.Rooms {
		if _, err := roomserver.Membership.Call(ctx, c.bus, &roomserver.MembershipRequest{
			Sender: userID, RoomID: room.RoomID, Target: userID, Membership: roomserver.MembershipLeave,
		}); err != nil {
			req.Log.Warn("deactivation: room not left", "room_id", room.RoomID, "err", err)
		}
	}
}

// threepids lists the account's third-party identifiers: Chappe binds
// none (3PID flows are not served).
func (c *ClientAPI) threepids(*httputil.Request) (any, error) {
	return map[string]any{"threepids": []any{}}, nil
}
