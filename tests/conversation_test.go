package tests

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// TestFirstConversation is the foundation's whole story: two users, a room,
// an invite, a join, messages seen at once by a waiting /sync and in
// /messages and /state.
func TestFirstConversation(t *testing.T) {
	srv := testserver.New(t)
	runConversation(t, srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"))
}

// runConversation drives the story between two logged-in clients of the
// same homeserver.
func runConversation(t *testing.T, alice, bob *mautrix.Client) {
	ctx := ctxT(t)

	created := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name: "Cellule de crise", Topic: "Coordination", Preset: "private_chat",
		Invite: []id.UserID{bob.UserID},
	}))
	roomID := created.RoomID

	// Bob sees the invite in his initial sync, with the room's name.
	initial := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, ""))
	inv, ok := initial.Rooms.Invite[roomID]
	if !ok {
		t.Fatalf("bob's initial sync has no invite to %s: %+v", roomID, initial.Rooms)
	}
	if !slices.ContainsFunc(inv.State.Events, func(ev *event.Event) bool { return ev.Type == event.StateRoomName }) {
		t.Errorf("invite_state lacks the room name")
	}

	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, roomID))
	afterJoin := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, initial.NextBatch, "", false, ""))
	if _, ok := afterJoin.Rooms.Join[roomID]; !ok {
		t.Fatalf("bob's sync after joining lacks the room")
	}

	// Bob waits; Alice speaks; Bob's sync returns with her words.
	type result struct {
		resp *mautrix.RespSync
		err  error
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		resp, err := bob.SyncRequest(ctx, 30000, afterJoin.NextBatch, "", false, "")
		done <- result{resp, err, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond) // let Bob's request start waiting
	sent := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, "Bonjour Bob"))
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("bob's waiting sync did not return after alice's message")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := timelineTexts(res.resp, roomID); !slices.Contains(got, "Bonjour Bob") {
		t.Fatalf("bob's sync timeline = %v, want Alice's message", got)
	}

	// Bob replies; Alice sees it in /messages, newest first.
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, roomID, "Bonjour Alice"))
	msgs := must[*mautrix.RespMessages](t)(alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10))
	var bodies []string
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage {
			bodies = append(bodies, ev.Content.Raw["body"].(string))
		}
	}
	if !slices.Equal(bodies, []string{"Bonjour Alice", "Bonjour Bob"}) {
		t.Fatalf("/messages = %v", bodies)
	}
	if msgs.Chunk[len(msgs.Chunk)-1].Type != event.StateCreate && msgs.End != "" {
		// Paginating further must reach the room's creation.
		more := must[*mautrix.RespMessages](t)(alice.Messages(ctx, roomID, msgs.End, "", mautrix.DirectionBackward, nil, 100))
		if len(more.Chunk) == 0 || more.Chunk[len(more.Chunk)-1].Type != event.StateCreate {
			t.Fatalf("paginating back did not reach m.room.create")
		}
	}

	// The state has the name and topic and both members.
	state := must[mautrix.RoomStateMap](t)(bob.State(ctx, roomID))
	if name := state[event.StateRoomName][""]; name == nil || name.Content.Raw["name"] != "Cellule de crise" {
		t.Errorf("room name state = %+v", name)
	}
	if topic := state[event.StateTopic][""]; topic == nil || topic.Content.Raw["topic"] != "Coordination" {
		t.Errorf("room topic state = %+v", topic)
	}
	for _, u := range []id.UserID{alice.UserID, bob.UserID} {
		m := state[event.StateMember][u.String()]
		if m == nil || m.Content.Raw["membership"] != "join" {
			t.Errorf("%s membership = %+v", u, m)
		}
	}
	_ = sent
}

// A transaction ID repeated by the same device is the same event.
func TestSendIsIdempotentPerDevice(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{}))
	content := map[string]any{"msgtype": "m.text", "body": "once"}
	first := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "txn-1"}))
	again := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "txn-1"}))
	if first.EventID != again.EventID {
		t.Fatalf("same txn gave %s then %s", first.EventID, again.EventID)
	}
	other := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "txn-2"}))
	if other.EventID == first.EventID {
		t.Fatal("a new txn reused the event")
	}
	msgs := must[*mautrix.RespMessages](t)(alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 50))
	n := 0
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("room has %d messages, want 2", n)
	}
	// The sender's sync marks its own event with the transaction ID.
	resp := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 0, "", "", false, ""))
	found := false
	for _, ev := range resp.Rooms.Join[room.RoomID].Timeline.Events {
		if ev.ID == first.EventID && ev.Unsigned.TransactionID == "txn-1" {
			found = true
		}
	}
	if !found {
		t.Error("sender's sync lacks unsigned.transaction_id")
	}
}

func TestMembershipRules(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"}))

	// Not invited to a private room: no join, no send, no state.
	_, err := bob.JoinRoomByID(ctx, room.RoomID)
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = bob.SendText(ctx, room.RoomID, "intrus")
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = bob.State(ctx, room.RoomID)
	wantErr(t, err, "M_FORBIDDEN", 403)

	// Invited, joined, then leaves: he can no longer send.
	must[*mautrix.RespInviteUser](t)(alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}))
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room.RoomID))
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, room.RoomID, "merci"))
	must[*mautrix.RespLeaveRoom](t)(bob.LeaveRoom(ctx, room.RoomID))
	_, err = bob.SendText(ctx, room.RoomID, "encore")
	wantErr(t, err, "M_FORBIDDEN", 403)

	// Banned: cannot come back even when invited.
	must[*mautrix.RespBanUser](t)(alice.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: bob.UserID, Reason: "test"}))
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	wantErr(t, err, "M_FORBIDDEN", 403)

	// A public room can be joined by anyone, and by alias.
	pub := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "accueil"}))
	joined := must[*mautrix.RespJoinRoom](t)(bob.JoinRoom(ctx, "#accueil:"+srv.Config.ServerName, nil))
	if joined.RoomID != pub.RoomID {
		t.Fatalf("joined %s by alias, want %s", joined.RoomID, pub.RoomID)
	}
	_, err = bob.JoinRoom(ctx, "#nulle-part:"+srv.Config.ServerName, nil)
	wantErr(t, err, "M_NOT_FOUND", 404)
	_, err = bob.JoinRoomByID(ctx, id.RoomID("!inexistant:"+srv.Config.ServerName))
	wantErr(t, err, "M_NOT_FOUND", 404)
}
