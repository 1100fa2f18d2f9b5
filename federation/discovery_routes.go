package federation

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// What other servers ask before talking to this one: where it is
// (/.well-known/matrix/server, on the federation listener and on the
// client one, since the file is fetched from https://<server_name>/) and
// what it runs (/_matrix/federation/v1/version).

func (f *Federation) registerDiscoveryRoutes() {
	f.handleUnsigned("GET /.well-known/matrix/server", f.onWellKnown)
	f.handleUnsigned("GET /_matrix/federation/v1/version", f.onVersion)
	if f.base != nil && f.base.Router != nil {
		f.base.Router.Handle("GET /.well-known/matrix/server", httputil.NoAuth, func(*httputil.Request) (any, error) {
			return f.onWellKnown(nil)
		})
	}
}

func (f *Federation) onWellKnown(*InboundRequest) (any, error) {
	if f.cfg.Federation.WellKnownServer == "" {
		return nil, mxerr.NotFound("this server does not delegate federation")
	}
	return map[string]string{"m.server": f.cfg.Federation.WellKnownServer}, nil
}

func (f *Federation) onVersion(*InboundRequest) (any, error) {
	return map[string]any{"server": map[string]string{"name": "Chappe", "version": version()}}, nil
}
