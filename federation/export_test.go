package federation

import (
	"context"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Hooks for the package's external tests.

// VerifyJSON checks that message carries a valid signature of server,
// with this server's key ring.
func (f *Federation) VerifyJSON(ctx context.Context, server string, message []byte) error {
	results, err := f.keys.ring.VerifyJSONs(ctx, []gomatrixserverlib.VerifyJSONRequest{{
		ServerName: spec.ServerName(server), AtTS: spec.AsTimestamp(time.Now()), Message: message,
		ValidityCheckingFunc: gomatrixserverlib.StrictValiditySignatureCheck,
	}})
	if err != nil {
		return err
	}
	return results[0].Error
}

func (f *Federation) Handle(pattern string, h InboundHandler) { f.handle(pattern, h) }

func (f *Federation) HandleRaw(pattern string, h func(w http.ResponseWriter, r *InboundRequest) error) {
	f.handleRaw(pattern, h)
}

func (f *Federation) DoSigned(ctx context.Context, method, destination, path string, body, out any) error {
	return f.doSigned(ctx, method, destination, path, body, out)
}

func (f *Federation) DoSignedRaw(ctx context.Context, method, destination, path string, body any) (*http.Response, error) {
	return f.doSignedRaw(ctx, method, destination, path, body)
}
