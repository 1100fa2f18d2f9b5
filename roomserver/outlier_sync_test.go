package roomserver_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/testserver"
	"github.com/chappe-matrix/chappe/roomserver"
)

// A room joined through send_join, seen by a real client: its initial
// sync shows the room's name and members, and the user sends in it.
func TestJoinedRoomInSync(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	ctx := context.Background()
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	version := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10)
	roomID := "!synced:remote.test"
	now := time.Now()
	state := map[string]gomatrixserverlib.PDU{}
	var prev gomatrixserverlib.PDU
	build := func(sender, evType, stateKey string, content any) gomatrixserverlib.PDU {
		now = now.Add(time.Second)
		data, _ := json.Marshal(content)
		proto := gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: roomID, Type: evType, StateKey: &stateKey,
			PrevEvents: []string{}, AuthEvents: []string{}, Content: data, Depth: 1}
		if prev != nil {
			proto.PrevEvents, proto.Depth = []string{prev.EventID()}, prev.Depth()+1
		}
		needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
		if err != nil {
			t.Fatal(err)
		}
		auth := []string{}
		for _, tup := range needed.Tuples() {
			if ev := state[tup.EventType+"|"+tup.StateKey]; ev != nil {
				auth = append(auth, ev.EventID())
			}
		}
		proto.AuthEvents = auth
		ev, err := version.NewEventBuilderFromProtoEvent(&proto).Build(now, "remote.test", gomatrixserverlib.KeyID(key.ID), key.Private)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	add := func(ev gomatrixserverlib.PDU) {
		state[ev.Type()+"|"+*ev.StateKey()] = ev
		prev = ev
	}
	rita, bob := "@rita:remote.test", "@bob:remote.test"
	add(build(rita, spec.MRoomCreate, "", map[string]string{"creator": rita, "room_version": "10"}))
	add(build(rita, spec.MRoomMember, rita, map[string]string{"membership": "join"}))
	add(build(rita, spec.MRoomPowerLevels, "", map[string]any{"users": map[string]int{rita: 100}}))
	add(build(rita, spec.MRoomJoinRules, "", map[string]string{"join_rule": "public"}))
	add(build(rita, spec.MRoomName, "", map[string]string{"name": "Across the border"}))
	add(build(bob, spec.MRoomMember, bob, map[string]string{"membership": "join"}))
	join := build(alice.UserID.String(), spec.MRoomMember, alice.UserID.String(), map[string]string{"membership": "join"})
	req := &roomserver.StoreJoinedRoomRequest{RoomVersion: "10", JoinEvent: join.JSON()}
	for _, ev := range state {
		req.State = append(req.State, ev.JSON())
	}
	if _, err := roomserver.StoreJoinedRoom.Call(ctx, srv.Base.Bus, req); err != nil {
		t.Fatalf("store joined room: %v", err)
	}

	resp, err := alice.SyncRequest(ctx, 0, "", "", true, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	room := resp.Rooms.Join[id.RoomID(roomID)]
	if room == nil {
		t.Fatalf("the joined room is not in the initial sync: %+v", resp.Rooms.Join)
	}
	members, name := map[string]bool{}, ""
	for _, ev := range append(room.State.Events, room.Timeline.Events...) {
		switch ev.Type {
		case event.StateMember:
			if ev.Content.Raw["membership"] == "join" {
				members[*ev.StateKey] = true
			}
		case event.StateRoomName:
			name, _ = ev.Content.Raw["name"].(string)
		}
	}
	if name != "Across the border" || !members[rita] || !members[bob] || !members[alice.UserID.String()] {
		t.Fatalf("initial sync: name %q, members %v; state %d timeline %d", name, members, len(room.State.Events), len(room.Timeline.Events))
	}
	sent, err := alice.SendText(ctx, id.RoomID(roomID), "hello across")
	if err != nil {
		t.Fatalf("send in the joined room: %v", err)
	}
	if _, err := alice.GetEvent(ctx, id.RoomID(roomID), sent.EventID); err != nil {
		t.Fatal(err)
	}
}
