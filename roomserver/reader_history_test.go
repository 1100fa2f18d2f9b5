package roomserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// messageBodies lists the bodies of the messages among events.
func messageBodies(evs []StreamEvent) []string {
	var out []string
	for _, ev := range evs {
		var c struct {
			Body string `json:"body"`
		}
		if ev.Event.Type == "m.room.message" && json.Unmarshal(ev.Event.Content, &c) == nil {
			out = append(out, c.Body)
		}
	}
	return out
}

// Each history visibility shows a user what the spec says: a message sent
// before bob was invited, one while invited, one while joined, one after
// he left.
func TestVisibleEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob, carol := user("alice"), user("bob"), user("carol")
		for _, tc := range []struct {
			visibility string
			bob, carol []string
		}{
			{visJoined, []string{"joined"}, nil},
			{visInvited, []string{"invited", "joined"}, nil},
			{visShared, []string{"before", "invited", "joined"}, nil},
			{visWorldReadable, []string{"before", "invited", "joined", "left"}, []string{"before", "invited", "joined", "left"}},
		} {
			t.Run(tc.visibility, func(t *testing.T) {
				roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPrivate})
				if _, err := env.sendState(alice, roomID, spec.MRoomHistoryVisibility, "", map[string]string{"history_visibility": tc.visibility}); err != nil {
					t.Fatal(err)
				}
				before := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "before"})
				env.mustMember(alice, roomID, bob, MembershipInvite)
				env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "invited"})
				env.mustMember(bob, roomID, bob, MembershipJoin)
				joined := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "joined"})
				env.mustMember(bob, roomID, bob, MembershipLeave)
				env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "left"})

				reader := NewEventReader(env.db)
				all, err := reader.Events(env.ctx, roomID, 0, 1<<62, 0, false)
				if err != nil {
					t.Fatal(err)
				}
				hr := reader.(HistoryReader)
				for _, who := range []struct {
					user string
					want []string
				}{{bob, tc.bob}, {carol, tc.carol}} {
					got, err := hr.VisibleEvents(env.ctx, roomID, who.user, all)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(messageBodies(got), who.want) {
						t.Fatalf("%s sees %q, want %q", who.user, messageBodies(got), who.want)
					}
				}
				// /event and /context apply the same rules.
				_, err = QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: bob, RoomID: roomID, EventID: before})
				if slices.Contains(tc.bob, "before") != (err == nil) {
					t.Fatalf("/event of the first message for bob: %v", err)
				}
				if tc.visibility == visJoined {
					wantCode(t, err, "M_NOT_FOUND")
					around, err := QueryContext.Call(env.ctx, env.bus, &QueryContextRequest{UserID: bob, RoomID: roomID, EventID: joined, Limit: 20})
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range slices.Concat(around.EventsBefore, around.EventsAfter) {
						if ev.Type == "m.room.message" {
							t.Fatalf("/context shows bob %s, sent while he was not joined", ev.EventID)
						}
					}
				}
			})
		}
	})
}

// joinedRemoteRoom stores a remote room joined by alice with n messages
// before her join, which the server does not have: it returns the room's
// DAG view from before the messages, the messages and the join.
func joinedRemoteRoom(t *testing.T, env *testEnv, r *remote, n int) (*roomDAG, []gomatrixserverlib.PDU, gomatrixserverlib.PDU) {
	t.Helper()
	d, _ := r.newRemoteRoom("10", remoteUser("rita"))
	start := d.clone()
	var msgs []gomatrixserverlib.PDU
	for i := range n {
		msgs = append(msgs, r.build(d, remoteUser("rita"), "m.room.message", nil, map[string]string{"body": fmt.Sprintf("old %d", i)}))
	}
	join := r.build(d.clone(), user("alice"), spec.MRoomMember, skey(user("alice")), map[string]string{"membership": "join"})
	if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "10", JoinEvent: join.JSON(), State: stateJSON(d)}); err != nil {
		t.Fatalf("store joined room: %v", err)
	}
	return start, msgs, join
}

// stateIDs lists the IDs of a DAG view's state.
func stateIDs(d *roomDAG) []string {
	var out []string
	for _, ev := range d.state {
		out = append(out, ev.EventID())
	}
	return out
}

// backfill inputs events (oldest first) as backfill, the first with the
// state before it when given.
func (e *testEnv) backfill(roomID string, stateBefore []string, evs ...gomatrixserverlib.PDU) []InputResult {
	e.t.Helper()
	req := &InputEventsRequest{RoomID: roomID}
	for i, ev := range evs {
		in := InputEvent{Kind: InputKindBackfill, Event: ev.JSON(), Origin: remoteName}
		if i == 0 {
			in.StateBefore = stateBefore
		}
		req.Events = append(req.Events, in)
	}
	resp, err := InputEvents.Call(e.ctx, e.bus, req)
	if err != nil {
		e.t.Fatalf("backfill: %v", err)
	}
	return resp.Results
}

// gaps reads the room's history gaps: event ID → positions left.
func (e *testEnv) gaps(roomID string) map[string]int64 {
	e.t.Helper()
	gaps, err := NewEventReader(e.db).(HistoryReader).HistoryGaps(e.ctx, roomID, 0, 1<<62)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, g := range gaps {
		out[g.EventID] = g.Left
	}
	return out
}

// stored tells whether an event has a row at all.
func (e *testEnv) stored(eventID string) bool {
	e.t.Helper()
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM rs_events WHERE event_id = $1`, eventID).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n > 0
}

// smallReserves makes the positions reserved below an event few, for the
// test.
func smallReserves(t *testing.T, n int64) {
	old := backfillGap
	backfillGap = n
	t.Cleanup(func() { backfillGap = old })
}

// A hole in the middle of the history: an event stored with its state
// because its prev_events were missing keeps positions below it, where
// the missing events, backfilled later, take their place between it and
// the history before. With a reserve too small for the hole, the newest
// of the hole are stored there and the others not at all (never outside
// the timeline), the order holds, and the gap left is no longer one to
// backfill.
func TestBackfillHole(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reserve int64 // 0: the default
	}{{"whole", 0}, {"reserve used up", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, env *testEnv) {
				if tc.reserve > 0 {
					smallReserves(t, tc.reserve)
				}
				r := newRemote(t)
				_, _, join := joinedRemoteRoom(t, env, r, 0)
				roomID := join.RoomID().String()
				d := env.dagOf(roomID)
				rita := remoteUser("rita")
				var msgs []gomatrixserverlib.PDU
				for i := range 6 {
					msgs = append(msgs, r.build(d, rita, "m.room.message", nil, map[string]string{"body": fmt.Sprintf("m%d", i)}))
				}
				wantStatus(t, env.input(roomID, InputKindNew, msgs[0]), InputAccepted)
				// m5 comes with its state: m1 to m4 are the hole.
				res, err := InputEvents.Call(env.ctx, env.bus, &InputEventsRequest{RoomID: roomID, Events: []InputEvent{
					{Kind: InputKindNew, Event: msgs[5].JSON(), Origin: remoteName, StateBefore: stateIDs(d)},
				}})
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, res.Results, InputAccepted)
				pos0, _, _, _ := env.flags(msgs[0].EventID())
				pos5, _, _, _ := env.flags(msgs[5].EventID())
				if pos5-pos0 <= backfillGap {
					t.Fatalf("m5 at %d, m0 at %d: no positions kept between them", pos5, pos0)
				}
				gaps := env.gaps(roomID)
				if gaps[msgs[5].EventID()] != backfillGap || gaps[join.EventID()] == 0 {
					t.Fatalf("history gaps %v, want m5's with %d positions and the join's", gaps, backfillGap)
				}

				hole := msgs[1:5]
				if tc.reserve == 0 {
					wantStatus(t, env.backfill(roomID, nil, hole...), InputAccepted)
					want := []string{join.EventID()}
					for _, ev := range msgs {
						want = append(want, ev.EventID())
					}
					if tl := env.timelineIDs(roomID); !slices.Equal(tl, want) {
						t.Fatalf("timeline %v, want %v", tl, want)
					}
					if gaps := env.gaps(roomID); len(gaps) != 1 || gaps[join.EventID()] == 0 {
						t.Fatalf("history gaps %v, want the join's alone", gaps)
					}
					return
				}
				// More than fits: the newest get the positions, the oldest
				// none, and those kept are cut off from their parents, so
				// nothing is stored and no position is spent.
				results := env.backfill(roomID, nil, hole...)
				for i, res := range results {
					want := InputMissing
					if i < len(hole)-int(tc.reserve) {
						want = InputNoPosition
					}
					if res.Status != want {
						t.Fatalf("backfilled m%d: %s (%s), want %s", i+1, res.Status, res.Reason, want)
					}
				}
				for _, ev := range hole {
					if env.stored(ev.EventID()) {
						t.Fatalf("%s was stored", ev.EventID())
					}
				}
				if left := env.gaps(roomID)[msgs[5].EventID()]; left != tc.reserve {
					t.Fatalf("%d positions left below m5, want %d", left, tc.reserve)
				}
				// What fits, the oldest with its state (as the federation
				// does when it asks for no more than is left): stored in
				// order; the rest never is.
				kept := hole[len(hole)-int(tc.reserve):]
				wantStatus(t, env.backfill(roomID, stateIDs(d), kept...), InputAccepted)
				wantStatus(t, env.backfill(roomID, stateIDs(d), hole[:len(hole)-int(tc.reserve)]...), InputNoPosition)
				want := []string{join.EventID(), msgs[0].EventID()}
				for _, ev := range append(slices.Clone(kept), msgs[5]) {
					want = append(want, ev.EventID())
				}
				if tl := env.timelineIDs(roomID); !slices.Equal(tl, want) {
					t.Fatalf("timeline %v, want %v", tl, want)
				}
				for _, ev := range hole[:len(hole)-int(tc.reserve)] {
					if env.stored(ev.EventID()) {
						t.Fatalf("%s was stored without a place in the timeline", ev.EventID())
					}
				}
				lowest := kept[0].EventID()
				if left, ok := env.gaps(roomID)[lowest]; !ok || left != 0 {
					t.Fatalf("history gaps %v, want %s with no position left", env.gaps(roomID), lowest)
				}
			})
		})
	}
}

// The reserve below a join used up: the newest events of the history are
// stored below the join, in order; the older are not stored at all (they
// used to be stored outside the timeline, never shown, and backfill went
// on past them).
func TestBackfillReserveUsedUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		smallReserves(t, 3)
		r := newRemote(t)
		start, msgs, join := joinedRemoteRoom(t, env, r, 6)
		roomID := join.RoomID().String()
		// The newest three, the oldest of them with its state: they fill
		// the reserve.
		wantStatus(t, env.backfill(roomID, stateIDs(start), msgs[3:]...), InputAccepted)
		joinPos, _, _, _ := env.flags(join.EventID())
		for i, ev := range msgs[3:] {
			if pos, outlier, _, _ := env.flags(ev.EventID()); pos != joinPos-3+int64(i) || outlier {
				t.Fatalf("old %d at %d (outlier %v), join at %d", i+3, pos, outlier, joinPos)
			}
		}
		// The older ones have no place left.
		results := env.backfill(roomID, stateIDs(start), msgs[:3]...)
		wantStatus(t, results, InputNoPosition)
		if results[0].Reason == "" {
			t.Fatal("no reason given")
		}
		for _, ev := range msgs[:3] {
			if env.stored(ev.EventID()) {
				t.Fatalf("%s was stored without a place in the timeline", ev.EventID())
			}
		}
		back, err := NewEventReader(env.db).Events(env.ctx, roomID, 0, joinPos, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := messageBodies(back); !slices.Equal(got, []string{"old 5", "old 4", "old 3"}) {
			t.Fatalf("paginating back from the join: %q", got)
		}
		if gaps := env.gaps(roomID); len(gaps) != 1 || gaps[msgs[3].EventID()] != 0 {
			t.Fatalf("history gaps %v, want old 3 alone, no position left", gaps)
		}
		if _, ok := env.gaps(roomID)[msgs[3].EventID()]; !ok {
			t.Fatal("old 3 is no longer a history gap")
		}
	})
}
