package roomserver

import (
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Remote messages land on a branch whose state differs from the room's
// current state, so each accepted one resolves the two states, which
// flushes the rows waiting to be stored (fork.go) while the message's own
// row is one of them. What is recorded after the resolution (the relation,
// the event as known to the rest of the request) must still get its nid:
// a reaction is then listed by /relations, and a redaction of a message
// of the same request finds its target.
func TestInputFlushedMessageKeepsItsNID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		env.joinRemote(r, roomID, rita)
		original := env.mustSend(alice, roomID, "m.room.message", map[string]string{"msgtype": "m.text", "body": "version 1"})
		base := env.dagOf(roomID)
		// Here, on one branch: a topic. The remote branch has not seen it.
		if _, err := env.sendState(alice, roomID, spec.MRoomTopic, "", map[string]string{"topic": "ici"}); err != nil {
			t.Fatal(err)
		}

		reaction := r.build(base, rita, "m.reaction", nil, map[string]any{
			"m.relates_to": map[string]string{"rel_type": "m.annotation", "event_id": original, "key": "👍"},
		})
		wantStatus(t, env.input(roomID, InputKindNew, reaction), InputAccepted)
		rels, err := QueryRelations.Call(env.ctx, env.bus, &QueryRelationsRequest{UserID: alice, RoomID: roomID, EventID: original, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ev := range rels.Chunk {
			ids = append(ids, ev.EventID)
		}
		if !slices.Equal(ids, []string{reaction.EventID()}) {
			t.Fatalf("relations of the original: %v, want the reaction %s", ids, reaction.EventID())
		}

		doomed := r.build(base, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "à effacer"})
		redaction := r.build(base, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": doomed.EventID()})
		wantStatus(t, env.input(roomID, InputKindNew, doomed, redaction), InputAccepted)
		var redacted bool
		if err := env.db.QueryRowContext(env.ctx, `SELECT redacted FROM rs_events WHERE event_id = $1`, doomed.EventID()).Scan(&redacted); err != nil || !redacted {
			t.Fatalf("the message is not marked redacted (%v)", err)
		}
	})
}

// An event stored as an outlier and, later in the same request, as a new
// event: the outlier's row may still be waiting when it is made part of
// the DAG, which updates it by nid.
func TestInputOutlierThenNewInOneRequest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		d, _ := env.joinRemote(r, roomID, rita)
		msg := r.build(d, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "twice"})
		resp, err := InputEvents.Call(env.ctx, env.bus, &InputEventsRequest{RoomID: roomID, Events: []InputEvent{
			{Kind: InputKindOutlier, Event: msg.JSON(), Origin: remoteName},
			{Kind: InputKindNew, Event: msg.JSON(), Origin: remoteName},
		}})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, resp.Results, InputAccepted)
		if pos, outlier, _, _ := env.flags(msg.EventID()); outlier || pos <= 0 {
			t.Fatalf("stored at %d, outlier=%v: still an outlier", pos, outlier)
		}
		if !slices.Contains(env.timelineIDs(roomID), msg.EventID()) {
			t.Fatal("the event is not in the timeline")
		}
	})
}
