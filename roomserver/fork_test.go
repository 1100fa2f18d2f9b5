package roomserver

import (
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Two branches change the state concurrently: a local topic change and,
// on a remote branch that has not seen it, another topic change and a
// name. The current state is the resolution of both branches at once,
// and a remote event that merges them leaves one extremity and the same
// state.
func TestInputFork(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, v := range []string{"10", "12"} {
			t.Run("v"+v, func(t *testing.T) { testInputFork(t, env, v) })
		}
	})
}

func testInputFork(t *testing.T, env *testEnv, version string) {
	alice, rita := user("alice"), remoteUser("rita")
	r := newRemote(t)
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, RoomVersion: version})
	env.joinRemote(r, roomID, rita)
	users := map[string]int{rita: 100}
	if version != "12" {
		users[alice] = 100
	}
	if _, err := env.sendState(alice, roomID, spec.MRoomPowerLevels, "", map[string]any{"users": users}); err != nil {
		t.Fatal(err)
	}
	base := env.dagOf(roomID)

	// Branch A, here: alice sets the topic.
	localTopic, err := env.sendState(alice, roomID, spec.MRoomTopic, "", map[string]string{"topic": "A"})
	if err != nil {
		t.Fatal(err)
	}
	// Branch B, remote, on the state before A: a name, then a topic
	// (later origin_server_ts than A's).
	b := base.clone()
	name := r.build(b, rita, spec.MRoomName, skey(""), map[string]string{"name": "N"})
	remoteTopic := r.build(b, rita, spec.MRoomTopic, skey(""), map[string]string{"topic": "B"})
	wantStatus(t, env.input(roomID, InputKindNew, name, remoteTopic), InputAccepted)

	a := env.dagOf(roomID)
	if len(a.prev) != 2 {
		t.Fatalf("%d forward extremities, want 2", len(a.prev))
	}
	// The expected state: the library-independent resolver run on the two
	// branches' states.
	stateA := base.clone()
	stateA.state[stateKey{spec.MRoomTopic, ""}] = env.pdu(base.version, localTopic)
	want, err := resolveState(base.version, [][]gomatrixserverlib.PDU{values(stateA.state), values(b.state)},
		env.roomEvents(base.version, roomID), func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	got := env.state(alice, roomID)
	if len(got) != len(want) {
		t.Fatalf("current state has %d events, resolution %d", len(got), len(want))
	}
	for _, ev := range want {
		if got[ev.Type()+"|"+*ev.StateKey()].EventID != ev.EventID() {
			t.Fatalf("current state's %s is %s, resolution says %s", ev.Type(), got[ev.Type()+"|"+*ev.StateKey()].EventID, ev.EventID())
		}
	}
	if got[spec.MRoomTopic+"|"].EventID != remoteTopic.EventID() || got[spec.MRoomName+"|"].EventID != name.EventID() {
		t.Fatal("the later topic and the remote name should win")
	}

	// The merge: one extremity again, the same state.
	merge := r.buildOn(b, a.prev, rita, "m.room.message", nil, map[string]string{"body": "merged"})
	wantStatus(t, env.input(roomID, InputKindNew, merge), InputAccepted)
	after := env.dagOf(roomID)
	if len(after.prev) != 1 || after.prev[0].EventID() != merge.EventID() {
		t.Fatalf("extremities after the merge: %d", len(after.prev))
	}
	if s := env.state(alice, roomID); s[spec.MRoomTopic+"|"].EventID != remoteTopic.EventID() {
		t.Fatal("the merge changed the resolved topic")
	}
	// The reader's state at the merge's position is the resolved state;
	// at the local topic's position, before the remote branch came, it
	// was A.
	reader := NewEventReader(env.db)
	tl, err := reader.Events(env.ctx, roomID, 0, 1<<62, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	posOf := map[string]int64{}
	for _, ev := range tl {
		posOf[ev.Event.EventID] = ev.Pos
	}
	topicAt := func(pos int64) string {
		state, err := reader.StateAt(env.ctx, roomID, pos)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(state, func(ev ClientEvent) bool { return ev.Type == spec.MRoomTopic })
		return state[i].EventID
	}
	if topicAt(posOf[localTopic]) != localTopic {
		t.Fatal("state at the local topic's position is not A")
	}
	if topicAt(posOf[merge.EventID()]) != remoteTopic.EventID() {
		t.Fatal("state at the merge's position is not the resolved one")
	}
	// Local events now build on the merge.
	local := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "after"})
	if prev := env.rawEvent(local)["prev_events"].([]any); len(prev) != 1 || prev[0] != merge.EventID() {
		t.Fatalf("local prev_events %v", prev)
	}
}

// roomEvents reads every accepted event of a room (auth chains included).
func (e *testEnv) roomEvents(version gomatrixserverlib.IRoomVersion, roomID string) []gomatrixserverlib.PDU {
	e.t.Helper()
	rows, err := e.db.QueryContext(e.ctx, `SELECT e.json FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
		WHERE r.room_id = $1 AND e.rejected = FALSE`, roomID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []gomatrixserverlib.PDU
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			e.t.Fatal(err)
		}
		ev, err := version.NewEventFromTrustedJSON(data, false)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func values(m map[stateKey]gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	out := make([]gomatrixserverlib.PDU, 0, len(m))
	for _, ev := range m {
		out = append(out, ev)
	}
	return out
}
