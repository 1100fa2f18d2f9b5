package tests

import (
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Server B sends a redaction over /send before the event it redacts; the
// two are siblings, so the redaction does not name its target among its
// prev_events and A has nothing to fetch. When the target comes in a
// later transaction, alice on A sees it redacted: in /sync, /event and
// /messages, with the redaction as redacted_because.
func TestFederationRedactionBeforeTarget(t *testing.T) {
	ctx := ctxT(t)
	sc := newBobScene(t, ctx, "avant")
	srv, alice, bob, room, bKey := sc.srv, sc.alice, sc.bob, sc.room, sc.bKey
	depth := sc.depth + 1
	prev, auth := []string{string(sc.last)}, sc.auth()
	target := crafted(t, fedB, bKey.Private, bKey.ID, room, string(bob.id()), "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "regrettable"}, prev, auth, depth)
	redaction := crafted(t, fedB, bKey.Private, bKey.ID, room, string(bob.id()), "m.room.redaction", nil,
		map[string]any{"redacts": target.EventID()}, prev, auth, depth)
	targetID, redactionID := id.EventID(target.EventID()), id.EventID(redaction.EventID())

	txn := fmt.Sprintf("redaction%d", time.Now().UnixNano())
	if r := sendTxn(t, srv[1], srv[0], txn+"a", redaction.JSON()); r[redaction.EventID()]["error"] != "" {
		t.Fatalf("the redaction was refused: %v", r)
	}
	alice.waitFor("the redaction", func() bool { return alice.seenEvent(room, redactionID) != nil })
	if alice.seenEvent(room, targetID) != nil {
		t.Fatal("the target was fetched with the redaction")
	}
	if r := sendTxn(t, srv[1], srv[0], txn+"b", target.JSON()); r[target.EventID()]["error"] != "" {
		t.Fatalf("the target was refused: %v", r)
	}

	redacted := func(where string, ev *event.Event) {
		t.Helper()
		if ev == nil {
			t.Fatalf("%s: the target is missing", where)
		}
		if _, ok := ev.Content.Raw["body"]; ok {
			t.Fatalf("%s: the target kept its content: %v", where, ev.Content.Raw)
		}
		if rb := ev.Unsigned.RedactedBecause; rb == nil || rb.ID != redactionID {
			t.Fatalf("%s: redacted_because %+v, want %s", where, rb, redactionID)
		}
	}
	alice.waitFor("the target", func() bool { return alice.seenEvent(room, targetID) != nil })
	redacted("sync", alice.seenEvent(room, targetID))
	redacted("event", must[*event.Event](t)(alice.cli.GetEvent(ctx, room, targetID)))
	page := must[*mautrix.RespMessages](t)(alice.cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 20))
	var inPage *event.Event
	for _, ev := range page.Chunk {
		if ev.ID == targetID {
			inPage = ev
		}
	}
	redacted("messages", inPage)
}
