package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Third-party networks are what bridges (application services) provide.
// Chappe has no application services yet, so it knows no protocol: the
// list is empty and every lookup finds nothing, as the spec answers it.

func (c *ClientAPI) thirdPartyProtocols(*httputil.Request) (any, error) {
	return struct{}{}, nil
}

// thirdPartyProtocol answers the lookups under one protocol: none is known.
func (c *ClientAPI) thirdPartyProtocol(req *httputil.Request) (any, error) {
	return nil, mxerr.NotFound("unknown protocol %q", truncate(req.PathValue("protocol"), 100))
}

// thirdPartyReverse answers the lookups by Matrix ID: with no bridge,
// nothing on a third-party network corresponds to it.
func (c *ClientAPI) thirdPartyReverse(param string) httputil.Handler {
	return func(req *httputil.Request) (any, error) {
		if req.URL.Query().Get(param) == "" {
			return nil, mxerr.MissingParam("%s is required", param)
		}
		return nil, mxerr.NotFound("no third-party network bridges this server")
	}
}
