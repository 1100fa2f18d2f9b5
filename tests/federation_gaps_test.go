package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// An event whose parents a server lacks is completed from the sending
// server: a short gap by get_missing_events, a gap longer than one
// get_missing_events answer through the state before the event
// (/state_ids and the events it names).
func TestFederationGapFilling(t *testing.T) {
	ctx := ctxT(t)
	sc := newBobScene(t, ctx, "avant le trou")
	srv, alice, bob, room, last, bKey := sc.srv, sc.alice, sc.bob, sc.room, sc.last, sc.bKey

	auth, depth := sc.auth(), sc.depth
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
	// The events get_missing_events brought come before the event in A's
	// timeline, as in the DAG, even though the gap was wider than its
	// answer. (B also sends A all of them, as its user's: those that
	// arrive after the event come after it.)
	msgs := must[*mautrix.RespMessages](t)(alice.cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100))
	at := map[string]int{} // body → place in the timeline, newest first
	for i, ev := range msgs.Chunk {
		if body, ok := ev.Content.Raw["body"].(string); ok {
			at[body] = i
		}
	}
	head, ok := at["long 14"]
	if !ok {
		t.Fatalf("A's /messages misses \"long 14\"")
	}
	for i := 4; i < 14; i++ {
		body := fmt.Sprintf("long %d", i)
		if place, ok := at[body]; !ok || place <= head {
			t.Fatalf("A's timeline has %q at %d (found %v), not before \"long 14\" at %d (newest first)", body, place, ok, head)
		}
	}
	alice.waitText(room, "long 14")
	// A still sends in the room, on top of what it filled.
	alice.send(ctx, room, "après les trous")
	bob.waitText(room, "après les trous")
}
