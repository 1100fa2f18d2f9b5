package roomserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// remoteRoomWithMembers builds a remote room with a name, n remote
// members and a message, and the join of a local user on it.
func remoteRoomWithMembers(t testing.TB, r *remote, version string, n int, joiner string) (*roomDAG, []gomatrixserverlib.PDU, gomatrixserverlib.PDU) {
	rita := remoteUser("rita")
	d, events := r.newRemoteRoom(version, rita)
	events = append(events, r.build(d, rita, spec.MRoomName, skey(""), map[string]string{"name": "Remote room"}))
	events = append(events, r.build(d, rita, "m.room.history_visibility", skey(""), map[string]string{"history_visibility": "shared"}))
	for i := range n {
		u := remoteUser(fmt.Sprintf("member%d", i))
		events = append(events, r.build(d, u, spec.MRoomMember, &u, map[string]string{"membership": "join"}))
	}
	events = append(events, r.build(d, rita, "m.room.message", nil, map[string]string{"body": "before the join"}))
	join := r.build(d.clone(), joiner, spec.MRoomMember, &joiner, map[string]string{"membership": "join"})
	return d, events, join
}

func stateJSON(d *roomDAG) []json.RawMessage {
	var out []json.RawMessage
	for _, ev := range d.state {
		out = append(out, ev.JSON())
	}
	return out
}

// A room joined through send_join: its state is stored, the join is the
// first timeline event, members and state read as for any room, local
// users send in it, and backfilled history appears before the join.
func TestStoreJoinedRoom(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, v := range []string{"10", "12"} {
			t.Run("v"+v, func(t *testing.T) { testStoreJoinedRoom(t, env, v) })
		}
	})
}

func testStoreJoinedRoom(t *testing.T, env *testEnv, version string) {
	alice := user("alice")
	r := newRemote(t)
	d, events, join := remoteRoomWithMembers(t, r, version, 5, alice)
	resp, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{
		RoomVersion: version, JoinEvent: join.JSON(), State: stateJSON(d), AuthChain: nil,
	})
	if err != nil {
		t.Fatalf("store joined room: %v", err)
	}
	roomID := resp.RoomID
	if roomID != d.roomID || resp.EventID != join.EventID() {
		t.Fatalf("answer %+v", resp)
	}
	reader := NewEventReader(env.db)
	joined, err := reader.JoinedUsers(env.ctx, roomID)
	if err != nil || len(joined) != 7 || !slices.Contains(joined, alice) || !slices.Contains(joined, remoteUser("member3")) {
		t.Fatalf("joined users %v (%v)", joined, err)
	}
	rooms, err := reader.RoomsOfUser(env.ctx, alice, MembershipJoin)
	rooms = slices.DeleteFunc(rooms, func(m MembershipChange) bool { return m.RoomID != roomID })
	if err != nil || len(rooms) != 1 || rooms[0].EventID != join.EventID() {
		t.Fatalf("alice's rooms %v (%v)", rooms, err)
	}
	if tl := env.timelineIDs(roomID); !slices.Equal(tl, []string{join.EventID()}) {
		t.Fatalf("timeline %v, want the join alone", tl)
	}
	// What an initial sync reads: the state before the first timeline
	// event is the room's state, name and members included.
	before, err := reader.StateBefore(env.ctx, roomID, rooms[0].Pos)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(d.state) || !slices.ContainsFunc(before, func(ev ClientEvent) bool { return ev.Type == spec.MRoomName }) {
		t.Fatalf("state before the join has %d events, want %d with the name", len(before), len(d.state))
	}
	if s := env.state(alice, roomID); s[spec.MRoomMember+"|"+alice].EventID != join.EventID() || s[spec.MRoomName+"|"].EventID == "" {
		t.Fatal("alice's join or the name is missing from the current state")
	}
	// alice sends: her event builds on the join.
	msg := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "hello from here"})
	if prev := env.rawEvent(msg)["prev_events"].([]any); len(prev) != 1 || prev[0] != join.EventID() {
		t.Fatalf("prev_events %v, want the join", prev)
	}
	// Storing the same answer again changes nothing.
	if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{
		RoomVersion: version, JoinEvent: join.JSON(), State: stateJSON(d),
	}); err != nil {
		t.Fatal(err)
	}

	// Backfill: the message sent before the join, with the state before
	// it given, then its predecessor chain is not needed.
	lastBefore := events[len(events)-1]
	var stateIDs []string
	for k, ev := range d.state {
		if k.Type == spec.MRoomMember && k.StateKey == alice {
			continue
		}
		stateIDs = append(stateIDs, ev.EventID())
	}
	bresp, err := InputEvents.Call(env.ctx, env.bus, &InputEventsRequest{RoomID: roomID, Events: []InputEvent{
		{Kind: InputKindBackfill, Event: lastBefore.JSON(), StateBefore: stateIDs},
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, bresp.Results, InputAccepted)
	backwards, err := reader.Events(env.ctx, roomID, 0, rooms[0].Pos-1, 10, true)
	if err != nil || len(backwards) != 1 || backwards[0].Event.EventID != lastBefore.EventID() {
		t.Fatalf("paginating back from the join: %+v (%v)", backwards, err)
	}
	if max, _ := reader.MaxPos(env.ctx); backwards[0].Pos >= rooms[0].Pos || backwards[0].Pos >= max {
		t.Fatal("the backfilled event is not before the join")
	}
}

// A room whose create event is bad is refused.
func TestStoreJoinedRoomBadCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		r := newRemote(t)
		d, _, join := remoteRoomWithMembers(t, r, "10", 1, user("alice"))
		state := d.clone()
		delete(state.state, stateKey{spec.MRoomCreate, ""})
		_, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{
			RoomVersion: "10", JoinEvent: join.JSON(), State: stateJSON(state),
		})
		wantCode(t, err, "M_BAD_JSON")
	})
}

// A remote invite of a local user into a room this server is not in.
func TestStoreInvite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		carol := user("carol")
		r := newRemote(t)
		d, _, _ := remoteRoomWithMembers(t, r, "12", 0, carol)
		invite := r.build(d.clone(), remoteUser("rita"), spec.MRoomMember, &carol, map[string]string{"membership": "invite"})
		stripped := []json.RawMessage{json.RawMessage(`{"type":"m.room.name","state_key":"","sender":"` + remoteUser("rita") + `","content":{"name":"Remote room"}}`)}
		if _, err := StoreInvite.Call(env.ctx, env.bus, &StoreInviteRequest{RoomVersion: "12", Event: invite.JSON(), InviteRoomState: stripped}); err != nil {
			t.Fatalf("store invite: %v", err)
		}
		reader := NewEventReader(env.db)
		rooms, err := reader.RoomsOfUser(env.ctx, carol, MembershipInvite)
		if err != nil || len(rooms) != 1 || rooms[0].RoomID != d.roomID || rooms[0].EventID != invite.EventID() || rooms[0].Pos <= 0 {
			t.Fatalf("carol's invites %+v (%v)", rooms, err)
		}
		changes, err := reader.MembershipChanges(env.ctx, carol, 0, rooms[0].Pos)
		if err != nil || len(changes) != 1 || changes[0].Membership != MembershipInvite {
			t.Fatalf("membership changes %+v (%v)", changes, err)
		}
		if tl := env.timelineIDs(d.roomID); len(tl) != 0 {
			t.Fatalf("the stub room has a timeline: %v", tl)
		}
		unsigned, _ := env.rawEvent(invite.EventID())["unsigned"].(map[string]any)
		if st, _ := unsigned["invite_room_state"].([]any); len(st) != 1 {
			t.Fatalf("stored invite's unsigned: %v", unsigned)
		}
		if _, outlier, _, _ := env.flags(invite.EventID()); !outlier {
			t.Fatal("the invite is not an outlier")
		}
		// Sent again: nothing changes.
		if _, err := StoreInvite.Call(env.ctx, env.bus, &StoreInviteRequest{RoomVersion: "12", Event: invite.JSON()}); err != nil {
			t.Fatal(err)
		}
		// Not an out-of-room membership (invite, leave, knock): refused.
		join := r.build(d.clone(), carol, spec.MRoomMember, &carol, map[string]string{"membership": "join"})
		_, err = StoreInvite.Call(env.ctx, env.bus, &StoreInviteRequest{RoomVersion: "12", Event: join.JSON()})
		wantCode(t, err, "M_BAD_JSON")
	})
}

// A big answer goes over the bus in parts: auth events first, each part
// naming the state the earlier ones gave, the last one joining.
func TestStoreJoinedRoomInParts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		d, _, join := remoteRoomWithMembers(t, newRemote(t), "12", 50, alice)
		if err := storeJoinInParts(env, "12", join, d, 20); err != nil {
			t.Fatal(err)
		}
		joined, err := env.rs.Reader().JoinedUsers(env.ctx, d.roomID)
		if err != nil || len(joined) != 52 {
			t.Fatalf("%d joined users (%v), want 52", len(joined), err)
		}
		if s := env.state(alice, d.roomID); len(s) != len(d.state)+1 {
			t.Fatalf("current state has %d events, want %d", len(s), len(d.state)+1)
		}
	})
}

// storeJoinInParts sends a send_join answer in parts of n events, each
// naming the state the earlier ones gave, the last with the join.
func storeJoinInParts(env *testEnv, version string, join gomatrixserverlib.PDU, d *roomDAG, n int) error {
	parts := joinParts(version, join, d, n)
	var base int64
	for i, part := range parts {
		part.BaseState = base
		part.Partial = i < len(parts)-1
		resp, err := StoreJoinedRoom.Call(env.ctx, env.bus, part)
		if err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
		base = resp.StateSnapshot
	}
	return nil
}

// joinParts cuts a room's state into StoreJoinedRoom requests of n events,
// auth events first.
func joinParts(version string, join gomatrixserverlib.PDU, d *roomDAG, n int) []*StoreJoinedRoomRequest {
	byID := map[string]gomatrixserverlib.PDU{}
	for _, ev := range d.state {
		byID[ev.EventID()] = ev
	}
	ordered := authOrder(byID)
	var parts []*StoreJoinedRoomRequest
	for from := 0; from < len(ordered); from += n {
		part := &StoreJoinedRoomRequest{RoomVersion: version, JoinEvent: join.JSON()}
		for _, ev := range ordered[from:min(from+n, len(ordered))] {
			part.State = append(part.State, ev.JSON())
			part.StateEventIDs = append(part.StateEventIDs, ev.EventID())
		}
		parts = append(parts, part)
	}
	return parts
}

// Until the last part, a room joined in parts shows nowhere; a part that
// names the state of another room is refused.
func TestStoreJoinedRoomPartsInvisible(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		d, _, join := remoteRoomWithMembers(t, newRemote(t), "12", 30, alice)
		reader := env.rs.Reader()
		var base int64
		for i, part := range joinParts("12", join, d, 10) {
			part.Partial, part.BaseState = true, base
			resp, err := StoreJoinedRoom.Call(env.ctx, env.bus, part)
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			base = resp.StateSnapshot
		}
		if joined, err := reader.JoinedUsers(env.ctx, d.roomID); err != nil || len(joined) != 0 {
			t.Fatalf("joined users before the last part: %v (%v)", joined, err)
		}
		if rooms, err := reader.RoomsOfUser(env.ctx, alice, MembershipJoin); err != nil || slices.ContainsFunc(rooms, func(m MembershipChange) bool { return m.RoomID == d.roomID }) {
			t.Fatalf("alice's rooms before the last part: %v (%v)", rooms, err)
		}

		// Another room's state is not this one's.
		other, _, otherJoin := remoteRoomWithMembers(t, newRemote(t), "12", 2, user("bob"))
		resp, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "12", JoinEvent: otherJoin.JSON(), State: stateJSON(other), Partial: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "12", JoinEvent: join.JSON(), BaseState: resp.StateSnapshot})
		wantCode(t, err, "M_BAD_JSON")

		// The last request, with no events of its own, joins the room.
		if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "12", JoinEvent: join.JSON(), BaseState: base}); err != nil {
			t.Fatal(err)
		}
		joined, err := reader.JoinedUsers(env.ctx, d.roomID)
		if err != nil || len(joined) != 32 || !slices.Contains(joined, alice) {
			t.Fatalf("%d joined users (%v), want 32 with alice", len(joined), err)
		}
		if s := env.state(alice, d.roomID); len(s) != len(d.state)+1 {
			t.Fatalf("current state has %d events, want %d", len(s), len(d.state)+1)
		}
	})
}
