package clientapi

import "github.com/chappe-matrix/chappe/internal/httputil"

// accountRoutes registers the account surface: profiles, devices,
// user-interactive auth, password change, deactivation, login tokens,
// refresh tokens, 3PID listing, user directory.
func (c *ClientAPI) accountRoutes(r *httputil.Router) {
	const v1 = "/_matrix/client/v1"
	r.Handle("GET "+v3+"/profile/{userId}", httputil.OptionalAuth, c.getProfile)
	// The fields, displayname and avatar_url included, are under
	// /profile/{userId}/{keyName} in routes_misc.go.

	r.Handle("GET "+v3+"/devices", httputil.RequireAuth, c.getDevices)
	r.Handle("GET "+v3+"/devices/{deviceId}", httputil.RequireAuth, c.getDevice)
	r.Handle("PUT "+v3+"/devices/{deviceId}", httputil.RequireAuth, c.putDevice)
	r.Handle("DELETE "+v3+"/devices/{deviceId}", httputil.RequireAuth, c.deleteDevice)
	r.Handle("POST "+v3+"/delete_devices", httputil.RequireAuth, c.deleteDevices)

	r.Handle("POST "+v3+"/account/password", httputil.RequireAuth, c.changePassword)
	r.Handle("POST "+v3+"/account/deactivate", httputil.RequireAuth, c.deactivate)
	r.Handle("GET "+v3+"/account/3pid", httputil.RequireAuth, c.threepids)

	r.HandleLimited("POST "+v3+"/refresh", httputil.NoAuth, "login", c.refresh)
	r.Handle("POST "+v1+"/login/get_token", httputil.RequireAuth, c.getLoginToken)

	r.Handle("POST "+v3+"/user_directory/search", httputil.RequireAuth, c.searchUserDirectory)

	r.Handle("GET "+v1+"/register/m.login.registration_token/validity", httputil.NoAuth, c.regTokenValidity)
	const regTokens = "/_synapse/admin/v1/registration_tokens"
	r.Handle("GET "+regTokens, httputil.RequireAuth, c.listRegTokens)
	r.Handle("POST "+regTokens+"/new", httputil.RequireAuth, c.newRegToken)
	r.Handle("GET "+regTokens+"/{token}", httputil.RequireAuth, c.getRegToken)
	r.Handle("PUT "+regTokens+"/{token}", httputil.RequireAuth, c.updateRegToken)
	r.Handle("DELETE "+regTokens+"/{token}", httputil.RequireAuth, c.deleteRegToken)
}
