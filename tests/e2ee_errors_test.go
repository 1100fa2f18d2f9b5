package tests

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// signedDeviceKeys builds device keys for (user, device) signed with a new
// ed25519 key, as a client would.
func signedDeviceKeys(t *testing.T, user, device string) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	obj, _ := json.Marshal(map[string]any{
		"user_id": user, "device_id": device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + device: b64, "curve25519:" + device: b64},
	})
	signed, err := gomatrixserverlib.SignJSON(user, gomatrixserverlib.KeyID("ed25519:"+device), priv, obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed), priv
}

func TestE2EEKeyUploadErrors(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	up := srv.URL + "/_matrix/client/v3/keys/upload"
	user, dev := alice.UserID.String(), alice.DeviceID.String()

	// Another user's or device's keys.
	wrong, _ := signedDeviceKeys(t, "@mallory:"+srv.Config.ServerName, dev)
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":`+wrong+`}`), 400, "M_INVALID_PARAM")
	wrong, _ = signedDeviceKeys(t, user, "OTHERDEVICE")
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":`+wrong+`}`), 400, "M_INVALID_PARAM")
	// A bad self-signature.
	good, _ := signedDeviceKeys(t, user, dev)
	var obj map[string]any
	_ = json.Unmarshal([]byte(good), &obj)
	obj["algorithms"] = []string{"tampered"}
	tampered, _ := json.Marshal(obj)
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":`+string(tampered)+`}`), 400, "M_INVALID_SIGNATURE")
	// Good keys, then the same again, then different ones.
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":`+good+`}`), 200, "")
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":`+good+`}`), 200, "")
	other, _ := signedDeviceKeys(t, user, dev)
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":`+other+`}`), 400, "M_INVALID_PARAM")
	// One-time keys: a reused ID with other content, a malformed ID, too many.
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"one_time_keys":{"signed_curve25519:A":{"key":"x"}}}`), 200, "")
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"one_time_keys":{"signed_curve25519:A":{"key":"x"}}}`), 200, "")
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"one_time_keys":{"signed_curve25519:A":{"key":"y"}}}`), 400, "M_INVALID_PARAM")
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"one_time_keys":{"nocolon":{"key":"y"}}}`), 400, "M_INVALID_PARAM")
	many := map[string]any{}
	for i := range 101 {
		many[fmt.Sprintf("signed_curve25519:K%d", i)] = map[string]string{"key": "k"}
	}
	body, _ := json.Marshal(map[string]any{"one_time_keys": many})
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, string(body)), 400, "M_INVALID_PARAM")
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken, `{"device_keys":"nope"}`), 400, "M_BAD_JSON")
	// Query and claim with malformed user IDs; /keys/changes without tokens.
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/query", alice.AccessToken, `{"device_keys":{"bob":[]}}`), 400, "M_INVALID_PARAM")
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/claim", alice.AccessToken, `{}`), 400, "M_MISSING_PARAM")
	wantStatus(t, rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/keys/changes?from=s1", alice.AccessToken, ``), 400, "M_MISSING_PARAM")
	wantStatus(t, rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/keys/changes?from=x&to=y", alice.AccessToken, ``), 400, "M_INVALID_PARAM")
	// Cross-signing: a self-signing key not signed by the master key.
	mpub, _, _ := ed25519.GenerateKey(rand.Reader)
	spub, _, _ := ed25519.GenerateKey(rand.Reader)
	mb, sb := base64.RawStdEncoding.EncodeToString(mpub), base64.RawStdEncoding.EncodeToString(spub)
	cs := fmt.Sprintf(`{"master_key":{"user_id":%q,"usage":["master"],"keys":{"ed25519:%s":%q}},
		"self_signing_key":{"user_id":%q,"usage":["self_signing"],"keys":{"ed25519:%s":%q}}}`, user, mb, mb, user, sb, sb)
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/device_signing/upload", alice.AccessToken, cs), 400, "M_INVALID_SIGNATURE")
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/device_signing/upload", alice.AccessToken, `{}`), 400, "M_MISSING_PARAM")
	// A signature over an unknown key is a per-item failure.
	resp := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/signatures/upload", alice.AccessToken,
		fmt.Sprintf(`{%q:{"NODEVICE":{"user_id":%q,"device_id":"NODEVICE","keys":{}}}}`, user, user))
	fails, _ := resp.body["failures"].(map[string]any)
	if resp.status != 200 || fails[user] == nil {
		t.Fatalf("signature over an unknown key: %d %v", resp.status, resp.body)
	}
}

// wantStatus checks a status and, when code is set, the errcode.
func wantStatus(t *testing.T, resp rawResponse, status int, code string) {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status %d, want %d: %v", resp.status, status, resp.body)
	}
	if code != "" && resp.body["errcode"] != code {
		t.Fatalf("errcode %v, want %s: %v", resp.body["errcode"], code, resp.body)
	}
}

// One-time keys run out, then the fallback key is handed out (and
// reported used in /sync); a key is never handed out twice.
func TestE2EEClaimFallback(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	up := srv.URL + "/_matrix/client/v3/keys/upload"
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken,
		`{"one_time_keys":{"signed_curve25519:A":{"key":"a"},"signed_curve25519:B":{"key":"b"}},
		  "fallback_keys":{"signed_curve25519:F":{"key":"f","fallback":true}}}`), 200, "")
	sync := must[*mautrix.RespSync](t)(alice.SyncRequest(ctxT(t), 0, "", "", false, ""))
	if sync.DeviceOTKCount.SignedCurve25519 != 2 || len(sync.FallbackKeys) != 1 {
		t.Fatalf("counts %+v, unused fallback %v", sync.DeviceOTKCount, sync.FallbackKeys)
	}
	claim := fmt.Sprintf(`{"one_time_keys":{%q:{%q:"signed_curve25519"}}}`, alice.UserID, alice.DeviceID)
	seen := map[string]bool{}
	for i := range 4 {
		resp := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/claim", bob.AccessToken, claim)
		keys := resp.body["one_time_keys"].(map[string]any)[alice.UserID.String()].(map[string]any)[alice.DeviceID.String()].(map[string]any)
		for id := range keys {
			if i < 2 && seen[id] {
				t.Fatalf("one-time key %s handed out twice", id)
			}
			if i >= 2 && id != "signed_curve25519:F" {
				t.Fatalf("claim %d got %s, want the fallback key", i, id)
			}
			seen[id] = true
		}
	}
	sync = must[*mautrix.RespSync](t)(alice.SyncRequest(ctxT(t), 0, "", "", false, ""))
	if sync.DeviceOTKCount.SignedCurve25519 != 0 || len(sync.FallbackKeys) != 0 {
		t.Fatalf("after claims: counts %+v, unused fallback %v", sync.DeviceOTKCount, sync.FallbackKeys)
	}
}

// To-device: idempotent per transaction, "*" reaches every device, kept
// until a later sync acknowledges them, and wakes a waiting sync.
func TestE2EESendToDevice(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	first := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, ""))
	send := func(txn string) {
		wantStatus(t, rawRequest(t, "PUT", srv.URL+"/_matrix/client/v3/sendToDevice/m.test/"+txn, alice.AccessToken,
			fmt.Sprintf(`{"messages":{%q:{"*":{"n":%q}}}}`, bob.UserID, txn)), 200, "")
	}
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		r, _ := bob.SyncRequest(ctx, 10000, first.NextBatch, "", false, "")
		done <- r
	}()
	time.Sleep(200 * time.Millisecond)
	send("t1")
	send("t1") // retried: stored once
	var woken *mautrix.RespSync
	select {
	case woken = <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("a waiting sync was not woken by a to-device message")
	}
	if woken == nil || len(woken.ToDevice.Events) != 1 {
		t.Fatalf("to-device events: %+v", woken)
	}
	// The same since again: the same message (not acknowledged yet).
	again := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, first.NextBatch, "", false, ""))
	if len(again.ToDevice.Events) != 1 {
		t.Fatalf("repeated sync lost the message: %d", len(again.ToDevice.Events))
	}
	// Acknowledged by the next since: gone.
	after := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, again.NextBatch, "", false, ""))
	if len(after.ToDevice.Events) != 0 {
		t.Fatalf("acknowledged messages sent again: %d", len(after.ToDevice.Events))
	}
	// Over the per-sync limit: the rest comes next time.
	for i := range 120 {
		send(fmt.Sprintf("bulk%d", i))
	}
	got, since := 0, after.NextBatch
	for range 3 {
		r := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, since, "", false, ""))
		if len(r.ToDevice.Events) > 100 {
			t.Fatalf("%d to-device events in one sync", len(r.ToDevice.Events))
		}
		got += len(r.ToDevice.Events)
		since = r.NextBatch
	}
	if got != 120 {
		t.Fatalf("delivered %d of 120 to-device messages", got)
	}
}

// Server-side key backup: versions, the better-key rule, etag and count,
// wrong versions.
func TestE2EEKeyBackup(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	tok := alice.AccessToken
	base := srv.URL + "/_matrix/client/v3/room_keys"
	wantStatus(t, rawRequest(t, "GET", base+"/version", tok, ""), 404, "M_NOT_FOUND")
	wantStatus(t, rawRequest(t, "POST", base+"/version", tok, `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2"}`), 400, "M_MISSING_PARAM")
	v1 := rawRequest(t, "POST", base+"/version", tok, `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"abc"}}`)
	version, _ := v1.body["version"].(string)
	if version == "" {
		t.Fatalf("create: %v", v1.body)
	}
	key := func(idx, fwd int, verified bool, data string) string {
		return fmt.Sprintf(`{"first_message_index":%d,"forwarded_count":%d,"is_verified":%v,"session_data":{"d":%q}}`, idx, fwd, verified, data)
	}
	room := "!room:" + srv.Config.ServerName
	sess := base + "/keys/" + room + "/S1?version=" + version
	put := rawRequest(t, "PUT", sess, tok, key(5, 0, false, "first"))
	if put.status != 200 || put.body["count"] != float64(1) {
		t.Fatalf("put: %d %v", put.status, put.body)
	}
	etag := put.body["etag"]
	// Worse key: kept the stored one, etag unchanged.
	put = rawRequest(t, "PUT", sess, tok, key(7, 0, false, "worse"))
	if put.body["etag"] != etag {
		t.Fatalf("a worse key changed the etag: %v", put.body)
	}
	// Better (lower index), then verified beats unverified.
	rawRequest(t, "PUT", sess, tok, key(2, 0, false, "better"))
	rawRequest(t, "PUT", sess, tok, key(9, 3, true, "verified"))
	got := rawRequest(t, "GET", sess, tok, "")
	if sd, _ := got.body["session_data"].(map[string]any); sd["d"] != "verified" {
		t.Fatalf("kept %v", got.body)
	}
	all := rawRequest(t, "GET", base+"/keys?version="+version, tok, "")
	if _, ok := all.body["rooms"].(map[string]any)[room]; !ok {
		t.Fatalf("restore all: %v", all.body)
	}
	info := rawRequest(t, "GET", base+"/version", tok, "")
	if info.body["count"] != float64(1) || info.body["version"] != version {
		t.Fatalf("version info: %v", info.body)
	}
	// A new version: writing to the old one is refused with the current one.
	v2 := rawRequest(t, "POST", base+"/version", tok, `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"def"}}`)
	wrong := rawRequest(t, "PUT", sess, tok, key(1, 0, false, "old"))
	wantStatus(t, wrong, 403, "M_WRONG_ROOM_KEYS_VERSION")
	if wrong.body["current_version"] != v2.body["version"] {
		t.Fatalf("current_version: %v", wrong.body)
	}
	wantStatus(t, rawRequest(t, "GET", base+"/keys/"+room+"/NOPE?version="+v2.body["version"].(string), tok, ""), 404, "M_NOT_FOUND")
	wantStatus(t, rawRequest(t, "GET", base+"/keys?version=999", tok, ""), 404, "M_NOT_FOUND")
	wantStatus(t, rawRequest(t, "GET", base+"/keys", tok, ""), 400, "M_MISSING_PARAM")
	wantStatus(t, rawRequest(t, "PUT", base+"/version/"+version, tok, `{"algorithm":"other","auth_data":{}}`), 400, "M_INVALID_PARAM")
	wantStatus(t, rawRequest(t, "DELETE", base+"/version/"+version, tok, ""), 200, "")
	wantStatus(t, rawRequest(t, "DELETE", base+"/version/"+version, tok, ""), 404, "M_NOT_FOUND")
	wantStatus(t, rawRequest(t, "PUT", base+"/keys/"+room+"/S1?version="+v2.body["version"].(string), tok, `{"first_message_index":1}`), 400, "M_MISSING_PARAM")
}
