//go:build goolm

package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Dehydrated devices (MSC3814). mautrix has no dehydration of its own, so
// the test plays the client's part with an Olm account (goolm) as Element's
// Rust crypto does with vodozemac: a device whose ID is its Curve25519
// key, uploaded with signed keys, whose pickle is the device data. Bob's
// mautrix client, unaware of any of this, sees a device of Alice and shares
// his room key with it; a new session of Alice reads the device's
// messages, unpickles it from the device data, and decrypts.
func TestE2EEDehydratedDevice(t *testing.T) {
	srv, alice, bob, room, members := aliceAndBob(t)
	aliceCli := alice.cli
	ctx := ctxT(t)
	// Bob's client tracks Alice's devices once it has encrypted to them.
	bob.send(t, room, members, "hello")
	alice.decrypted(t, room, "hello")

	// No device yet: M_NOT_FOUND, which is how clients detect support.
	_, err := aliceCli.MakeRequest(ctx, "GET", dehydratedURL(aliceCli), nil, nil)
	wantMatrixError(t, err, 404, "M_NOT_FOUND")
	_, err = aliceCli.MakeRequest(ctx, "DELETE", dehydratedURL(aliceCli), struct{}{}, nil)
	wantMatrixError(t, err, 404, "M_NOT_FOUND")

	pickleKey := []byte("the dehydration key from secret storage")
	dd := newDehydratedAccount(t)
	var put struct {
		DeviceID id.DeviceID `json:"device_id"`
	}
	must[[]byte](t)(aliceCli.MakeRequest(ctx, "PUT", dehydratedURL(aliceCli), dd.putBody(t, aliceCli.UserID, pickleKey), &put))
	if put.DeviceID != dd.id {
		t.Fatalf("PUT answered device %q, want %q", put.DeviceID, dd.id)
	}

	// Others see a device of Alice (through device_lists); Alice sees no
	// new session, and the device cannot log in.
	waitE2EE(t, "bob to learn alice's dehydrated device", func() bool { return bob.knowsDevice(alice.cli.UserID, dd.id) })
	devices := must[*mautrix.RespDevicesInfo](t)(aliceCli.GetDevicesInfo(ctx))
	for _, d := range devices.Devices {
		if d.DeviceID == dd.id {
			t.Fatal("the dehydrated device is listed as a session")
		}
	}
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/login", "",
		fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"password-alice","device_id":%q}`, dd.id)),
		403, "M_FORBIDDEN")
	q := must[*mautrix.RespQueryKeys](t)(bob.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.cli.UserID: {}}}))
	if k, ok := q.DeviceKeys[alice.cli.UserID][dd.id]; !ok || !k.Dehydrated || k.Unsigned["device_display_name"] != "Dehydrated device" {
		t.Fatalf("/keys/query: %+v", q.DeviceKeys[alice.cli.UserID])
	}

	// Bob's client shares its room key with every device of Alice's.
	bob.send(t, room, members, "while you were away")
	alice.decrypted(t, room, "while you were away")

	// A new session rehydrates: the device and its data, then its
	// messages in batches of one, until an empty batch.
	newCli := loginAgain(t, aliceCli, "password-alice")
	var got struct {
		DeviceID   id.DeviceID `json:"device_id"`
		DeviceData struct {
			Algorithm string `json:"algorithm"`
			Pickle    string `json:"device_pickle"`
		} `json:"device_data"`
	}
	must[[]byte](t)(newCli.MakeRequest(ctx, "GET", dehydratedURL(newCli), nil, &got))
	if got.DeviceID != dd.id || got.DeviceData.Algorithm != "org.matrix.msc3814.v1.olm" {
		t.Fatalf("GET: %+v", got)
	}
	restored, err := olm.AccountFromPickled([]byte(got.DeviceData.Pickle), pickleKey)
	if err != nil {
		t.Fatalf("unpickle the device data: %v", err)
	}
	events := readDehydratedEvents(t, newCli, dd.id)
	if len(events) == 0 {
		t.Fatal("no to-device message reached the dehydrated device")
	}
	// Reading deleted nothing: the first batch again gives the same.
	again := readDehydratedEvents(t, newCli, dd.id)
	if len(again) != len(events) {
		t.Fatalf("a second reading got %d messages, the first %d", len(again), len(events))
	}
	sessions := olmRoomKeys(t, restored, events)
	if !decryptsWith(alice, room, sessions, "while you were away") {
		t.Fatal("the dehydrated device's room keys do not decrypt Bob's message")
	}

	// Errors: another device's messages, a token not given, a session's
	// ID, no device keys.
	_, err = newCli.MakeRequest(ctx, "POST", dehydratedURL(newCli, newCli.DeviceID, "events"), struct{}{}, nil)
	wantMatrixError(t, err, 403, "M_FORBIDDEN")
	_, err = newCli.MakeRequest(ctx, "POST", dehydratedURL(newCli, dd.id, "events"), map[string]string{"next_batch": "x"}, nil)
	wantMatrixError(t, err, 400, "M_INVALID_PARAM")
	bad := newDehydratedAccount(t).putBody(t, aliceCli.UserID, pickleKey)
	bad["device_id"] = aliceCli.DeviceID
	_, err = newCli.MakeRequest(ctx, "PUT", dehydratedURL(newCli), bad, nil)
	wantMatrixError(t, err, 400, "M_INVALID_PARAM")
	delete(bad, "device_keys")
	_, err = newCli.MakeRequest(ctx, "PUT", dehydratedURL(newCli), bad, nil)
	wantMatrixError(t, err, 400, "M_MISSING_PARAM")

	// A new device replaces the old one: its keys and its messages go.
	dd2 := newDehydratedAccount(t)
	must[[]byte](t)(newCli.MakeRequest(ctx, "PUT", dehydratedURL(newCli), dd2.putBody(t, aliceCli.UserID, pickleKey), nil))
	waitE2EE(t, "bob to forget the replaced device", func() bool { return !bob.knowsDevice(alice.cli.UserID, dd.id) })
	_, err = newCli.MakeRequest(ctx, "POST", dehydratedURL(newCli, dd.id, "events"), struct{}{}, nil)
	wantMatrixError(t, err, 403, "M_FORBIDDEN")
	if evs := readDehydratedEvents(t, newCli, dd2.id); len(evs) != 0 {
		t.Fatalf("the new device has %d messages", len(evs))
	}
	// The old device uploaded again: its messages were deleted.
	must[[]byte](t)(newCli.MakeRequest(ctx, "PUT", dehydratedURL(newCli), dd.putBody(t, aliceCli.UserID, pickleKey), nil))
	if evs := readDehydratedEvents(t, newCli, dd.id); len(evs) != 0 {
		t.Fatalf("the replaced device's %d messages were kept", len(evs))
	}

	// Deleting it.
	var del struct {
		DeviceID id.DeviceID `json:"device_id"`
	}
	must[[]byte](t)(newCli.MakeRequest(ctx, "DELETE", dehydratedURL(newCli), struct{}{}, &del))
	if del.DeviceID != dd.id {
		t.Fatalf("DELETE answered %q", del.DeviceID)
	}
	_, err = newCli.MakeRequest(ctx, "GET", dehydratedURL(newCli), nil, nil)
	wantMatrixError(t, err, 404, "M_NOT_FOUND")
	waitE2EE(t, "bob to forget the deleted device", func() bool { return !bob.knowsDevice(alice.cli.UserID, dd.id) })
}

// dehydratedURL is an MSC3814 URL (path parts escaped, as device IDs hold
// base64's "/" and "+").
func dehydratedURL(cli *mautrix.Client, path ...any) string {
	return cli.BuildClientURL(append([]any{"unstable", "org.matrix.msc3814.v1", "dehydrated_device"}, path...)...)
}

// wantMatrixError checks that err is a Matrix error with status and code.
func wantMatrixError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
	if httpErr.Response.StatusCode != status || httpErr.RespError == nil || httpErr.RespError.ErrCode != code {
		t.Fatalf("want %d %s, got %d %s", status, code, httpErr.Response.StatusCode, httpErr.ResponseBody)
	}
}

// dehydratedAccount is the Olm account of a dehydrated device.
type dehydratedAccount struct {
	acct *crypto.OlmAccount
	id   id.DeviceID
}

// newDehydratedAccount makes an account whose ID holds a "/", so that the
// escaped slash in /dehydrated_device/{deviceId}/events is always tried.
func newDehydratedAccount(t *testing.T) *dehydratedAccount {
	t.Helper()
	for range 100 {
		acct := crypto.NewOlmAccount()
		if !strings.Contains(string(acct.IdentityKey()), "/") {
			continue
		}
		if err := acct.Internal.GenOneTimeKeys(5); err != nil {
			t.Fatal(err)
		}
		return &dehydratedAccount{acct: acct, id: id.DeviceID(acct.IdentityKey())}
	}
	t.Fatal("no Curve25519 key with a / in 100")
	return nil
}

// putBody is the PUT /dehydrated_device body: signed device keys (marked
// dehydrated), signed one-time keys, and the account pickled with key as
// the device data.
func (d *dehydratedAccount) putBody(t *testing.T, userID id.UserID, key []byte) map[string]any {
	t.Helper()
	sign := func(obj any) signatures.Signatures {
		sig, err := d.acct.SignJSON(obj)
		if err != nil {
			t.Fatal(err)
		}
		return signatures.NewSingleSignature(userID, id.KeyAlgorithmEd25519, d.id.String(), sig)
	}
	dk := &mautrix.DeviceKeys{
		UserID: userID, DeviceID: d.id, Dehydrated: true,
		Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, d.id): string(d.acct.IdentityKey()),
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, d.id):    string(d.acct.SigningKey()),
		},
	}
	dk.Signatures = sign(dk)
	otks, err := d.acct.Internal.OneTimeKeys()
	if err != nil {
		t.Fatal(err)
	}
	signed := map[id.KeyID]*mautrix.OneTimeKey{}
	for keyID, k := range otks {
		otk := &mautrix.OneTimeKey{Key: k, IsSigned: true}
		otk.Signatures = sign(otk)
		signed[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, keyID)] = otk
	}
	pickle, err := d.acct.Internal.Pickle(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"device_id":                   d.id,
		"initial_device_display_name": "Dehydrated device",
		"device_data":                 map[string]string{"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": string(pickle)},
		"device_keys":                 dk,
		"one_time_keys":               signed,
	}
}

// readDehydratedEvents reads the device's messages in batches of one,
// until the empty batch that the last next_batch gives.
func readDehydratedEvents(t *testing.T, cli *mautrix.Client, deviceID id.DeviceID) []json.RawMessage {
	t.Helper()
	var events []json.RawMessage
	next := ""
	for range 50 {
		var resp struct {
			Events    []json.RawMessage `json:"events"`
			NextBatch string            `json:"next_batch"`
		}
		body := map[string]string{}
		if next != "" {
			body["next_batch"] = next
		}
		url := cli.BuildURLWithQuery(mautrix.ClientURLPath{"unstable", "org.matrix.msc3814.v1", "dehydrated_device", deviceID, "events"}, map[string]string{"limit": "1"})
		must[[]byte](t)(cli.MakeRequest(ctxT(t), "POST", url, body, &resp))
		if resp.NextBatch == "" {
			t.Fatal("a batch without next_batch")
		}
		if len(resp.Events) == 0 {
			return events
		}
		if len(resp.Events) > 1 {
			t.Fatalf("%d events with limit=1", len(resp.Events))
		}
		events = append(events, resp.Events...)
		next = resp.NextBatch
	}
	t.Fatal("no empty batch after 50")
	return nil
}

// olmRoomKeys decrypts the m.room_key messages among the to-device events
// with the account, as the rehydrated device: session ID → session.
func olmRoomKeys(t *testing.T, acct olm.Account, events []json.RawMessage) map[id.SessionID]olm.InboundGroupSession {
	t.Helper()
	_, identity, err := acct.IdentityKeys()
	if err != nil {
		t.Fatal(err)
	}
	out := map[id.SessionID]olm.InboundGroupSession{}
	for _, raw := range events {
		var ev struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil || ev.Type != "m.room.encrypted" {
			continue
		}
		var content event.EncryptedEventContent
		if err := json.Unmarshal(ev.Content, &content); err != nil {
			t.Fatalf("encrypted to-device content: %v", err)
		}
		ct, ok := content.OlmCiphertext[identity]
		if !ok {
			continue
		}
		sender := id.Curve25519(content.SenderKey)
		sess, err := acct.NewInboundSessionFrom(&sender, ct.Body)
		if err != nil {
			t.Fatalf("olm session from the pre-key message: %v", err)
		}
		plain, err := sess.Decrypt(ct.Body, ct.Type)
		if err != nil {
			t.Fatalf("olm decrypt: %v", err)
		}
		var payload struct {
			Type    string `json:"type"`
			Content struct {
				SessionID  id.SessionID `json:"session_id"`
				SessionKey string       `json:"session_key"`
			} `json:"content"`
		}
		if err := json.Unmarshal(plain, &payload); err != nil || payload.Type != "m.room_key" {
			continue
		}
		igs, err := olm.NewInboundGroupSession([]byte(payload.Content.SessionKey))
		if err != nil {
			t.Fatalf("room key: %v", err)
		}
		out[payload.Content.SessionID] = igs
	}
	if len(out) == 0 {
		t.Fatal("no m.room_key among the dehydrated device's messages")
	}
	return out
}

// decryptsWith says whether one of the room's encrypted events decrypts
// to body with the given sessions alone.
func decryptsWith(cc *cryptoClient, roomID id.RoomID, sessions map[id.SessionID]olm.InboundGroupSession, body string) bool {
	cc.mu.Lock()
	evs := append([]*event.Event(nil), cc.encrypted...)
	cc.mu.Unlock()
	for _, evt := range evs {
		content, ok := evt.Content.Parsed.(*event.EncryptedEventContent)
		if evt.RoomID != roomID || !ok || sessions[content.SessionID] == nil {
			continue
		}
		plain, _, err := sessions[content.SessionID].Decrypt(content.MegolmCiphertext)
		if err != nil {
			continue // an index before the one the device was given
		}
		var msg struct {
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
		}
		if json.Unmarshal(plain, &msg) == nil && msg.Content.Body == body {
			return true
		}
	}
	return false
}
