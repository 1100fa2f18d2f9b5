package federation

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Request authentication (server-server API, "Request Authentication"):
// the origin signs {method, uri, origin, destination, content} and sends
// the signature in an "Authorization: X-Matrix ..." header. The checks
// run cheapest first, and a server outside allowed_servers is refused
// before its keys are looked up: nothing is ever fetched from it.

func errUnauthorized(format string, args ...any) *mxerr.Error {
	return mxerr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", format, args...)
}

// xMatrix is one parsed X-Matrix Authorization header.
type xMatrix struct {
	origin, destination, key, sig string
}

// signedRequest is the JSON object an X-Matrix signature covers.
type signedRequest struct {
	Method      string                       `json:"method"`
	URI         string                       `json:"uri"`
	Origin      string                       `json:"origin"`
	Destination string                       `json:"destination"`
	Content     json.RawMessage              `json:"content,omitempty"`
	Signatures  map[string]map[string]string `json:"signatures"`
}

// authenticate checks a signed request and reads its body.
func (f *Federation) authenticate(r *http.Request) (*InboundRequest, error) {
	var auths []xMatrix
	for _, h := range r.Header.Values("Authorization") {
		a, isXMatrix, err := parseXMatrix(h)
		if err != nil {
			return nil, errUnauthorized("malformed X-Matrix authorization: %v", err)
		}
		if isXMatrix {
			auths = append(auths, a)
		}
	}
	if len(auths) == 0 {
		return nil, errUnauthorized("missing X-Matrix authorization")
	}
	origin := auths[0].origin
	sigs := map[string]string{}
	for _, a := range auths {
		if a.origin != origin {
			return nil, errUnauthorized("X-Matrix headers name different origins")
		}
		// Older servers omit the destination; whenever it is given it must
		// be this server (401 per the spec).
		if a.destination != "" && a.destination != f.serverName {
			return nil, errUnauthorized("request is for %q, this is %q", a.destination, f.serverName)
		}
		sigs[a.key] = a.sig
	}
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(origin)); !ok {
		return nil, errUnauthorized("origin %q is not a server name", origin)
	}
	if !f.cfg.FederationAllows(origin) {
		return nil, mxerr.Forbidden("server %s is not allowed to federate with %s", origin, f.serverName)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if body != nil && (!utf8.Valid(body) || !json.Valid(body)) {
		return nil, mxerr.NotJSON("body is not valid UTF-8 JSON")
	}
	uri := r.RequestURI // as sent, escapes included: that is what was signed
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	message, err := json.Marshal(signedRequest{
		Method: r.Method, URI: uri, Origin: origin, Destination: f.serverName,
		Content: body, Signatures: map[string]map[string]string{origin: sigs},
	})
	if err != nil {
		return nil, mxerr.NotJSON("body is not valid JSON: %v", err)
	}
	results, err := f.keys.ring.VerifyJSONs(r.Context(), []gomatrixserverlib.VerifyJSONRequest{{
		ServerName:           spec.ServerName(origin),
		AtTS:                 spec.AsTimestamp(time.Now()),
		Message:              message,
		ValidityCheckingFunc: gomatrixserverlib.StrictValiditySignatureCheck,
	}})
	if err != nil {
		return nil, fmt.Errorf("verify request from %s: %w", origin, err)
	}
	if results[0].Error != nil {
		f.log.Debug("refused request with a bad signature", "origin", origin, "uri", uri, "err", results[0].Error)
		return nil, errUnauthorized("invalid signature from %s", origin)
	}
	return &InboundRequest{HTTP: r, Origin: origin, Body: body}, nil
}

// parseXMatrix reads an Authorization header. isXMatrix is false for
// another scheme (ignored). The syntax is RFC 9110's auth-params:
// case-insensitive names, token or quoted-string values (backslash
// escapes undone), optional whitespace around commas; colons are
// accepted in unquoted values as older servers send them.
func parseXMatrix(header string) (a xMatrix, isXMatrix bool, err error) {
	scheme, rest, _ := strings.Cut(strings.TrimLeft(header, " \t"), " ")
	if !strings.EqualFold(scheme, "X-Matrix") {
		return a, false, nil
	}
	params := map[string]string{}
	s := rest
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		eq := strings.IndexAny(s, "= \t,")
		if eq <= 0 {
			return a, true, fmt.Errorf("expected name=value at %q", s)
		}
		name := strings.ToLower(s[:eq])
		s = strings.TrimLeft(s[eq:], " \t")
		if !strings.HasPrefix(s, "=") {
			return a, true, fmt.Errorf("expected = after %q", name)
		}
		s = strings.TrimLeft(s[1:], " \t")
		var value string
		if value, s, err = authParamValue(s); err != nil {
			return a, true, fmt.Errorf("%s: %w", name, err)
		}
		params[name] = value
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		if s[0] != ',' {
			return a, true, fmt.Errorf("expected , before %q", s)
		}
		s = s[1:]
	}
	a = xMatrix{origin: params["origin"], destination: params["destination"], key: params["key"], sig: params["sig"]}
	if a.origin == "" || a.key == "" || a.sig == "" {
		return a, true, fmt.Errorf("origin, key and sig are required")
	}
	return a, true, nil
}

// authParamValue reads a token or a quoted-string from the start of s.
func authParamValue(s string) (value, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexAny(s, ", \t")
		if end < 0 {
			end = len(s)
		}
		return s[:end], s[end:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("unterminated escape")
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated quoted string")
}
