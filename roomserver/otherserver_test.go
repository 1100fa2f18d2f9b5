package roomserver

import (
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/signingkey"
)

// otherServer signs events as another homeserver would, for tests of what
// the roomserver does with other servers' events (signatures are the
// federation's to check: the roomserver trusts what it is given).
type otherServer struct {
	name string
	key  signingkey.Key
}

func newOtherServer(t testing.TB, name string) *otherServer {
	t.Helper()
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return &otherServer{name: name, key: key}
}

func (s *otherServer) user(name string) string { return "@" + name + ":" + s.name }

// remoteEventSpec is an event of another server's user to build.
type remoteEventSpec struct {
	sender   string
	evType   string
	stateKey *string
	content  any
	// prevs are the prev_events; nil takes the room's extremities.
	prevs []string
}

// buildRemote builds and signs an event by srv on the room, with the auth
// events the room's current state gives and the depth its prev_events
// (or, when none is stored, the extremities) give.
func (e *testEnv) buildRemote(srv *otherServer, roomID string, es remoteEventSpec) gomatrixserverlib.PDU {
	e.t.Helper()
	fr := NewFederationReader(e.db)
	ver, ok, err := fr.RoomVersion(e.ctx, roomID)
	if err != nil || !ok {
		e.t.Fatalf("room version of %s: %v %v", roomID, ok, err)
	}
	version := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(ver))
	extremities, err := fr.Extremities(e.ctx, roomID)
	if err != nil {
		e.t.Fatal(err)
	}
	prevs := es.prevs
	if prevs == nil {
		prevs = extremities
	}
	known, err := fr.Events(e.ctx, prevs, false)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(known) == 0 {
		known, _ = fr.Events(e.ctx, extremities, false)
	}
	var depth int64
	for _, p := range known {
		depth = max(depth, p.Depth)
	}
	proto := gomatrixserverlib.ProtoEvent{
		SenderID: es.sender, RoomID: roomID, Type: es.evType, StateKey: es.stateKey,
		PrevEvents: prevs, Depth: depth + 1, Content: spec.RawJSON(mustJSON(es.content)), Version: version,
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
	if err != nil {
		e.t.Fatal(err)
	}
	auth := []string{}
	for _, tuple := range needed.Tuples() {
		if tuple.EventType == spec.MRoomCreate && version.DomainlessRoomIDs() {
			continue
		}
		ev, err := fr.CurrentState(e.ctx, roomID, tuple.EventType, tuple.StateKey)
		if err != nil {
			e.t.Fatal(err)
		}
		if ev != nil {
			auth = append(auth, ev.EventID)
		}
	}
	proto.AuthEvents = auth
	pdu, err := version.NewEventBuilderFromProtoEvent(&proto).
		Build(time.Now(), spec.ServerName(srv.name), gomatrixserverlib.KeyID(srv.key.ID), srv.key.Private)
	if err != nil {
		e.t.Fatalf("build %s: %v", es.evType, err)
	}
	return pdu
}

// inputOne inputs one event of another server and returns its result.
func (e *testEnv) inputOne(roomID, kind string, ev gomatrixserverlib.PDU, stateBefore []string) InputResult {
	e.t.Helper()
	resp, err := e.rs.inputEvents(e.ctx, &InputEventsRequest{RoomID: roomID, Events: []InputEvent{{
		Kind: kind, Event: ev.JSON(), Origin: domainOf(string(ev.SenderID())), StateBefore: stateBefore,
	}}})
	if err != nil {
		e.t.Fatalf("input %s: %v", ev.EventID(), err)
	}
	r := resp.Results[0]
	if r.Status == InputAccepted && kind == InputKindNew {
		if pos, _, _, _ := e.flags(ev.EventID()); r.Pos != pos {
			e.t.Fatalf("input %s: accepted at %d, result says %d", ev.EventID(), pos, r.Pos)
		}
	}
	return r
}

// mustInput inputs an event that must end with the given status.
func (e *testEnv) mustInput(roomID, kind string, ev gomatrixserverlib.PDU, stateBefore []string, status string) {
	e.t.Helper()
	if r := e.inputOne(roomID, kind, ev, stateBefore); r.Status != status {
		e.t.Fatalf("input %s (%s): %+v, want %s", ev.EventID(), ev.Type(), r, status)
	}
}

func ptr[T any](v T) *T { return &v }

// sameSet fails unless got and want hold the same strings.
func sameSet(t testing.TB, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("%s: got %v, want %v", what, g, w)
	}
}
