//go:build goolm

package tests

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// cryptoClient is a mautrix client with an Olm machine (goolm, pure Go),
// syncing in the background as a real client does.
type cryptoClient struct {
	cli  *mautrix.Client
	mach *crypto.OlmMachine

	mu        sync.Mutex
	encrypted []*event.Event
}

func newCryptoClient(t *testing.T, cli *mautrix.Client) *cryptoClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ss := mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
	cli.StateStore = ss
	log := zerolog.Nop()
	mach := crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), ss)
	if err := mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cc := &cryptoClient{cli: cli, mach: mach}
	syncer := mautrix.NewDefaultSyncer()
	cli.Syncer = syncer
	syncer.OnSync(mach.ProcessSyncResponse)
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnEventType(event.StateMember, func(ctx context.Context, evt *event.Event) { mach.HandleMemberEvent(ctx, evt) })
	syncer.OnEventType(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		cc.mu.Lock()
		cc.encrypted = append(cc.encrypted, evt)
		cc.mu.Unlock()
	})
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("share keys: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = cli.SyncWithContext(ctx)
		}
	}()
	t.Cleanup(func() { cancel(); cli.StopSync(); <-done })
	return cc
}

// waitFor polls cond for up to 15 seconds.
func waitE2EE(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decrypted waits until an encrypted event of roomID decrypts to body.
func (cc *cryptoClient) decrypted(t *testing.T, roomID id.RoomID, body string) {
	t.Helper()
	var last error
	waitE2EE(t, "a decryptable message "+body, func() bool {
		cc.mu.Lock()
		evs := append([]*event.Event(nil), cc.encrypted...)
		cc.mu.Unlock()
		for _, evt := range evs {
			if evt.RoomID != roomID {
				continue
			}
			dec, err := cc.mach.DecryptMegolmEvent(context.Background(), evt)
			if err != nil {
				last = err
				continue
			}
			if dec.Content.AsMessage().Body == body {
				return true
			}
		}
		return false
	})
	_ = last
}

// send shares the room's group session with the members' current devices
// and sends an encrypted text message.
func (cc *cryptoClient) send(t *testing.T, roomID id.RoomID, members []id.UserID, body string) {
	t.Helper()
	ctx := ctxT(t)
	if err := cc.mach.ShareGroupSession(ctx, roomID, members); err != nil {
		t.Fatalf("share group session: %v", err)
	}
	enc, err := cc.mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: body})
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	if _, err := cc.cli.SendMessageEvent(ctx, roomID, event.EventEncrypted, enc); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// knowsDevice says whether the machine has deviceID of userID stored.
func (cc *cryptoClient) knowsDevice(userID id.UserID, deviceID id.DeviceID) bool {
	devs, err := cc.mach.CryptoStore.GetDevices(context.Background(), userID)
	if err != nil {
		return false
	}
	d, ok := devs[deviceID]
	return ok && d != nil && !d.Deleted
}

// encryptedRoom creates a room with m.room.encryption, invites and joins
// the others, and waits until the creator's state store sees them joined.
func encryptedRoom(t *testing.T, owner *cryptoClient, others ...*cryptoClient) id.RoomID {
	t.Helper()
	ctx := ctxT(t)
	resp := must[*mautrix.RespCreateRoom](t)(owner.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	}))
	for _, o := range others {
		if _, err := owner.cli.InviteUser(ctx, resp.RoomID, &mautrix.ReqInviteUser{UserID: o.cli.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := o.cli.JoinRoomByID(ctx, resp.RoomID); err != nil {
			t.Fatal(err)
		}
	}
	ss := owner.cli.StateStore.(*mautrix.MemoryStateStore)
	for _, o := range others {
		waitE2EE(t, "membership in the state store", func() bool {
			m, _ := ss.GetMembership(context.Background(), resp.RoomID, o.cli.UserID)
			return m == event.MembershipJoin
		})
	}
	return resp.RoomID
}

// aliceAndBob starts a server with alice and bob, each with an OlmMachine,
// in an encrypted room of theirs.
func aliceAndBob(t *testing.T) (srv *testserver.Server, alice, bob *cryptoClient, room id.RoomID, members []id.UserID) {
	t.Helper()
	srv = testserver.New(t)
	alice = newCryptoClient(t, srv.RegisterUser(t, "alice"))
	bob = newCryptoClient(t, srv.RegisterUser(t, "bob"))
	room = encryptedRoom(t, alice, bob)
	return srv, alice, bob, room, []id.UserID{alice.cli.UserID, bob.cli.UserID}
}
