//go:build goolm

package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Real end-to-end encryption (goolm) between users of two servers: the
// Olm sessions need the remote user's device keys and one-time keys
// (/keys/query and /keys/claim over federation), the Megolm keys travel
// as to-device messages over federation, and the sender's client learns
// of the other side's new and deleted devices through device_lists.changed
// fed by the remote m.device_list_update EDUs.
func TestFederationE2EEConversationAndDevices(t *testing.T) {
	srv := testserver.NewFederation(t, fedA, fedB)
	aliceCli := srv[0].RegisterUser(t, "alice")
	aliceNet := watchTransport(aliceCli)
	alice := newCryptoClient(t, aliceCli)
	bobCli := srv[1].RegisterUser(t, "bob")
	bob := newCryptoClient(t, bobCli)
	room := encryptedRoom(t, alice, bob)
	members := []id.UserID{alice.cli.UserID, bob.cli.UserID}

	alice.send(t, room, members, "bonjour B")
	bob.decrypted(t, room, "bonjour B")
	bob.send(t, room, members, "bonjour A")
	alice.decrypted(t, room, "bonjour A")

	// bob's second device, logged in later on B: alice's client on A hears
	// of it, shares the room key with it over federation, it decrypts.
	bob2Cli := loginAgain(t, bobCli, "password-bob")
	bob2Net := watchTransport(bob2Cli)
	bob2 := newCryptoClient(t, bob2Cli)
	waitE2EE(t, "alice to learn bob's new device", func() bool { return alice.knowsDevice(bob.cli.UserID, bob2.cli.DeviceID) })
	aliceNet.reset()
	alice.send(t, room, members, "aux deux appareils")
	bob2.decrypted(t, room, "aux deux appareils")
	bob.decrypted(t, room, "aux deux appareils")
	if !aliceNet.sentRoomKeyTo(bob.cli.UserID, bob2.cli.DeviceID) {
		t.Fatalf("alice's to-device messages %v do not reach bob's new device %s", aliceNet.recipients(), bob2.cli.DeviceID)
	}

	// bob deletes it on B: A stops serving its keys, alice's client drops
	// it and encrypts the next message to bob's remaining device only.
	bob2Net.park() // its token dies with it: no /sync retry loop
	deleteDevice(t, srv[1], bobCli, "bob", bob2.cli.DeviceID)
	waitE2EE(t, "alice to forget bob's deleted device", func() bool { return !alice.knowsDevice(bob.cli.UserID, bob2.cli.DeviceID) })
	q := must[*mautrix.RespQueryKeys](t)(alice.cli.QueryKeys(ctxT(t), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bob.cli.UserID: {}}}))
	if _, ok := q.DeviceKeys[bob.cli.UserID][bob2.cli.DeviceID]; ok {
		t.Fatalf("A still serves the deleted device's keys: %v", q.DeviceKeys[bob.cli.UserID])
	}
	if _, ok := q.DeviceKeys[bob.cli.UserID][bob.cli.DeviceID]; !ok {
		t.Fatalf("A lost bob's remaining device: %v (failures %v)", q.DeviceKeys[bob.cli.UserID], q.Failures)
	}
	aliceNet.reset()
	alice.send(t, room, members, "après suppression")
	bob.decrypted(t, room, "après suppression")
	if aliceNet.sentRoomKeyTo(bob.cli.UserID, bob2.cli.DeviceID) || !aliceNet.sentRoomKeyTo(bob.cli.UserID, bob.cli.DeviceID) {
		t.Fatalf("after the deletion alice's to-device messages went to %v, want %s only", aliceNet.recipients(), bob.cli.DeviceID)
	}
}

// Three servers in one encrypted room: each message decrypts on the two
// other servers, whoever sends it.
func TestFederationE2EEThreeServers(t *testing.T) {
	srv := testserver.NewFederation(t, fedA, fedB, fedC)
	alice := newCryptoClient(t, srv[0].RegisterUser(t, "alice"))
	bob := newCryptoClient(t, srv[1].RegisterUser(t, "bob"))
	carol := newCryptoClient(t, srv[2].RegisterUser(t, "carol"))
	room := encryptedRoom(t, alice, bob, carol)
	members := []id.UserID{alice.cli.UserID, bob.cli.UserID, carol.cli.UserID}

	alice.send(t, room, members, "de A")
	bob.decrypted(t, room, "de A")
	carol.decrypted(t, room, "de A")
	carol.send(t, room, members, "de C")
	alice.decrypted(t, room, "de C")
	bob.decrypted(t, room, "de C")
	bob.send(t, room, members, "de B")
	alice.decrypted(t, room, "de B")
	carol.decrypted(t, room, "de B")
}

// deleteDevice deletes one of the user's devices with password
// user-interactive auth.
func deleteDevice(t *testing.T, srv *testserver.Server, cli *mautrix.Client, localpart string, device id.DeviceID) {
	t.Helper()
	body := func(auth string) string {
		return `{"devices":["` + device.String() + `"]` + auth + `}`
	}
	url := srv.URL + "/_matrix/client/v3/delete_devices"
	session := wantUIA(t, rawRequest(t, "POST", url, cli.AccessToken, body("")), "", "m.login.password")
	resp := rawRequest(t, "POST", url, cli.AccessToken, body(`,"auth":`+passwordAuth(session, localpart, "password-"+localpart)))
	if resp.status != 200 {
		t.Fatalf("delete device %s: %d %v", device, resp.status, resp.body)
	}
}

// clientTransport sits under a test client's HTTP client: it records the
// recipients of the client's encrypted to-device messages, and can park
// every later request until its context ends (for a device about to be
// deleted, whose client would otherwise retry /sync in a loop).
type clientTransport struct {
	next http.RoundTripper

	mu     sync.Mutex
	sent   map[string]bool // "user|device" of m.room.encrypted to-device messages
	parked bool
}

// watchTransport installs a clientTransport on the client; call it before
// the client starts syncing.
func watchTransport(cli *mautrix.Client) *clientTransport {
	ct := &clientTransport{next: http.DefaultTransport, sent: map[string]bool{}}
	cli.Client = &http.Client{Transport: ct, Timeout: cli.Client.Timeout}
	return ct
}

func (ct *clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ct.mu.Lock()
	parked := ct.parked
	ct.mu.Unlock()
	if parked {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/sendToDevice/"+event.ToDeviceEncrypted.Type+"/") && req.GetBody != nil {
		ct.record(req)
	}
	return ct.next.RoundTrip(req)
}

func (ct *clientTransport) record(req *http.Request) {
	body, err := req.GetBody()
	if err != nil {
		return
	}
	defer body.Close()
	var msg struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if json.NewDecoder(body).Decode(&msg) != nil {
		return
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for user, devices := range msg.Messages {
		for device := range devices {
			ct.sent[user+"|"+device] = true
		}
	}
}

func (ct *clientTransport) park() {
	ct.mu.Lock()
	ct.parked = true
	ct.mu.Unlock()
}

func (ct *clientTransport) reset() {
	ct.mu.Lock()
	ct.sent = map[string]bool{}
	ct.mu.Unlock()
}

// sentRoomKeyTo says whether an encrypted to-device message (the Megolm
// key) went to that device since the last reset.
func (ct *clientTransport) sentRoomKeyTo(user id.UserID, device id.DeviceID) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.sent[user.String()+"|"+device.String()]
}

func (ct *clientTransport) recipients() []string {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	var out []string
	for r := range ct.sent {
		out = append(out, r)
	}
	return out
}
