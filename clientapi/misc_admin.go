package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// The spec's server administration module: whois, suspension, locking.

const (
	flagSuspended = "suspended"
	flagLocked    = "locked"
)

// refuseSuspended stops the actions a suspended account may not take
// (sending, joining, inviting, creating rooms, changing its profile);
// reading, leaving and logging out stay open, as the spec recommends.
func refuseSuspended(req *httputil.Request) error {
	if req.Device != nil && req.Device.Suspended {
		return userapi.ErrUserSuspended()
	}
	return nil
}

// whois lists a user's devices with their last activity: for server
// admins, or for oneself. IP addresses and user agents are not recorded.
func (c *ClientAPI) whois(req *httputil.Request) (any, error) {
	userID, err := profileUserParam(req)
	if err != nil {
		return nil, err
	}
	if userID != req.Device.UserID && !req.Device.IsAdmin {
		return nil, mxerr.Forbidden("only server administrators may look up other users")
	}
	if _, err := userapi.QueryAccountFlags.Call(req.Context(), c.bus, &userapi.QueryAccountFlagsRequest{UserID: userID}); err != nil {
		if me, ok := mxerr.As(err); ok && me.Code == "M_INVALID_PARAM" {
			return nil, mxerr.NotFound("%s is not a user of this server", userID)
		}
		return nil, err
	}
	devs, err := userapi.QueryDevices.Call(req.Context(), c.bus, &userapi.QueryDevicesRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	type connection struct {
		LastSeen int64 `json:"last_seen,omitempty"`
	}
	type session struct {
		Connections []connection `json:"connections"`
	}
	type deviceInfo struct {
		Sessions []session `json:"sessions"`
	}
	devices := make(map[string]deviceInfo, len(devs.Devices))
	for _, d := range devs.Devices {
		devices[d.DeviceID] = deviceInfo{Sessions: []session{{Connections: []connection{{LastSeen: d.LastSeenTS}}}}}
	}
	return map[string]any{"user_id": userID, "devices": devices}, nil
}

// adminTarget checks that the requester is a server admin allowed to act
// on the target: not another admin (the spec's 403), and, when changing
// a flag, not themself.
func (c *ClientAPI) adminTarget(req *httputil.Request, changing bool) (string, *userapi.AccountFlags, error) {
	if !req.Device.IsAdmin {
		return "", nil, mxerr.Forbidden("only server administrators may do this")
	}
	userID, err := profileUserParam(req)
	if err != nil {
		return "", nil, err
	}
	if changing && userID == req.Device.UserID {
		return "", nil, mxerr.Forbidden("you may not change your own account's moderation state")
	}
	flags, err := userapi.QueryAccountFlags.Call(req.Context(), c.bus, &userapi.QueryAccountFlagsRequest{UserID: userID})
	if err != nil {
		return "", nil, err // M_INVALID_PARAM for remote users, M_NOT_FOUND for unknown ones
	}
	if flags.Admin && userID != req.Device.UserID {
		return "", nil, mxerr.Forbidden("%s is a server administrator", userID)
	}
	return userID, flags, nil
}

func flagValue(f *userapi.AccountFlags, flag string) bool {
	if flag == flagLocked {
		return f.Locked
	}
	return f.Suspended
}

func (c *ClientAPI) getAccountFlag(flag string) httputil.Handler {
	return func(req *httputil.Request) (any, error) {
		_, flags, err := c.adminTarget(req, false)
		if err != nil {
			return nil, err
		}
		return map[string]bool{flag: flagValue(flags, flag)}, nil
	}
}

func (c *ClientAPI) setAccountFlag(flag string) httputil.Handler {
	return func(req *httputil.Request) (any, error) {
		var body map[string]*bool
		if err := httputil.DecodeJSON(req.Request, &body); err != nil {
			return nil, err
		}
		value := body[flag]
		if value == nil {
			return nil, mxerr.MissingParam("%s is required", flag)
		}
		userID, _, err := c.adminTarget(req, true)
		if err != nil {
			return nil, err
		}
		set := &userapi.SetAccountFlagsRequest{UserID: userID}
		if flag == flagLocked {
			set.Locked = value
		} else {
			set.Suspended = value
		}
		flags, err := userapi.SetAccountFlags.Call(req.Context(), c.bus, set)
		if err != nil {
			return nil, err
		}
		req.Log.Info("account moderation", "target", userID, flag, *value)
		return map[string]bool{flag: flagValue(flags, flag)}, nil
	}
}
