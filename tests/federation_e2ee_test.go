package tests

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// What E2EE needs across servers: a remote user's device keys and
// one-time keys, to-device messages, device-list changes; and presence.
func TestFederationKeysToDeviceAndPresence(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	publicRoom(t, ctx, alice, bob)
	bobID, bobDev := bob.id().String(), bob.cli.DeviceID.String()

	keys, _ := signedDeviceKeys(t, bobID, bobDev)
	wantStatus(t, rawRequest(t, "POST", srv[1].URL+"/_matrix/client/v3/keys/upload", bob.cli.AccessToken,
		`{"device_keys":`+keys+`,"one_time_keys":{"signed_curve25519:AAAA":{"key":"otk"}}}`), 200, "")

	q := rawRequest(t, "POST", srv[0].URL+"/_matrix/client/v3/keys/query", alice.cli.AccessToken,
		`{"device_keys":{"`+bobID+`":[]}}`)
	wantStatus(t, q, 200, "")
	devices, _ := q.body["device_keys"].(map[string]any)[bobID].(map[string]any)
	got, _ := json.Marshal(devices[bobDev])
	var want, have map[string]any
	_ = json.Unmarshal([]byte(keys), &want)
	_ = json.Unmarshal(got, &have)
	if have == nil || !jsonEqual(want["signatures"], have["signatures"]) || !jsonEqual(want["keys"], have["keys"]) {
		t.Fatalf("remote device keys: %s (failures %v), want %s", got, q.body["failures"], keys)
	}

	c := rawRequest(t, "POST", srv[0].URL+"/_matrix/client/v3/keys/claim", alice.cli.AccessToken,
		`{"one_time_keys":{"`+bobID+`":{"`+bobDev+`":"signed_curve25519"}}}`)
	wantStatus(t, c, 200, "")
	claimed, _ := c.body["one_time_keys"].(map[string]any)[bobID].(map[string]any)
	if _, ok := claimed[bobDev].(map[string]any)["signed_curve25519:AAAA"]; !ok {
		t.Fatalf("remote claim: %v", c.body)
	}

	// A to-device message reaches bob's device on the other server.
	wantStatus(t, rawRequest(t, "PUT", srv[0].URL+"/_matrix/client/v3/sendToDevice/m.test/txn1", alice.cli.AccessToken,
		`{"messages":{"`+bobID+`":{"`+bobDev+`":{"secret":"42"}}}}`), 200, "")
	bob.waitFor("alice's to-device message", func() bool {
		for _, ev := range bob.toDevice {
			if ev.Type.Type == "m.test" && ev.Sender == alice.id() && ev.Content.Raw["secret"] == "42" {
				return true
			}
		}
		return false
	})

	// bob's new device shows in alice's device_lists.changed.
	if err := alice.sync(ctx); err != nil {
		t.Fatal(err)
	}
	alice.changed = map[id.UserID]bool{}
	other := loginAgain(t, bob.cli, "password-bob")
	otherKeys, _ := signedDeviceKeys(t, bobID, other.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", srv[1].URL+"/_matrix/client/v3/keys/upload", other.AccessToken, `{"device_keys":`+otherKeys+`}`), 200, "")
	alice.waitFor("bob's device list change", func() bool { return alice.changed[bob.id()] })

	// Presence.
	if err := bob.cli.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "au bureau"}); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("bob's presence", func() bool {
		for _, ev := range alice.presence {
			if ev.Sender == bob.id() && ev.Content.Raw["status_msg"] == "au bureau" {
				return true
			}
		}
		return false
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
