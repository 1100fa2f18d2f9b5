package federation_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// signAs signs a JSON object with key as server.
func signAs(t *testing.T, server string, key signingkey.Key, obj string) []byte {
	t.Helper()
	signed, err := gomatrixserverlib.SignJSON(server, gomatrixserverlib.KeyID(key.ID), key.Private, []byte(obj))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// presetKey makes a signing key before the server starts, so that others'
// configurations can name it.
func presetKey(t *testing.T) (signingkey.Key, testserver.Option) {
	t.Helper()
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, []byte(key.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, func(c *config.Config) { c.SigningKeyPath = path }
}

func pub(k signingkey.Key) string { return base64.RawStdEncoding.EncodeToString(k.Public()) }

func storedKeys(t *testing.T, s *testserver.Server, server string) int {
	t.Helper()
	var n int
	if err := s.Base.DB.QueryRowContext(ctxT(t), `SELECT COUNT(*) FROM fs_server_keys WHERE server_name = $1 AND response <> ''`, server).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKeyRingFetchesRemoteKeys(t *testing.T) {
	servers := testserver.NewFederation(t, nameA, nameB)
	a, b := servers[0], servers[1]
	ctx := ctxT(t)
	fa := a.Server.Federation

	signed := signAs(t, nameB, b.Base.Key, `{"hello":"world"}`)
	if err := fa.VerifyJSON(ctx, nameB, signed); err != nil {
		t.Fatalf("A does not verify B's JSON: %v", err)
	}
	if storedKeys(t, a, nameB) != 1 {
		t.Fatal("B's key response is not cached")
	}
	// Own JSON needs no fetch.
	if err := fa.VerifyJSON(ctx, nameA, signAs(t, nameA, a.Base.Key, `{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	forger, _ := signingkey.Generate()
	forger.ID = b.Base.Key.ID
	if err := fa.VerifyJSON(ctx, nameB, signAs(t, nameB, forger, `{"hello":"world"}`)); err == nil {
		t.Fatal("forged signature verified")
	}
	tampered := []byte(string(signed[:len(signed)-1]) + `,"more":1}`)
	if err := fa.VerifyJSON(ctx, nameB, tampered); err == nil {
		t.Fatal("tampered JSON verified")
	}
	unknownID, _ := signingkey.Generate()
	if err := fa.VerifyJSON(ctx, nameB, signAs(t, nameB, unknownID, `{"y":1}`)); err == nil {
		t.Fatal("signature by an unknown key ID verified")
	}
}

func TestServerKeysEndpoint(t *testing.T) {
	old, _ := signingkey.Generate()
	expired := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA, Options: []testserver.Option{func(c *config.Config) {
			c.Federation.OldVerifyKeys = []config.OldVerifyKey{{KeyID: old.ID, PublicKey: pub(old), ExpiredAt: expired}}
			c.Federation.KeyValidity = 2 * time.Hour
			c.Federation.WellKnownServer = "federation.ministere-a.test:443"
		}}},
		testserver.FederationMember{Name: nameB},
	)
	a, b := servers[0], servers[1]
	for _, path := range []string{"/_matrix/key/v2/server", "/_matrix/key/v2/server/" + a.Base.Key.ID} {
		status, body := fedHTTP(t, a, "GET", path, nil, nil)
		if status != 200 {
			t.Fatalf("%s: %d %v", path, status, body)
		}
		raw, _ := json.Marshal(body)
		var keys gomatrixserverlib.ServerKeys
		if err := json.Unmarshal(raw, &keys); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if checks, _ := gomatrixserverlib.CheckKeys(nameA, now, keys); !checks.AllChecksOK {
			t.Fatalf("%s fails the checks: %+v", path, checks)
		}
		if got := keys.VerifyKeys[gomatrixserverlib.KeyID(a.Base.Key.ID)].Key; string(got) != string(a.Base.Key.Public()) {
			t.Fatalf("verify_keys: %v", keys.VerifyKeys)
		}
		if o := keys.OldVerifyKeys[gomatrixserverlib.KeyID(old.ID)]; string(o.Key) != string(old.Public()) || o.ExpiredTS != spec.AsTimestamp(expired) {
			t.Fatalf("old_verify_keys: %+v", keys.OldVerifyKeys)
		}
		// valid_until_ts is now + key_validity (the minute covers the request).
		until := keys.ValidUntilTS.Time()
		if until.Before(now.Add(2*time.Hour-time.Minute)) || until.After(now.Add(2*time.Hour+time.Minute)) {
			t.Fatalf("valid_until_ts %v, now %v", until, now)
		}
	}

	status, body := fedHTTP(t, a, "GET", "/_matrix/federation/v1/version", nil, nil)
	if server, _ := body["server"].(map[string]any); status != 200 || server["name"] != "Chappe" {
		t.Fatalf("version: %d %v", status, body)
	}
	// Well-known, on the federation listener and on the client one.
	status, body = fedHTTP(t, a, "GET", "/.well-known/matrix/server", nil, nil)
	if status != 200 || body["m.server"] != "federation.ministere-a.test:443" {
		t.Fatalf("well-known: %d %v", status, body)
	}
	resp, err := http.Get(a.URL + "/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(data) != `{"m.server":"federation.ministere-a.test:443"}` {
		t.Fatalf("client well-known: %d %s", resp.StatusCode, data)
	}
	status, body = fedHTTP(t, b, "GET", "/.well-known/matrix/server", nil, nil)
	wantStatus(t, "no delegation", status, body, 404, "M_NOT_FOUND")
	resp, err = http.Get(b.URL + "/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("client well-known without delegation: %d", resp.StatusCode)
	}
}

// notaryKeys decodes a notary answer and checks each response is signed
// by the notary and by the server it is about.
func notaryKeys(t *testing.T, body map[string]any, notary string, notaryKey signingkey.Key, keysOf map[string]signingkey.Key) []gomatrixserverlib.ServerKeys {
	t.Helper()
	list, ok := body["server_keys"].([]any)
	if !ok {
		t.Fatalf("no server_keys: %v", body)
	}
	var out []gomatrixserverlib.ServerKeys
	for _, item := range list {
		raw, _ := json.Marshal(item)
		var keys gomatrixserverlib.ServerKeys
		if err := json.Unmarshal(raw, &keys); err != nil {
			t.Fatal(err)
		}
		if err := gomatrixserverlib.VerifyJSON(notary, gomatrixserverlib.KeyID(notaryKey.ID), notaryKey.Public(), raw); err != nil {
			t.Fatalf("not signed by the notary: %v", err)
		}
		own := keysOf[string(keys.ServerName)]
		if err := gomatrixserverlib.VerifyJSON(string(keys.ServerName), gomatrixserverlib.KeyID(own.ID), own.Public(), raw); err != nil {
			t.Fatalf("not signed by %s: %v", keys.ServerName, err)
		}
		out = append(out, keys)
	}
	return out
}

func TestNotaryQuery(t *testing.T) {
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA},
		testserver.FederationMember{Name: nameB},
		testserver.FederationMember{Name: nameOut, Outside: true},
	)
	a, b, out := servers[0], servers[1], servers[2]
	keysOf := map[string]signingkey.Key{nameA: a.Base.Key, nameB: b.Base.Key, nameOut: out.Base.Key}

	// A fetches B's keys for the query and signs the answer too.
	query := `{"server_keys": {"` + nameB + `": {}, "` + nameA + `": {"` + a.Base.Key.ID + `": {"minimum_valid_until_ts": 1}}}}`
	status, body := fedHTTP(t, a, "POST", "/_matrix/key/v2/query", []byte(query), nil)
	if status != 200 {
		t.Fatalf("query: %d %v", status, body)
	}
	got := notaryKeys(t, body, nameA, a.Base.Key, keysOf)
	names := map[spec.ServerName]bool{}
	for _, k := range got {
		names[k.ServerName] = true
	}
	if len(got) != 2 || !names[nameA] || !names[nameB] {
		t.Fatalf("answer for %v", names)
	}

	// The GET form, a key ID filter, and minimum_valid_until_ts beyond
	// what B publishes: the cached answer is still given.
	far := spec.AsTimestamp(time.Now().Add(30 * 24 * time.Hour))
	status, body = fedHTTP(t, a, "GET", "/_matrix/key/v2/query/"+nameB+"?minimum_valid_until_ts="+strconv.FormatUint(uint64(far), 10), nil, nil)
	if status != 200 || len(notaryKeys(t, body, nameA, a.Base.Key, keysOf)) != 1 {
		t.Fatalf("GET query: %d %v", status, body)
	}
	status, body = fedHTTP(t, a, "POST", "/_matrix/key/v2/query", []byte(`{"server_keys": {"`+nameB+`": {"ed25519:nope": {}}}}`), nil)
	if status != 200 || len(notaryKeys(t, body, nameA, a.Base.Key, keysOf)) != 0 {
		t.Fatalf("unknown key ID: %d %v", status, body)
	}

	// A server A may not contact: nothing, and A did not ask it.
	status, body = fedHTTP(t, a, "GET", "/_matrix/key/v2/query/"+nameOut, nil, nil)
	if status != 200 || len(notaryKeys(t, body, nameA, a.Base.Key, keysOf)) != 0 || storedKeys(t, a, nameOut) != 0 {
		t.Fatalf("outsider: %d %v", status, body)
	}

	// Through the library's client, as another server's notary fetcher.
	results, err := b.Server.Federation.Client().LookupServerKeys(ctxT(t), nameA, map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp{
		{ServerName: nameB, KeyID: gomatrixserverlib.KeyID(b.Base.Key.ID)}: spec.AsTimestamp(time.Now()),
	})
	if err != nil || len(results) != 1 || results[0].ServerName != nameB {
		t.Fatalf("LookupServerKeys: %+v %v", results, err)
	}

	// Bad queries.
	status, body = fedHTTP(t, a, "POST", "/_matrix/key/v2/query", []byte(`{nope`), nil)
	wantStatus(t, "not json", status, body, 400, "M_NOT_JSON")
	status, body = fedHTTP(t, a, "POST", "/_matrix/key/v2/query", []byte(`{}`), nil)
	wantStatus(t, "no server_keys", status, body, 400, "M_MISSING_PARAM")
	status, body = fedHTTP(t, a, "POST", "/_matrix/key/v2/query", []byte(`{"server_keys": []}`), nil)
	wantStatus(t, "server_keys not an object", status, body, 400, "M_BAD_JSON")
	status, body = fedHTTP(t, a, "GET", "/_matrix/key/v2/query/"+nameB+"?minimum_valid_until_ts=soon", nil, nil)
	wantStatus(t, "bad minimum", status, body, 400, "M_INVALID_PARAM")
}

// A trusted key server answers for servers this one does not contact;
// its answers count only when signed with the configured key.
func TestTrustedKeyServer(t *testing.T) {
	const nameN, nameC, nameA2 = "notaire.test", "ministere-c.test", "ministere-a2.test"
	notaryKey, presetN := presetKey(t)
	wrong, _ := signingkey.Generate()
	trusting := func(key signingkey.Key) testserver.Option {
		return func(c *config.Config) {
			// C is not allowed: its keys can only come from the notary.
			c.Federation.AllowedServers = []string{c.ServerName, nameN}
			c.Federation.TrustedKeyServers = []config.KeyServer{{ServerName: nameN, VerifyKeys: map[string]string{notaryKey.ID: pub(key)}}}
		}
	}
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA, Options: []testserver.Option{trusting(notaryKey)}},
		testserver.FederationMember{Name: nameA2, Options: []testserver.Option{trusting(wrong)}},
		testserver.FederationMember{Name: nameN, Options: []testserver.Option{presetN}},
		testserver.FederationMember{Name: nameC},
	)
	a, a2, c := servers[0], servers[1], servers[3]
	ctx := ctxT(t)
	signed := signAs(t, nameC, c.Base.Key, `{"from":"c"}`)
	if err := a.Server.Federation.VerifyJSON(ctx, nameC, signed); err != nil {
		t.Fatalf("A through the notary: %v", err)
	}
	if storedKeys(t, a, nameC) != 1 {
		t.Fatal("the notary's answer for C is not cached")
	}
	if err := a2.Server.Federation.VerifyJSON(ctx, nameC, signed); err == nil {
		t.Fatal("A2 trusted a notary answer not signed with the configured key")
	}
}

// Pinned keys are used as they are and never fetched.
func TestPinnedKeys(t *testing.T) {
	const nameA2 = "ministere-a2.test"
	keyB, presetB := presetKey(t)
	wrong, _ := signingkey.Generate()
	pin := func(key string) testserver.Option {
		return func(c *config.Config) {
			c.Federation.PinnedKeys = map[string]map[string]string{nameB: {keyB.ID: key}}
		}
	}
	servers := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: nameA, Options: []testserver.Option{pin(pub(keyB))}},
		testserver.FederationMember{Name: nameA2, Options: []testserver.Option{pin(pub(wrong))}},
		testserver.FederationMember{Name: nameB, Options: []testserver.Option{presetB}},
	)
	a, a2 := servers[0], servers[1]
	ctx := ctxT(t)
	signed := signAs(t, nameB, keyB, `{"pinned":true}`)
	if err := a.Server.Federation.VerifyJSON(ctx, nameB, signed); err != nil {
		t.Fatal(err)
	}
	// A2 pinned a wrong key: B's real signature fails, B is not asked.
	if err := a2.Server.Federation.VerifyJSON(ctx, nameB, signed); err == nil {
		t.Fatal("a signature verified against a key that is not the pinned one")
	}
	// Nor under another key ID: a pinned server's keys are never fetched.
	other, _ := signingkey.Generate()
	if err := a.Server.Federation.VerifyJSON(ctx, nameB, signAs(t, nameB, other, `{}`)); err == nil {
		t.Fatal("unpinned key ID verified")
	}
	if storedKeys(t, a, nameB)+storedKeys(t, a2, nameB) != 0 {
		t.Fatal("a pinned server's keys were fetched")
	}
}
