package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// An event whose parents a server lacks is completed from the sending
// server: a short gap by get_missing_events, a gap longer than one
// get_missing_events answer through the state before the event
// (/state_ids and the events it names).
func TestFederationGapFilling(t *testing.T) {
	skipUnlessFlakyRun(t, "the event after a 14-event gap is stored but /sync sometimes never shows it")
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room := publicRoom(t, ctx, alice, bob)
	last := alice.send(ctx, room, "avant le trou")
	bob.waitText(room, "avant le trou")

	state := must[mautrix.RoomStateMap](t)(alice.cli.State(ctx, room))
	auth := []string{string(state[event.StatePowerLevels][""].ID), string(state[event.StateMember][string(bob.id())].ID)}
	depth := eventDepth(t, srv[1], srv[0], last)
	bKey := srv[1].Base.Key
	prev := string(last)
	// chain makes n messages of bob, each on the previous one.
	chain := func(n int, label string) []gomatrixserverlib.PDU {
		var out []gomatrixserverlib.PDU
		for i := range n {
			depth++
			ev := crafted(t, fedB, bKey.Private, bKey.ID, room, string(bob.id()), "m.room.message", nil,
				map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("%s %d", label, i)}, []string{prev}, auth, depth)
			prev = ev.EventID()
			out = append(out, ev)
		}
		return out
	}
	// B learns the events from A's name (a transaction signed as A), so
	// only B has them; then B sends A the last one alone.
	fill := func(label string, gap int) {
		t.Helper()
		evs := chain(gap+1, label)
		var all []json.RawMessage
		for _, ev := range evs {
			all = append(all, ev.JSON())
		}
		res := sendTxn(t, srv[0], srv[1], fmt.Sprintf("%s-%d", label, time.Now().UnixNano()), all...)
		for _, ev := range evs {
			if r, ok := res[ev.EventID()]; !ok || r["error"] != "" {
				t.Fatalf("B refused %s: %v", ev.EventID(), res)
			}
		}
		head := evs[gap]
		res = sendTxn(t, srv[1], srv[0], fmt.Sprintf("%s-head-%d", label, time.Now().UnixNano()), head.JSON())
		if r, ok := res[head.EventID()]; !ok || r["error"] != "" {
			t.Fatalf("A refused the event after a gap of %d: %v", gap, res)
		}
		if _, err := alice.cli.GetEvent(ctx, room, id.EventID(head.EventID())); err != nil {
			t.Fatalf("A does not show the event after a gap of %d: %v", gap, err)
		}
	}
	fill("court", 2)
	// Both missing events came with get_missing_events and are shown.
	alice.waitText(room, "court 0")
	alice.waitText(room, "court 1")
	fill("long", 14)
	alice.waitText(room, "long 14")
	// A still sends in the room, on top of what it filled.
	alice.send(ctx, room, "après les trous")
	bob.waitText(room, "après les trous")
}
