package clientapi

import "github.com/chappe-matrix/chappe/internal/httputil"

// accountRoutes registers the account surface: profiles, devices,
// user-interactive auth, password change, deactivation, login tokens,
// refresh tokens, 3PID listing, user directory.
func (c *ClientAPI) accountRoutes(r *httputil.Router) {}
