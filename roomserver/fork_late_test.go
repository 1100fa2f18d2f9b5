package roomserver

import (
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// An event that arrives after a descendant of it was stored (a gap
// filled late) is no forward extremity and leaves the current state as
// it is, whether the descendant came in an earlier request or earlier in
// the same one. It is in the timeline all the same.
func TestInputLateAncestor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, v := range []string{"10", "12"} {
			for _, sameRequest := range []bool{false, true} {
				name := "v" + v
				if sameRequest {
					name += "/same request"
				}
				t.Run(name, func(t *testing.T) { testInputLateAncestor(t, env, v, sameRequest) })
			}
		}
	})
}

func testInputLateAncestor(t *testing.T, env *testEnv, version string, sameRequest bool) {
	alice, rita := user("alice"), remoteUser("rita")
	r := newRemote(t)
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, RoomVersion: version})
	d, join := env.joinRemote(r, roomID, rita)
	before := d.clone()

	// The remote's line: rita renames herself (late), then speaks (gap,
	// authorised by her join). This server gets the message first, with
	// the state given (here: the state before the rename, so that a late
	// event merged into the current state would show).
	late := r.build(d, rita, spec.MRoomMember, skey(rita), map[string]string{"membership": "join", "displayname": "late"})
	gap := r.buildOn(before, []gomatrixserverlib.PDU{late}, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after a gap"})
	stateBefore := idsOf(values(before.state))
	withState := InputEvent{Kind: InputKindNew, Event: gap.JSON(), Origin: remoteName, StateBefore: stateBefore}
	lateIn := InputEvent{Kind: InputKindNew, Event: late.JSON(), Origin: remoteName}
	requests := [][]InputEvent{{withState}, {lateIn}}
	if sameRequest {
		requests = [][]InputEvent{{withState, lateIn}}
	}
	for _, events := range requests {
		resp, err := InputEvents.Call(env.ctx, env.bus, &InputEventsRequest{RoomID: roomID, Events: events})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, resp.Results, InputAccepted)
	}

	// rita's join was an extremity beside the gap's event, which descends
	// from it through the late event: the gap's event is the only one.
	if ext := idsOf(env.dagOf(roomID).prev); !slices.Equal(ext, []string{gap.EventID()}) {
		t.Fatalf("extremities %v, want the gap's event %s alone (late %s, join %s)", ext, gap.EventID(), late.EventID(), join.EventID())
	}
	if got := env.state(alice, roomID)[spec.MRoomMember+"|"+rita].EventID; got != join.EventID() {
		t.Fatalf("rita's membership in the current state is %s, want her join (the late event is %s)", got, late.EventID())
	}
	if !slices.Contains(env.timelineIDs(roomID), late.EventID()) {
		t.Fatal("the late event is not in the timeline")
	}
	// Given alone, it is history: below the gap's event, in its reserve.
	// (In the gap's request, the reserve is made as the gap's event is
	// stored: the late event takes the next position.)
	latePos, _, _, _ := env.flags(late.EventID())
	gapPos, _, _, _ := env.flags(gap.EventID())
	if !sameRequest && (latePos <= 0 || latePos >= gapPos) {
		t.Fatalf("the late event is at %d, the gap's event at %d: want it below", latePos, gapPos)
	}
	local := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "next"})
	if prev := env.rawEvent(local)["prev_events"].([]any); len(prev) != 1 || prev[0] != gap.EventID() {
		t.Fatalf("local prev_events %v, want the gap's event", prev)
	}
}
