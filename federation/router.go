package federation

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// The federation listener's routes. Signed routes (handle, handleRaw)
// only reach their handler once the X-Matrix signature has been checked
// against the origin's key, the destination is this server and the origin
// is in allowed_servers (router_auth.go); unsigned ones (handleUnsigned)
// are the key, version and discovery endpoints other servers call before
// they can sign anything. The mux is httputil's: unknown paths answer 404
// M_UNRECOGNIZED (405 for a known path with another method), panics 500
// M_UNKNOWN, and a handler's *mxerr.Error becomes the Matrix error JSON.

// maxInboundBody bounds a request body. The largest legitimate one is a
// /send transaction: at most 50 PDUs of at most 64 KiB each, plus 100
// EDUs (to-device messages can be large), which fits well within 10 MiB.
const maxInboundBody = 10 << 20

// InboundHandler answers a federation request with a value to encode as
// JSON (status 200) or an error (*mxerr.Error for a Matrix error,
// anything else for a 500 M_UNKNOWN).
type InboundHandler func(r *InboundRequest) (any, error)

// InboundRequest is a request from another server.
type InboundRequest struct {
	HTTP *http.Request
	// Origin is the server that signed the request ("" on unsigned routes).
	Origin string
	// Body is the request body: on signed routes the JSON the signature
	// covers (nil when the request had none, e.g. GET).
	Body []byte
}

// Decode reads the body into v with the client API's errors: M_NOT_JSON
// when it is not a JSON object, M_BAD_JSON when it does not fit v. An
// empty body is read as {}.
func (r *InboundRequest) Decode(v any) error {
	return httputil.DecodeJSON(&http.Request{Body: io.NopCloser(bytes.NewReader(r.Body))}, v)
}

// Context is the request's context.
func (r *InboundRequest) Context() context.Context { return r.HTTP.Context() }

// inboundRouter is the federation listener: its mux and, once serving,
// its server.
type inboundRouter struct {
	mux      *httputil.Router
	listener *federationListener // router_listener.go; nil until startListener
}

func (f *Federation) startRouter(context.Context) error {
	f.router = &inboundRouter{mux: httputil.NewRouter(f.log, nil, maxInboundBody, nil)}
	f.registerKeyRoutes()       // keys_routes.go
	f.registerDiscoveryRoutes() // discovery_routes.go
	return nil
}

// handle registers a signed route: pattern is Go's ServeMux syntax
// ("PUT /_matrix/federation/v1/send/{txnID}").
func (f *Federation) handle(pattern string, h InboundHandler) {
	f.handleRaw(pattern, func(w http.ResponseWriter, r *InboundRequest) error {
		return writeResult(w, h, r)
	})
}

// handleRaw registers a signed route whose handler writes its own
// response (multipart media). An error it returns before writing is sent
// as a Matrix error.
func (f *Federation) handleRaw(pattern string, h func(w http.ResponseWriter, r *InboundRequest) error) {
	f.router.mux.HandleRaw(pattern, httputil.NoAuth, func(w http.ResponseWriter, req *httputil.Request) error {
		in, err := f.authenticate(req.Request) // router_auth.go
		if err != nil {
			return err
		}
		return h(w, in)
	})
}

// handleUnsigned registers a route other servers call without signing:
// keys, version, well-known.
func (f *Federation) handleUnsigned(pattern string, h InboundHandler) {
	f.router.mux.HandleRaw(pattern, httputil.NoAuth, func(w http.ResponseWriter, req *httputil.Request) error {
		body, err := readBody(req.Request)
		if err != nil {
			return err
		}
		return writeResult(w, h, &InboundRequest{HTTP: req.Request, Body: body})
	})
}

func writeResult(w http.ResponseWriter, h InboundHandler, r *InboundRequest) error {
	resp, err := h(r)
	if err != nil {
		return err
	}
	httputil.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// readBody reads the whole body; the router has already capped it.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, mxerr.TooLarge("request body is over %d bytes", tooLarge.Limit)
		}
		return nil, mxerr.NotJSON("could not read body: %v", err)
	}
	if len(body) == 0 {
		return nil, nil
	}
	return body, nil
}

// Patterns lists the federation listener's routes ("METHOD /path/{var}"),
// for the spec coverage report.
func (f *Federation) Patterns() []string { return f.router.mux.Patterns() }
