package roomserver

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/signingkey"
)

// A fake remote server for input tests: it builds and signs events with
// its own key, on states the test gives.

const remoteName = "remote.test"

func remoteUser(name string) string { return "@" + name + ":" + remoteName }

type remote struct {
	t   testing.TB
	key signingkey.Key
	now time.Time
}

func newRemote(t testing.TB) *remote {
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	// Later than local events, so that the remote's events win ties on
	// origin_server_ts in state resolution.
	return &remote{t: t, key: key, now: time.Now().Add(time.Hour)}
}

// roomDAG is what a test knows of a room to build events on it: the state
// and the events to take as prev_events.
type roomDAG struct {
	version gomatrixserverlib.IRoomVersion
	roomID  string
	state   map[stateKey]gomatrixserverlib.PDU
	prev    []gomatrixserverlib.PDU
}

// clone copies the DAG view, so a test can build two branches.
func (d *roomDAG) clone() *roomDAG {
	c := *d
	c.state = make(map[stateKey]gomatrixserverlib.PDU, len(d.state))
	for k, v := range d.state {
		c.state[k] = v
	}
	c.prev = slices.Clone(d.prev)
	return &c
}

// build makes an event on the DAG view (prev_events = d.prev, auth events
// chosen from d.state), and advances the view past it.
func (r *remote) build(d *roomDAG, sender, eventType string, sk *string, content any) gomatrixserverlib.PDU {
	r.t.Helper()
	ev := r.buildOn(d, d.prev, sender, eventType, sk, content)
	d.prev = []gomatrixserverlib.PDU{ev}
	if sk != nil {
		d.state[keyOf(ev)] = ev
	}
	return ev
}

// buildOn makes an event with the given prev_events, auth events from
// d.state, without changing d.
func (r *remote) buildOn(d *roomDAG, prev []gomatrixserverlib.PDU, sender, eventType string, sk *string, content any) gomatrixserverlib.PDU {
	r.t.Helper()
	r.now = r.now.Add(time.Second)
	data, err := json.Marshal(content)
	if err != nil {
		r.t.Fatal(err)
	}
	prevIDs, authIDs := []string{}, []string{}
	var depth int64
	for _, p := range prev {
		prevIDs = append(prevIDs, p.EventID())
		depth = max(depth, p.Depth())
	}
	proto := gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: d.roomID, Type: eventType, StateKey: sk,
		PrevEvents: prevIDs, Content: data}
	proto.Depth = depth + 1
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, t := range needed.Tuples() {
		a := d.state[stateKey{t.EventType, t.StateKey}]
		if a == nil || (t.EventType == spec.MRoomCreate && d.version.DomainlessRoomIDs()) {
			continue
		}
		authIDs = append(authIDs, a.EventID())
	}
	proto.AuthEvents = authIDs
	if eventType == spec.MRoomCreate && d.version.DomainlessRoomIDs() {
		proto.RoomID = ""
	}
	ev, err := d.version.NewEventBuilderFromProtoEvent(&proto).
		Build(r.now, remoteName, gomatrixserverlib.KeyID(r.key.ID), r.key.Private)
	if err != nil {
		r.t.Fatalf("build %s: %v", eventType, err)
	}
	return ev
}

// newRemoteRoom creates a room on the remote server: create, the
// creator's join, power levels, public join rules.
func (r *remote) newRemoteRoom(version string, creator string) (*roomDAG, []gomatrixserverlib.PDU) {
	r.t.Helper()
	v := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version))
	d := &roomDAG{version: v, state: map[stateKey]gomatrixserverlib.PDU{}}
	if !v.DomainlessRoomIDs() {
		d.roomID = "!remote" + version + ":" + remoteName
	}
	content := map[string]any{"room_version": version}
	if versionNumber(v) <= 10 {
		content["creator"] = creator
	}
	empty := ""
	create := r.build(d, creator, spec.MRoomCreate, &empty, content)
	if d.roomID == "" {
		d.roomID = create.RoomID().String()
	}
	events := []gomatrixserverlib.PDU{create}
	events = append(events, r.build(d, creator, spec.MRoomMember, &creator, map[string]string{"membership": "join"}))
	users := map[string]int{}
	if !v.PrivilegedCreators() {
		users[creator] = 100
	}
	events = append(events, r.build(d, creator, spec.MRoomPowerLevels, &empty, map[string]any{"users": users}))
	events = append(events, r.build(d, creator, spec.MRoomJoinRules, &empty, map[string]string{"join_rule": "public"}))
	return d, events
}

func skey(s string) *string { return &s }

// dagOf reads a stored room's DAG view: its current state and forward
// extremities.
func (e *testEnv) dagOf(roomID string) *roomDAG {
	e.t.Helper()
	h, err := loadHead(e.ctx, e.rs, roomID)
	if err != nil || h == nil {
		e.t.Fatalf("load room %s: %v", roomID, err)
	}
	d := &roomDAG{version: h.version, roomID: roomID, state: map[stateKey]gomatrixserverlib.PDU{}}
	for k, nid := range h.state {
		ev, err := e.rs.event(e.ctx, h.version, nid)
		if err != nil {
			e.t.Fatal(err)
		}
		d.state[k] = ev
	}
	for _, id := range h.extremities {
		d.prev = append(d.prev, e.pdu(h.version, id))
	}
	return d
}

// pdu reads a stored event.
func (e *testEnv) pdu(version gomatrixserverlib.IRoomVersion, eventID string) gomatrixserverlib.PDU {
	e.t.Helper()
	var data []byte
	if err := e.db.QueryRowContext(e.ctx, `SELECT json FROM rs_events WHERE event_id = $1`, eventID).Scan(&data); err != nil {
		e.t.Fatalf("read event %s: %v", eventID, err)
	}
	ev, err := version.NewEventFromTrustedJSON(data, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// input sends events of one kind to InputEvents and returns the results.
func (e *testEnv) input(roomID, kind string, evs ...gomatrixserverlib.PDU) []InputResult {
	e.t.Helper()
	req := &InputEventsRequest{RoomID: roomID}
	for _, ev := range evs {
		req.Events = append(req.Events, InputEvent{Kind: kind, Event: ev.JSON(), Origin: remoteName})
	}
	resp, err := InputEvents.Call(e.ctx, e.bus, req)
	if err != nil {
		e.t.Fatalf("input events: %v", err)
	}
	if len(resp.Results) != len(evs) {
		e.t.Fatalf("%d results for %d events", len(resp.Results), len(evs))
	}
	return resp.Results
}

// wantStatus fails unless every result has the status.
func wantStatus(t testing.TB, results []InputResult, status string) {
	t.Helper()
	for _, r := range results {
		if r.Status != status {
			t.Fatalf("event %s: %s (%s %v), want %s", r.EventID, r.Status, r.Reason, r.Missing, status)
		}
	}
}

// flags reads an event's stored flags and position.
func (e *testEnv) flags(eventID string) (pos int64, outlier, rejected, softFailed bool) {
	e.t.Helper()
	err := e.db.QueryRowContext(e.ctx, `SELECT stream_pos, outlier, rejected, soft_failed FROM rs_events WHERE event_id = $1`, eventID).
		Scan(&pos, &outlier, &rejected, &softFailed)
	if err != nil {
		e.t.Fatalf("read event %s: %v", eventID, err)
	}
	return pos, outlier, rejected, softFailed
}

// timelineIDs lists the room's timeline as EventReader returns it.
func (e *testEnv) timelineIDs(roomID string) []string {
	e.t.Helper()
	r := NewEventReader(e.db)
	evs, err := r.Events(e.ctx, roomID, 0, 1<<62, 0, false)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Event.EventID)
	}
	return out
}

// joinRemote makes a remote user join a local public room.
func (e *testEnv) joinRemote(r *remote, roomID, userID string) (*roomDAG, gomatrixserverlib.PDU) {
	e.t.Helper()
	d := e.dagOf(roomID)
	join := r.build(d, userID, spec.MRoomMember, skey(userID), map[string]string{"membership": "join"})
	wantStatus(e.t, e.input(roomID, InputKindNew, join), InputAccepted)
	return d, join
}
