package tests

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// The federation's transport between whole servers: TLS from the test
// CA, host maps, keys and their notary, X-Matrix signatures checked on a
// real route, the allow-list both ways.

// remoteCode is the HTTP status and errcode of a federation client error.
func remoteCode(err error) (int, string) {
	var httpErr gomatrix.HTTPError
	if errors.As(err, &httpErr) {
		var resp gomatrix.RespError
		if errors.As(httpErr.WrappedError, &resp) {
			return httpErr.Code, resp.ErrCode
		}
		return httpErr.Code, ""
	}
	if me, ok := mxerr.As(err); ok {
		return me.Status, me.Code
	}
	return 0, ""
}

// rawFederationGet sends a GET to s's federation listener with the given
// Authorization header ("" for none), trusting the test CA.
func rawFederationGet(t *testing.T, s *testserver.Server, path, authorization string) (int, string) {
	t.Helper()
	pem, err := os.ReadFile(s.Config.Federation.ExtraCAFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: s.Config.ServerName}}}
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, "https://"+s.FederationAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var body struct {
		Code string `json:"errcode"`
	}
	_ = json.Unmarshal(data, &body)
	return resp.StatusCode, body.Code
}

func TestFederationTransport(t *testing.T) {
	const a, b, c, outsider = "ministere-a.test", "ministere-b.test", "ministere-c.test", "externe.test"
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: a},
		testserver.FederationMember{Name: b},
		// C does not trust the test CA.
		testserver.FederationMember{Name: c, Options: []testserver.Option{func(cfg *config.Config) { cfg.Federation.ExtraCAFiles = nil }}},
		testserver.FederationMember{Name: outsider, Outside: true},
	)
	srvA, srvB, srvC, srvOut := servers[0], servers[1], servers[2], servers[3]
	ctx := ctxT(t)

	alice := srvA.RegisterUser(t, "alice")
	if err := alice.SetDisplayName(ctx, "Alice A"); err != nil {
		t.Fatal(err)
	}
	profilePath := "/_matrix/federation/v1/query/profile?user_id=" + alice.UserID.String()

	// B reaches A through its host map and the CA; A fetches B's key to
	// check the signature and answers.
	prof, err := srvB.Federation.Client().LookupProfile(ctx, b, a, alice.UserID.String(), "")
	if err != nil || prof.DisplayName != "Alice A" {
		t.Fatalf("B asks A for a profile: %+v %v", prof, err)
	}

	// A's keys, directly and through A as notary (signed by both).
	keys, err := srvB.Federation.Client().GetServerKeys(ctx, a)
	if err != nil || keys.VerifyKeys[gomatrixserverlib.KeyID(srvA.Base.Key.ID)].Key == nil {
		t.Fatalf("A's keys: %+v %v", keys, err)
	}
	answers, err := srvB.Federation.Client().LookupServerKeys(ctx, a, map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp{
		{ServerName: b}: spec.AsTimestamp(time.Now()),
	})
	if err != nil || len(answers) != 1 || answers[0].ServerName != b {
		t.Fatalf("A as notary for B: %+v %v", answers, err)
	}
	for server, key := range map[string][]byte{a: srvA.Base.Key.Public(), b: srvB.Base.Key.Public()} {
		id := srvA.Base.Key.ID
		if server == b {
			id = srvB.Base.Key.ID
		}
		if err := gomatrixserverlib.VerifyJSON(server, gomatrixserverlib.KeyID(id), key, answers[0].Raw); err != nil {
			t.Fatalf("notary answer not signed by %s: %v", server, err)
		}
	}

	// Requests A refuses: no signature, a signature for another
	// destination, a server outside the allow-list.
	if status, code := rawFederationGet(t, srvA, profilePath, ""); status != 401 || code != "M_UNAUTHORIZED" {
		t.Fatalf("unsigned: %d %s", status, code)
	}
	fr := fclient.NewFederationRequest("GET", b, "ministere-z.test", profilePath)
	if err := fr.Sign(b, gomatrixserverlib.KeyID(srvB.Base.Key.ID), srvB.Base.Key.Private); err != nil {
		t.Fatal(err)
	}
	misdirected, _ := fr.HTTPRequest()
	if status, code := rawFederationGet(t, srvA, profilePath, misdirected.Header.Get("Authorization")); status != 401 || code != "M_UNAUTHORIZED" {
		t.Fatalf("wrong destination: %d %s", status, code)
	}
	_, err = srvOut.Federation.Client().LookupProfile(ctx, outsider, a, alice.UserID.String(), "")
	if status, code := remoteCode(err); status != 403 || code != "M_FORBIDDEN" {
		t.Fatalf("outsider to A: %v", err)
	}
	// A never sends anything to the outsider, though its host map knows it.
	_, err = srvA.Federation.Client().LookupProfile(ctx, a, outsider, "@x:"+outsider, "")
	if status, code := remoteCode(err); status != 403 || code != "M_FORBIDDEN" {
		t.Fatalf("A to the outsider: %v", err)
	}

	// C does not trust the CA: A's certificate is refused.
	_, err = srvC.Federation.Client().GetServerKeys(ctx, a)
	var unknownAuthority x509.UnknownAuthorityError
	if !errors.As(err, &unknownAuthority) {
		t.Fatalf("C without the CA: %v", err)
	}
}
