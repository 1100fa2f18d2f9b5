package federation_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/federation"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

const (
	nameA   = "ministere-a.test"
	nameB   = "ministere-b.test"
	nameOut = "externe.test"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fedHTTP sends a request to s's federation listener over TLS (trusting
// the test CA) and returns the status and the decoded JSON answer.
func fedHTTP(t *testing.T, s *testserver.Server, method, path string, body []byte, header http.Header) (int, map[string]any) {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(s.Config.Federation.ExtraCAFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: s.Config.ServerName}}}
	req, err := http.NewRequestWithContext(ctxT(t), method, "https://"+s.FederationAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = s.Config.ServerName
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

// xMatrix signs a request as origin with key and returns its
// Authorization header.
func xMatrix(t *testing.T, key signingkey.Key, origin, destination, method, path string, body []byte) http.Header {
	t.Helper()
	fr := fclient.NewFederationRequest(method, spec.ServerName(origin), spec.ServerName(destination), path)
	if body != nil {
		if err := fr.SetContent(json.RawMessage(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.Sign(spec.ServerName(origin), gomatrixserverlib.KeyID(key.ID), key.Private); err != nil {
		t.Fatal(err)
	}
	req, err := fr.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"Authorization": req.Header.Values("Authorization"), "Content-Type": {"application/json"}}
}

func wantErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	me, ok := mxerr.As(err)
	if !ok || me.Status != status || me.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
}

func wantStatus(t *testing.T, what string, gotStatus int, body map[string]any, status int, code string) {
	t.Helper()
	if gotStatus != status || body["errcode"] != code {
		t.Fatalf("%s: %d %v, want %d %s", what, gotStatus, body, status, code)
	}
}

const echoPath = "/_matrix/federation/v1/chappe_test_echo"

// echo registers a signed route answering with what it was given.
func echo(s *testserver.Server) {
	h := func(r *federation.InboundRequest) (any, error) {
		return map[string]any{"origin": r.Origin, "body": string(r.Body), "q": r.HTTP.URL.Query().Get("q")}, nil
	}
	s.Server.Federation.Handle("GET "+echoPath, h)
	s.Server.Federation.Handle("PUT "+echoPath, h)
	s.Server.Federation.Handle("GET "+echoPath+"/panic", func(*federation.InboundRequest) (any, error) {
		panic("test panic")
	})
	s.Server.Federation.Handle("GET "+echoPath+"/forbidden", func(*federation.InboundRequest) (any, error) {
		return nil, mxerr.Forbidden("no")
	})
}

func TestSignedRequests(t *testing.T) {
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA},
		testserver.FederationMember{Name: nameB},
		testserver.FederationMember{Name: nameOut, Outside: true},
	)
	a, b, out := servers[0], servers[1], servers[2]
	echo(a)
	ctx := ctxT(t)

	// B's signed requests reach the handler with B as origin; the query
	// string and the body are covered by the signature.
	var got map[string]string
	if err := b.Server.Federation.DoSigned(ctx, "GET", nameA, echoPath+"?q=caf%C3%A9+%2F", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got["origin"] != nameB || got["q"] != "café /" {
		t.Fatalf("echo: %v", got)
	}
	if err := b.Server.Federation.DoSigned(ctx, "PUT", nameA, echoPath, map[string]string{"k": "v"}, &got); err != nil {
		t.Fatal(err)
	}
	if got["body"] != `{"k":"v"}` {
		t.Fatalf("echo body: %v", got)
	}
	// A handler's Matrix error crosses as it is; a panic is a 500.
	wantErr(t, "handler error", b.Server.Federation.DoSigned(ctx, "GET", nameA, echoPath+"/forbidden", nil, nil), 403, "M_FORBIDDEN")
	wantErr(t, "panic", b.Server.Federation.DoSigned(ctx, "GET", nameA, echoPath+"/panic", nil, nil), 500, "M_UNKNOWN")

	// A server outside the allow-list is refused before its keys are
	// looked up: A never contacts it.
	wantErr(t, "outsider", out.Server.Federation.DoSigned(ctx, "GET", nameA, echoPath, nil, nil), 403, "M_FORBIDDEN")
	var n int
	if err := a.Base.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM fs_server_keys WHERE server_name = $1`, nameOut).Scan(&n); err != nil || n != 0 {
		t.Fatalf("A stored %d keys of the outsider (%v)", n, err)
	}

	// Hand-made requests.
	status, body := fedHTTP(t, a, "GET", echoPath, nil, nil)
	wantStatus(t, "unsigned", status, body, 401, "M_UNAUTHORIZED")
	status, body = fedHTTP(t, a, "GET", echoPath, nil, http.Header{"Authorization": {"Bearer abc"}})
	wantStatus(t, "bearer", status, body, 401, "M_UNAUTHORIZED")
	status, body = fedHTTP(t, a, "GET", echoPath, nil, http.Header{"Authorization": {`X-Matrix origin="` + nameB + `"`}})
	wantStatus(t, "incomplete header", status, body, 401, "M_UNAUTHORIZED")

	keyB := b.Base.Key
	status, body = fedHTTP(t, a, "GET", echoPath, nil, xMatrix(t, keyB, nameB, nameA, "GET", echoPath, nil))
	if status != 200 || body["origin"] != nameB {
		t.Fatalf("hand-signed request: %d %v", status, body)
	}
	// Signed for another path, another body, another destination, or by
	// another key under B's key ID.
	status, body = fedHTTP(t, a, "GET", echoPath, nil, xMatrix(t, keyB, nameB, nameA, "GET", echoPath+"?x=1", nil))
	wantStatus(t, "other uri", status, body, 401, "M_UNAUTHORIZED")
	status, body = fedHTTP(t, a, "PUT", echoPath, []byte(`{"a":2}`), xMatrix(t, keyB, nameB, nameA, "PUT", echoPath, []byte(`{"a":1}`)))
	wantStatus(t, "other body", status, body, 401, "M_UNAUTHORIZED")
	status, body = fedHTTP(t, a, "GET", echoPath, nil, xMatrix(t, keyB, nameB, "ministere-c.test", "GET", echoPath, nil))
	wantStatus(t, "other destination", status, body, 401, "M_UNAUTHORIZED")
	forger, _ := signingkey.Generate()
	forger.ID = keyB.ID
	status, body = fedHTTP(t, a, "GET", echoPath, nil, xMatrix(t, forger, nameB, nameA, "GET", echoPath, nil))
	wantStatus(t, "forged", status, body, 401, "M_UNAUTHORIZED")
	status, body = fedHTTP(t, a, "GET", echoPath, nil, xMatrix(t, out.Base.Key, nameOut, nameA, "GET", echoPath, nil))
	wantStatus(t, "outsider by hand", status, body, 403, "M_FORBIDDEN")

	// Bodies: not JSON, too large.
	h := xMatrix(t, keyB, nameB, nameA, "PUT", echoPath, nil)
	status, body = fedHTTP(t, a, "PUT", echoPath, []byte(`{not json`), h)
	wantStatus(t, "not json", status, body, 400, "M_NOT_JSON")
	big := []byte(`{"x":"` + strings.Repeat("a", 11<<20) + `"}`)
	status, body = fedHTTP(t, a, "PUT", echoPath, big, h)
	wantStatus(t, "too large", status, body, 413, "M_TOO_LARGE")

	// Unknown paths and methods, before any authentication.
	status, body = fedHTTP(t, a, "GET", "/_matrix/federation/v1/nonexistent", nil, nil)
	wantStatus(t, "unknown path", status, body, 404, "M_UNRECOGNIZED")
	status, body = fedHTTP(t, a, "DELETE", echoPath, nil, nil)
	wantStatus(t, "unknown method", status, body, 405, "M_UNRECOGNIZED")
}

// The transport refuses a destination outside allowed_servers before
// dialling: the outsider, which would answer, never sees the request.
func TestOutboundRefusedOutsideAllowList(t *testing.T) {
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA},
		testserver.FederationMember{Name: nameOut, Outside: true},
	)
	a, out := servers[0], servers[1]
	var hits atomic.Int32
	out.Server.Federation.Handle("GET "+echoPath, func(*federation.InboundRequest) (any, error) {
		hits.Add(1)
		return map[string]any{}, nil
	})
	ctx := ctxT(t)
	wantErr(t, "doSigned", a.Server.Federation.DoSigned(ctx, "GET", nameOut, echoPath, nil, nil), 403, "M_FORBIDDEN")
	_, err := a.Server.Federation.Client().GetServerKeys(ctx, nameOut)
	wantErr(t, "library client", err, 403, "M_FORBIDDEN")
	_, err = a.Server.Federation.DoSignedRaw(ctx, "GET", nameOut, echoPath, nil)
	wantErr(t, "raw", err, 403, "M_FORBIDDEN")
	if n := hits.Load(); n != 0 {
		t.Fatalf("the outsider was reached %d times", n)
	}
}

// The host map and the test CA carry the requests; without the CA the
// certificate is refused.
func TestTLSWithExtraCA(t *testing.T) {
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA},
		testserver.FederationMember{Name: nameB, Options: []testserver.Option{func(c *config.Config) {
			c.Federation.ExtraCAFiles = nil
		}}},
	)
	a, b := servers[0], servers[1]
	ctx := ctxT(t)
	keys, err := a.Server.Federation.Client().GetServerKeys(ctx, nameB)
	if err != nil || keys.ServerName != nameB {
		t.Fatalf("A to B: %+v %v", keys, err)
	}
	_, err = b.Server.Federation.Client().GetServerKeys(ctx, nameA)
	var unknownAuthority x509.UnknownAuthorityError
	if !errors.As(err, &unknownAuthority) {
		t.Fatalf("B without the CA: %v", err)
	}
}
