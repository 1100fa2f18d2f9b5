package roomserver

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// A redaction that arrives before its target is applied when the target
// comes: the target is then served redacted (with the redaction as
// redacted_because), its relation and search text are gone, and the
// output that announces it carries no content.
func TestPendingRedactionTargetArrivesLater(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, v := range []string{"10", "12"} {
			t.Run("v"+v, func(t *testing.T) { testPendingRedactionLater(t, env, v) })
		}
	})
}

func testPendingRedactionLater(t *testing.T, env *testEnv, version string) {
	alice, rita := user("alice"), remoteUser("rita")
	r := newRemote(t)
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, RoomVersion: version})
	env.joinRemote(r, roomID, rita)
	root := env.mustSend(alice, roomID, "m.room.message", map[string]string{"msgtype": "m.text", "body": "fil"})
	d := env.dagOf(roomID)
	// The target (a reply in a thread, so it has a relation and search
	// text) and its redaction are siblings: the redaction does not name
	// its target among its prev_events, so nothing fetches the target.
	target := r.buildOn(d, d.prev, rita, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "secret",
		"m.relates_to": map[string]string{"rel_type": "m.thread", "event_id": root}})
	redaction := r.buildOn(d, d.prev, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": target.EventID()})

	wantStatus(t, env.input(roomID, InputKindNew, redaction), InputAccepted)
	if env.hasRow(target.EventID()) || env.pendingRedactions(roomID) != 1 {
		t.Fatalf("before the target: stored=%v, %d pending", env.hasRow(target.EventID()), env.pendingRedactions(roomID))
	}

	outs := env.followOutputs()
	wantStatus(t, env.input(roomID, InputKindNew, target), InputAccepted)
	env.wantRedacted(alice, roomID, target.EventID(), redaction.EventID())
	if env.pendingRedactions(roomID) != 0 {
		t.Fatal("the pending redaction was not dropped")
	}
	var rels, texts int
	if err := env.db.QueryRowContext(env.ctx, `SELECT (SELECT COUNT(*) FROM rs_relations WHERE event_id = $1),
		(SELECT COUNT(*) FROM rs_search s JOIN rs_events e ON e.event_nid = s.event_nid WHERE e.event_id = $1)`,
		target.EventID()).Scan(&rels, &texts); err != nil || rels != 0 || texts != 0 {
		t.Fatalf("the redacted target keeps %d relations and %d search rows (%v)", rels, texts, err)
	}
	out := outs.find(target.EventID())
	if out == nil {
		t.Fatal("the target was not published")
	}
	if strings.Contains(string(out.Event), "secret") {
		t.Fatalf("the target was published with its content: %s", out.Event)
	}
}

// The same, in one request, and through the other paths a target takes:
// as an outlier, and by backfill below a join.
func TestPendingRedactionOtherPaths(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		env.joinRemote(r, roomID, rita)

		t.Run("one request", func(t *testing.T) {
			d := env.dagOf(roomID)
			target := r.buildOn(d, d.prev, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "one"})
			redaction := r.buildOn(d, d.prev, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": target.EventID()})
			wantStatus(t, env.input(roomID, InputKindNew, redaction, target), InputAccepted)
			env.wantRedacted(alice, roomID, target.EventID(), redaction.EventID())
		})
		t.Run("target first", func(t *testing.T) {
			// The ordinary case, for redacted_because.
			d := env.dagOf(roomID)
			target := r.buildOn(d, d.prev, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "zero"})
			redaction := r.buildOn(d, d.prev, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": target.EventID()})
			wantStatus(t, env.input(roomID, InputKindNew, target, redaction), InputAccepted)
			env.wantRedacted(alice, roomID, target.EventID(), redaction.EventID())
		})
		t.Run("outlier", func(t *testing.T) {
			d := env.dagOf(roomID)
			target := r.buildOn(d, d.prev, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "two"})
			redaction := r.buildOn(d, d.prev, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": target.EventID()})
			wantStatus(t, env.input(roomID, InputKindNew, redaction), InputAccepted)
			wantStatus(t, env.input(roomID, InputKindOutlier, target), InputAccepted)
			if !env.redactedBy(target.EventID(), redaction.EventID()) {
				t.Fatal("the outlier is not redacted")
			}
			// Made part of the DAG later, it stays redacted.
			wantStatus(t, env.input(roomID, InputKindNew, target), InputAccepted)
			env.wantRedacted(alice, roomID, target.EventID(), redaction.EventID())
		})
	})
}

// A target stored by backfill, below a remote room's join.
func TestPendingRedactionBackfill(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		d, _ := r.newRemoteRoom("10", rita)
		old := r.build(d, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "old"})
		join := r.build(d, alice, spec.MRoomMember, skey(alice), map[string]string{"membership": "join"})
		state := d.clone()
		delete(state.state, keyOf(join))
		if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "10", JoinEvent: join.JSON(),
			State: stateJSON(state)}); err != nil {
			t.Fatal(err)
		}
		roomID := d.roomID
		redaction := r.build(d, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": old.EventID()})
		wantStatus(t, env.input(roomID, InputKindNew, redaction), InputAccepted)
		resp, err := InputEvents.Call(env.ctx, env.bus, &InputEventsRequest{RoomID: roomID, Events: []InputEvent{
			{Kind: InputKindBackfill, Event: old.JSON(), Origin: remoteName, StateBefore: idsOf(values(state.state))},
		}})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, resp.Results, InputAccepted)
		env.wantRedacted(alice, roomID, old.EventID(), redaction.EventID())
	})
}

// What decides whether a redaction applies to a target stored later:
// the servers of both senders, or the redaction sender's power in the
// state before the redaction, even when it has changed since.
func TestPendingRedactionAuthorisation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		remote, other := newOtherServer(t, "remote.test"), newOtherServer(t, "other.test")
		rob, oscar := remote.user("rob"), other.user("oscar")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, RoomVersion: "12"})
		env.remoteMember(remote, roomID, rob, MembershipJoin)
		env.remoteMember(other, roomID, oscar, MembershipJoin)

		// rob (power 0) redacts oscar's message before it comes: another
		// server's user, no power: not applied, and not waited for again.
		base := env.dagOf(roomID)
		prevs := idsOf(base.prev)
		msg := env.buildRemote(other, roomID, remoteEventSpec{sender: oscar, evType: "m.room.message", prevs: prevs,
			content: map[string]string{"msgtype": "m.text", "body": "kept"}})
		denied := env.buildRemote(remote, roomID, remoteEventSpec{sender: rob, evType: spec.MRoomRedaction, prevs: prevs,
			content: map[string]string{"redacts": msg.EventID()}})
		env.mustInput(roomID, InputKindNew, denied, nil, InputAccepted)
		env.mustInput(roomID, InputKindNew, msg, nil, InputAccepted)
		if env.redactedBy(msg.EventID(), "") || env.pendingRedactions(roomID) != 0 {
			t.Fatal("a redaction without power applied to another server's event")
		}

		// rob gets the redact level, redacts oscar's next message before
		// it comes, then loses the level: the redaction was allowed by the
		// state before it, and applies.
		if _, err := env.sendState(alice, roomID, spec.MRoomPowerLevels, "", map[string]any{"users": map[string]int{rob: 50}}); err != nil {
			t.Fatal(err)
		}
		prevs = idsOf(env.dagOf(roomID).prev)
		msg2 := env.buildRemote(other, roomID, remoteEventSpec{sender: oscar, evType: "m.room.message", prevs: prevs,
			content: map[string]string{"msgtype": "m.text", "body": "moderated"}})
		allowed := env.buildRemote(remote, roomID, remoteEventSpec{sender: rob, evType: spec.MRoomRedaction, prevs: prevs,
			content: map[string]string{"redacts": msg2.EventID()}})
		env.mustInput(roomID, InputKindNew, allowed, nil, InputAccepted)
		if _, err := env.sendState(alice, roomID, spec.MRoomPowerLevels, "", map[string]any{"users": map[string]int{}}); err != nil {
			t.Fatal(err)
		}
		// msg2 is built on the state before the demotion: it is accepted.
		env.mustInput(roomID, InputKindNew, msg2, nil, InputAccepted)
		env.wantRedacted(alice, roomID, msg2.EventID(), allowed.EventID())
	})
}

// A joined room's state brings the target of a redaction received
// before: the join applies it (one query for the whole state).
func TestPendingRedactionJoinedState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob, rita := user("alice"), user("bob"), remoteUser("rita")
		r := newRemote(t)
		d, _ := r.newRemoteRoom("10", rita)
		aliceJoin := r.build(d, alice, spec.MRoomMember, skey(alice), map[string]string{"membership": "join"})
		state := d.clone()
		delete(state.state, keyOf(aliceJoin))
		if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "10", JoinEvent: aliceJoin.JSON(),
			State: stateJSON(state)}); err != nil {
			t.Fatal(err)
		}
		roomID := d.roomID
		// A topic this server never got, and its redaction, on alice's join.
		topic := r.build(d.clone(), rita, spec.MRoomTopic, skey(""), map[string]string{"topic": "secret topic"})
		redaction := r.build(d, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": topic.EventID()})
		wantStatus(t, env.input(roomID, InputKindNew, redaction), InputAccepted)
		if env.pendingRedactions(roomID) != 1 {
			t.Fatal("the redaction is not pending")
		}
		// bob joins through send_join: the state has the topic.
		d.state[keyOf(topic)] = topic
		d.prev = append(d.prev, topic)
		bobJoin := r.build(d.clone(), bob, spec.MRoomMember, skey(bob), map[string]string{"membership": "join"})
		if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{RoomVersion: "10", JoinEvent: bobJoin.JSON(),
			State: stateJSON(d)}); err != nil {
			t.Fatal(err)
		}
		if !env.redactedBy(topic.EventID(), redaction.EventID()) || env.pendingRedactions(roomID) != 0 {
			t.Fatal("the joined state's topic is not redacted")
		}
		got, err := env.rs.event(env.ctx, d.version, env.nidOf(topic.EventID()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(got.Content()), "secret") {
			t.Fatalf("the cached topic keeps its content: %s", got.Content())
		}
	})
}

func idsOf(evs []gomatrixserverlib.PDU) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID()
	}
	return out
}

// pendingRedactions counts the room's rows of rs_redactions_pending.
func (e *testEnv) pendingRedactions(roomID string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM rs_redactions_pending p JOIN rs_rooms r ON r.room_nid = p.room_nid
		WHERE r.room_id = $1`, roomID).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// hasRow tells whether an event is stored at all.
func (e *testEnv) hasRow(eventID string) bool {
	e.t.Helper()
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM rs_events WHERE event_id = $1`, eventID).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n > 0
}

func (e *testEnv) nidOf(eventID string) int64 {
	e.t.Helper()
	var nid int64
	if err := e.db.QueryRowContext(e.ctx, `SELECT event_nid FROM rs_events WHERE event_id = $1`, eventID).Scan(&nid); err != nil {
		e.t.Fatalf("event %s: %v", eventID, err)
	}
	return nid
}

// redactedBy tells whether an event is stored redacted by the event by
// (any: "").
func (e *testEnv) redactedBy(eventID, by string) bool {
	e.t.Helper()
	var redacted bool
	var redaction string
	if err := e.db.QueryRowContext(e.ctx, `SELECT e.redacted, COALESCE(r.event_id, '') FROM rs_events e
		LEFT JOIN rs_events r ON r.event_nid = e.redacted_by_nid WHERE e.event_id = $1`, eventID).Scan(&redacted, &redaction); err != nil {
		e.t.Fatalf("event %s: %v", eventID, err)
	}
	return redacted && (by == "" || redaction == by)
}

// wantRedacted checks that readers serve the event redacted by the
// redaction: by ID (/event) and in the timeline (/messages, /sync).
func (e *testEnv) wantRedacted(userID, roomID, eventID, redactionID string) {
	e.t.Helper()
	if !e.redactedBy(eventID, redactionID) {
		e.t.Fatalf("%s is not stored redacted by %s", eventID, redactionID)
	}
	check := func(where string, ev ClientEvent) {
		e.t.Helper()
		var unsigned struct {
			RedactedBecause *ClientEvent `json:"redacted_because"`
		}
		_ = json.Unmarshal(ev.Unsigned, &unsigned)
		if string(ev.Content) != "{}" || unsigned.RedactedBecause == nil || unsigned.RedactedBecause.EventID != redactionID {
			e.t.Fatalf("%s: %s has content %s, unsigned %s", where, eventID, ev.Content, ev.Unsigned)
		}
	}
	resp, err := QueryEvent.Call(e.ctx, e.bus, &QueryEventRequest{UserID: userID, RoomID: roomID, EventID: eventID})
	if err != nil {
		e.t.Fatalf("query %s: %v", eventID, err)
	}
	check("by ID", resp.Event)
	evs, err := NewEventReader(e.db).Events(e.ctx, roomID, 0, 1<<62, 0, false)
	if err != nil {
		e.t.Fatal(err)
	}
	i := slices.IndexFunc(evs, func(ev StreamEvent) bool { return ev.Event.EventID == eventID })
	if i < 0 {
		e.t.Fatalf("%s is not in the timeline", eventID)
	}
	check("timeline", evs[i].Event)
}

// outputLog collects the events the roomserver commits (CommitFeed).
type outputLog struct {
	mu   sync.Mutex
	outs []OutputEvent
}

func (e *testEnv) followOutputs() *outputLog {
	l := &outputLog{}
	e.rs.FollowCommits(func(outs []OutputEvent) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.outs = append(l.outs, outs...)
	})
	return l
}

func (l *outputLog) find(eventID string) *OutputEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.outs {
		if l.outs[i].EventID == eventID {
			return &l.outs[i]
		}
	}
	return nil
}
