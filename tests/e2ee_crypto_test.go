//go:build goolm

package tests

import (
	"testing"

	"maunium.net/go/mautrix"
)

// Two users in an encrypted room exchange messages that decrypt; a second
// device of one of them, logged in later, decrypts new messages; once it
// is deleted, the other side's client stops encrypting to it.
func TestE2EEConversationAndDevices(t *testing.T) {
	srv, alice, bob, room, members := aliceAndBob(t)
	bobCli := bob.cli

	alice.send(t, room, members, "hello bob")
	bob.decrypted(t, room, "hello bob")
	bob.send(t, room, members, "hello alice")
	alice.decrypted(t, room, "hello alice")

	// A second device of bob: alice hears of it through device_lists.
	bob2 := newCryptoClient(t, loginAgain(t, bobCli, "password-bob"))
	waitE2EE(t, "alice to learn bob's new device", func() bool { return alice.knowsDevice(bob.cli.UserID, bob2.cli.DeviceID) })
	alice.send(t, room, members, "to both devices")
	bob2.decrypted(t, room, "to both devices")
	bob.decrypted(t, room, "to both devices")

	// Deleting it removes its keys; alice's client drops it.
	resp := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/delete_devices", bobCli.AccessToken,
		`{"devices":["`+bob2.cli.DeviceID.String()+`"]}`)
	session := wantUIA(t, resp, "", "m.login.password")
	resp = rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/delete_devices", bobCli.AccessToken,
		`{"devices":["`+bob2.cli.DeviceID.String()+`"],"auth":`+passwordAuth(session, "bob", "password-bob")+`}`)
	if resp.status != 200 {
		t.Fatalf("delete device: %d %v", resp.status, resp.body)
	}
	waitE2EE(t, "alice to forget bob's deleted device", func() bool { return !alice.knowsDevice(bob.cli.UserID, bob2.cli.DeviceID) })
	q := must[*mautrix.RespQueryKeys](t)(alice.cli.QueryKeys(ctxT(t), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bob.cli.UserID: {}}}))
	if _, ok := q.DeviceKeys[bob.cli.UserID][bob2.cli.DeviceID]; ok {
		t.Fatal("the deleted device's keys are still served")
	}
	alice.send(t, room, members, "after deletion")
	bob.decrypted(t, room, "after deletion")
}
