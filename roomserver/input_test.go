package roomserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Events of a remote server in a room created here: a remote user joins,
// then sends a line of messages.
func TestInputLinear(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, v := range []string{"10", "12"} {
			t.Run("v"+v, func(t *testing.T) { testInputLinear(t, env, v) })
		}
	})
}

func testInputLinear(t *testing.T, env *testEnv, version string) {
	alice, rita := user("alice"), remoteUser("rita")
	r := newRemote(t)
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, RoomVersion: version})
	d, join := env.joinRemote(r, roomID, rita)
	var msgs []gomatrixserverlib.PDU
	for i := range 5 {
		msgs = append(msgs, r.build(d, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": fmt.Sprint("hello ", i)}))
	}
	wantStatus(t, env.input(roomID, InputKindNew, msgs...), InputAccepted)
	wantStatus(t, env.input(roomID, InputKindNew, msgs[2]), InputDuplicate)

	timeline := env.timelineIDs(roomID)
	want := []string{join.EventID()}
	for _, m := range msgs {
		want = append(want, m.EventID())
	}
	if got := timeline[len(timeline)-len(want):]; !slices.Equal(got, want) {
		t.Fatalf("timeline ends with %v, want %v", got, want)
	}
	joined, err := env.rs.Reader().JoinedUsers(env.ctx, roomID)
	if err != nil || !slices.Contains(joined, rita) {
		t.Fatalf("joined users %v (%v) lack %s", joined, err, rita)
	}
	// A local event builds on the remote one.
	local := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "welcome"})
	prev := env.rawEvent(local)["prev_events"].([]any)
	if len(prev) != 1 || prev[0] != msgs[4].EventID() {
		t.Fatalf("local event's prev_events = %v, want [%s]", prev, msgs[4].EventID())
	}
	var edges int
	if err := env.db.QueryRowContext(env.ctx, `SELECT COUNT(*) FROM rs_event_edges g JOIN rs_events e ON e.event_nid = g.event_nid
		WHERE e.event_id = $1 AND g.prev_event_id = $2`, local, msgs[4].EventID()).Scan(&edges); err != nil || edges != 1 {
		t.Fatalf("local event's edge: %d rows, %v", edges, err)
	}
}

// Unknown prev_events or auth_events are reported; nothing is stored.
func TestInputMissing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		d, _ := env.joinRemote(r, roomID, rita)

		// An event the server never got, then one on top of it.
		unseen := r.build(d, rita, "m.room.message", nil, map[string]string{"body": "lost"})
		next := r.build(d, rita, "m.room.message", nil, map[string]string{"body": "after"})
		res := env.input(roomID, InputKindNew, next)
		wantStatus(t, res, InputMissing)
		if !slices.Equal(res[0].Missing, []string{unseen.EventID()}) {
			t.Fatalf("missing %v, want %s", res[0].Missing, unseen.EventID())
		}
		// With the gap filled in the same request, both are accepted.
		wantStatus(t, env.input(roomID, InputKindNew, unseen, next), InputAccepted)

		// An auth event not stored: a topic change authorised by a power
		// levels event the server never saw.
		pl := r.buildOn(d, d.prev, rita, spec.MRoomPowerLevels, skey(""), map[string]any{"users": map[string]int{rita: 100}})
		dd := d.clone()
		dd.state[keyOf(pl)] = pl
		topic := r.buildOn(dd, d.prev, rita, spec.MRoomTopic, skey(""), map[string]string{"topic": "x"})
		res = env.input(roomID, InputKindNew, topic)
		wantStatus(t, res, InputMissing)
		if !slices.Contains(res[0].Missing, pl.EventID()) {
			t.Fatalf("missing %v, want %s among them", res[0].Missing, pl.EventID())
		}
		var n int
		if err := env.db.QueryRowContext(env.ctx, `SELECT COUNT(*) FROM rs_events WHERE event_id = $1`, topic.EventID()).Scan(&n); err != nil || n != 0 {
			t.Fatalf("a missing event was stored (%d, %v)", n, err)
		}
	})
}

// An event that fails the auth rules is stored as rejected and never
// shown; events on top of it do not count it in their state.
func TestInputRejected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita, mallory := user("alice"), remoteUser("rita"), remoteUser("mallory")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		d, _ := env.joinRemote(r, roomID, rita)

		// mallory never joined: her message fails its auth events (no
		// membership) and the state before it.
		bad := r.build(d.clone(), mallory, "m.room.message", nil, map[string]string{"body": "spam"})
		res := env.input(roomID, InputKindNew, bad)
		wantStatus(t, res, InputRejected)
		if pos, _, rejected, _ := env.flags(bad.EventID()); !rejected || pos >= 0 {
			t.Fatalf("rejected event stored at %d, rejected=%v", pos, rejected)
		}
		// rita (joined, power 0) may not change the power levels.
		pl := r.build(d.clone(), rita, spec.MRoomPowerLevels, skey(""), map[string]any{"users": map[string]int{rita: 100}})
		wantStatus(t, env.input(roomID, InputKindNew, pl), InputRejected)
		if slices.Contains(env.timelineIDs(roomID), bad.EventID()) || slices.Contains(env.timelineIDs(roomID), pl.EventID()) {
			t.Fatal("a rejected event is in the timeline")
		}
		if got := env.state(alice, roomID)[spec.MRoomPowerLevels+"|"].EventID; got == pl.EventID() {
			t.Fatal("a rejected power levels event is in the state")
		}
		// Sent again: it is known.
		wantStatus(t, env.input(roomID, InputKindNew, pl), InputDuplicate)
		// A message on top of the rejected one (ignored in its state) is
		// accepted.
		dd := d.clone()
		dd.prev = append(dd.prev, pl)
		msg := r.build(dd, rita, "m.room.message", nil, map[string]string{"body": "fine"})
		wantStatus(t, env.input(roomID, InputKindNew, msg), InputAccepted)
	})
}

// A remote user banned here sends on a branch that has not seen the ban:
// the event is allowed by its own state but not by the current state, so
// it is soft-failed: stored, not in the timeline nor an extremity.
func TestInputSoftFailed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		d, _ := env.joinRemote(r, roomID, rita)
		ban := env.mustMember(alice, roomID, rita, MembershipBan)

		msg := r.build(d, rita, "m.room.message", nil, map[string]string{"body": "did not see the ban"})
		res := env.input(roomID, InputKindNew, msg)
		wantStatus(t, res, InputSoftFailed)
		pos, outlier, rejected, soft := env.flags(msg.EventID())
		if pos >= 0 || outlier || rejected || !soft {
			t.Fatalf("soft-failed event stored at %d outlier=%v rejected=%v soft_failed=%v", pos, outlier, rejected, soft)
		}
		if slices.Contains(env.timelineIDs(roomID), msg.EventID()) {
			t.Fatal("a soft-failed event is in the timeline")
		}
		if ext := env.dagOf(roomID).prev; len(ext) != 1 || ext[0].EventID() != ban {
			t.Fatal("a soft-failed event became a forward extremity")
		}
		// A later event of the same branch builds on it: it is soft-failed
		// too, since rita is still banned.
		next := r.build(d, rita, "m.room.message", nil, map[string]string{"body": "again"})
		wantStatus(t, env.input(roomID, InputKindNew, next), InputSoftFailed)
	})
}

// Outliers are stored for their own sake; sent again as new events, they
// join the timeline.
func TestInputOutlier(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		d, _ := env.joinRemote(r, roomID, rita)
		topic := r.build(d, rita, "m.room.message", nil, map[string]string{"body": "first an outlier"})
		wantStatus(t, env.input(roomID, InputKindOutlier, topic), InputAccepted)
		if pos, outlier, _, _ := env.flags(topic.EventID()); !outlier || pos >= 0 {
			t.Fatalf("outlier stored at %d outlier=%v", pos, outlier)
		}
		if slices.Contains(env.timelineIDs(roomID), topic.EventID()) {
			t.Fatal("an outlier is in the timeline")
		}
		// A child of the outlier: its prev_event has no state yet.
		child := r.build(d, rita, "m.room.message", nil, map[string]string{"body": "child"})
		res := env.input(roomID, InputKindNew, child)
		wantStatus(t, res, InputMissing)
		wantStatus(t, env.input(roomID, InputKindNew, topic, child), InputAccepted)
		tl := env.timelineIDs(roomID)
		if !slices.Equal(tl[len(tl)-2:], []string{topic.EventID(), child.EventID()}) {
			t.Fatalf("timeline ends with %v", tl[len(tl)-2:])
		}
	})
}

// The migration fills the edges of events stored before it from their
// positions: for local rooms, they are the edges commit writes.
func TestEdgesMigration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, Name: "edges"})
		env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "one"})
		env.mustMember(user("bob"), roomID, user("bob"), MembershipJoin)
		edges := func() []string {
			rows, err := env.db.QueryContext(env.ctx, `SELECT g.event_nid, g.prev_event_id FROM rs_event_edges g ORDER BY g.event_nid`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var nid int64
				var prev string
				if err := rows.Scan(&nid, &prev); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprint(nid, prev))
			}
			return out
		}
		written := edges()
		if len(written) == 0 {
			t.Fatal("commit wrote no edges")
		}
		stmts := strings.Split(federationMigrations[0].SQL, ";")
		fill := strings.TrimSpace(stmts[len(stmts)-1])
		if !strings.HasPrefix(fill, "INSERT INTO rs_event_edges") {
			t.Fatalf("the migration's last statement is %q", fill)
		}
		if _, err := env.db.ExecContext(env.ctx, `DELETE FROM rs_event_edges`); err != nil {
			t.Fatal(err)
		}
		if _, err := env.db.ExecContext(env.ctx, fill); err != nil {
			t.Fatal(err)
		}
		if got := edges(); !slices.Equal(got, written) {
			t.Fatalf("migration edges %v, commit's %v", got, written)
		}
	})
}
