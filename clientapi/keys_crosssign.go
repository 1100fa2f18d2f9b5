package clientapi

import (
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// uploadCrossSigning is /keys/device_signing/upload. As the spec (v1.11)
// and Synapse have it, user-interactive auth is skipped when the user has
// no master key yet (first set-up) or when the request uploads nothing
// new (every key equal to the stored one); replacing keys needs the
// password, so a stolen access token cannot take over a user's identity.
func (c *ClientAPI) uploadCrossSigning(req *httputil.Request) (any, error) {
	var body struct {
		Master      json.RawMessage `json:"master_key"`
		SelfSigning json.RawMessage `json:"self_signing_key"`
		UserSigning json.RawMessage `json:"user_signing_key"`
		Auth        *uiaAuth        `json:"auth"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	for _, k := range []json.RawMessage{body.Master, body.SelfSigning, body.UserSigning} {
		if len(k) > 0 && string(k) != "null" && k[0] != '{' {
			return nil, mxerr.BadJSON("cross-signing keys must be objects")
		}
	}
	ctx := req.Context()
	stored, err := userapi.QueryCrossSigning.Call(ctx, c.bus, &userapi.QueryCrossSigningRequest{UserID: req.Device.UserID})
	if err != nil {
		return nil, err
	}
	if needsUIA(stored, body.Master, body.SelfSigning, body.UserSigning) {
		spec := uiaSpec{route: "POST /keys/device_signing/upload", userID: req.Device.UserID, flows: passwordFlows}
		if _, err := c.authenticate(req, body.Auth, spec); err != nil {
			return nil, err
		}
	}
	return userapi.UploadCrossSigning.Call(ctx, c.bus, &userapi.UploadCrossSigningRequest{
		UserID: req.Device.UserID, Master: body.Master, SelfSigning: body.SelfSigning, UserSigning: body.UserSigning,
	})
}

// needsUIA applies the spec's exceptions.
func needsUIA(stored *userapi.QueryCrossSigningResponse, master, self, user json.RawMessage) bool {
	if len(stored.Master) == 0 {
		return false
	}
	same := func(old, new json.RawMessage) bool {
		if len(new) == 0 || string(new) == "null" {
			return true // not uploaded: nothing new
		}
		if len(old) == 0 {
			return false
		}
		a, err1 := gomatrixserverlib.CanonicalJSON(old)
		b, err2 := gomatrixserverlib.CanonicalJSON(new)
		return err1 == nil && err2 == nil && string(a) == string(b)
	}
	return !(same(stored.Master, master) && same(stored.SelfSigning, self) && same(stored.UserSigning, user))
}

func (c *ClientAPI) uploadSignatures(req *httputil.Request) (any, error) {
	var body map[string]map[string]json.RawMessage
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	resp, err := userapi.UploadSignatures.Call(req.Context(), c.bus, &userapi.UploadSignaturesRequest{UserID: req.Device.UserID, Signatures: body})
	if err != nil {
		return nil, err
	}
	return map[string]any{"failures": resp.Failures}, nil
}
