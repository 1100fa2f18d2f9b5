package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// History of a federated room on the server that joined it later: what
// its users are shown of the events from before they joined, and of the
// events it never received.

// eventIDs lists the IDs of events, in their order.
func eventIDs(evs []*event.Event) []id.EventID {
	out := make([]id.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// redactedMessages counts the messages without content among events.
func redactedMessages(evs []*event.Event) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == event.EventMessage && len(ev.Content.Raw) == 0 {
			n++
		}
	}
	return n
}

// storedOn says whether server `on` stores an event, asking it as server
// `as` (GET /_matrix/federation/v1/event): a client's 404 then comes from
// history visibility, not from the event being unknown.
func storedOn(t *testing.T, as, on *testserver.Server, eventID id.EventID) bool {
	t.Helper()
	status, _ := asServer(t, as, on, "GET", "/_matrix/federation/v1/event/"+string(eventID), nil)
	return status == http.StatusOK
}

// With history visibility "joined", bob, on the server that joined later,
// is shown nothing of what was said before he joined: /messages leaves
// those events out (A sent them to B redacted, and B stores them so the
// DAG is whole), /event and /context answer 404 as for unknown events,
// and /context of a later event has none of them around it.
func TestFederationHistoryJoinedLeftOut(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room, secret := historyRoom(t, ctx, alice, bob, "joined", 5)
	after := alice.send(ctx, room, "après l'arrivée de bob")
	bob.waitText(room, "après l'arrivée de bob")

	history := paginate(t, ctx, bob.cli, room, 4)
	if got := bodies(history); !slices.Equal(got, []string{"après l'arrivée de bob"}) {
		t.Fatalf("bob reads %q", got)
	}
	if n := redactedMessages(history); n != 0 {
		t.Fatalf("bob is shown %d redacted messages from before his join", n)
	}
	for _, ev := range history {
		if slices.Contains(secret, ev.ID) {
			t.Fatalf("bob is shown %s", ev.ID)
		}
		if ev.Type == event.StateRoomName {
			t.Fatalf("bob is shown the name set before he joined (%s)", ev.ID)
		}
	}
	// What was set before the visibility became "joined" is shared
	// history: bob sees the room's creation.
	if last := history[len(history)-1]; last.Type != event.StateCreate {
		t.Fatalf("bob's history ends with %s (%s), not the room's creation", last.Type, last.ID)
	}

	// B has the old messages now (backfilled), yet bob may not read them.
	if !storedOn(t, srv[0], srv[1], secret[0]) {
		t.Fatal("B did not store the old messages")
	}
	_, err := bob.cli.GetEvent(ctx, room, secret[0])
	wantErr(t, err, "M_NOT_FOUND", 404)
	_, err = bob.cli.Context(ctx, room, secret[len(secret)-1], nil, 10)
	wantErr(t, err, "M_NOT_FOUND", 404)
	if _, err := bob.cli.GetEvent(ctx, room, after); err != nil {
		t.Fatalf("bob cannot read the message sent after his join: %v", err)
	}
	around := must[*mautrix.RespContext](t)(bob.cli.Context(ctx, room, after, nil, 20))
	for _, ev := range slices.Concat(around.EventsBefore, around.EventsAfter) {
		if slices.Contains(secret, ev.ID) || (ev.Type == event.EventMessage && len(ev.Content.Raw) == 0) {
			t.Fatalf("/context around the new message shows %s (%s)", ev.ID, ev.Type)
		}
	}
	// alice, on A, still reads everything.
	if got := bodies(paginate(t, ctx, alice.cli, room, 50)); len(got) != len(secret)+1 {
		t.Fatalf("alice reads %q", got)
	}
}

// With history visibility "invited", bob sees what was said from his
// invite on, not before, across servers.
func TestFederationHistoryInvited(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room := must[*mautrix.RespCreateRoom](t)(alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Name: "Archives invited",
		InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: new(string),
			Content: event.Content{Raw: map[string]any{"history_visibility": "invited"}},
		}},
	})).RoomID
	secret := alice.send(ctx, room, "avant l'invitation")
	if _, err := alice.cli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.id()}); err != nil {
		t.Fatalf("alice invites bob: %v", err)
	}
	bob.waitFor("the invite", func() bool { return bob.invites[room] })
	invited := alice.send(ctx, room, "pendant l'invitation")
	if _, err := bob.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	alice.waitMember(room, bob.id(), event.MembershipJoin)
	alice.send(ctx, room, "après l'arrivée")
	bob.waitText(room, "après l'arrivée")

	history := paginate(t, ctx, bob.cli, room, 3)
	if got := bodies(history); !slices.Equal(got, []string{"après l'arrivée", "pendant l'invitation"}) {
		t.Fatalf("bob reads %q", got)
	}
	if n := redactedMessages(history); n != 0 {
		t.Fatalf("bob is shown %d redacted messages", n)
	}
	if !storedOn(t, srv[0], srv[1], secret) {
		t.Fatal("B did not store the message from before the invite")
	}
	_, err := bob.cli.GetEvent(ctx, room, secret)
	wantErr(t, err, "M_NOT_FOUND", 404)
	if ev, err := bob.cli.GetEvent(ctx, room, invited); err != nil || ev.Content.Raw["body"] != "pendant l'invitation" {
		t.Fatalf("the message sent while bob was invited: %v %v", ev, err)
	}
}

// A hole in the middle of B's history: B stored the room's events up to
// a point, then an event came whose missing prev_events were more than
// get_missing_events brings, so B took the state before it and never
// fetched the rest. Paginating back across the hole fetches the missing
// events from A (backfill) and shows them where they belong, between
// the event after the hole and the history before it, each once.
func TestFederationBackfillHole(t *testing.T) {
	ctx := ctxT(t)
	sc, chain := holeScene(t, ctx)
	alice, bob, room := sc.alice, sc.bob, sc.room
	n := len(chain) - 1

	history := paginate(t, ctx, bob.cli, room, 7)
	wantWholeHistory(t, history, holeHistory(n)) // federation_history_test.go
	// Stored where it belongs: read again, in pages of another size, the
	// same events in the same order.
	if again := paginate(t, ctx, bob.cli, room, 50); !slices.Equal(eventIDs(again), eventIDs(history)) {
		t.Fatalf("second reading differs:\n%v\n%v", eventIDs(again), eventIDs(history))
	}
	if ev, err := bob.cli.GetEvent(ctx, room, id.EventID(chain[0].EventID())); err != nil || ev.Content.Raw["body"] != "trou 0" {
		t.Fatalf("the first event of the hole on B: %v %v", ev, err)
	}
	// The room goes on as usual.
	alice.send(ctx, room, "après le trou")
	bob.waitText(room, "après le trou")
}

// An event of the hole that A sends B late (a server whose sender is
// behind, or that sends to the room's members as they are when it sends)
// is history, not news: B places it below the event after the hole, whose
// prev_event it is, and bob's /sync does not show it.
func TestFederationHoleEventSentLate(t *testing.T) {
	ctx := ctxT(t)
	sc, chain := holeScene(t, ctx)
	srv, alice, bob, room := sc.srv, sc.alice, sc.bob, sc.room
	n := len(chain) - 1
	seen := len(bob.timeline[room])

	// The hole ends at the oldest event of the chain B has (get_missing_events
	// brought a few before the last); the late one is just before it.
	top := slices.IndexFunc(chain, func(ev gomatrixserverlib.PDU) bool { return storedOn(t, srv[0], srv[1], id.EventID(ev.EventID())) })
	if top < 1 {
		t.Fatalf("B has the chain from %d on: no hole to test", top)
	}
	late := chain[top-1]
	res := sendTxn(t, srv[0], srv[1], fmt.Sprintf("hole-late-%d", time.Now().UnixNano()), late.JSON())
	if r, ok := res[late.EventID()]; !ok || r["error"] != "" {
		t.Fatalf("B refused the hole's event sent late: %v", res)
	}
	alice.send(ctx, room, "après le trou")
	bob.waitText(room, "après le trou")
	for _, ev := range bob.timeline[room][seen:] {
		if ev.ID == id.EventID(late.EventID()) {
			t.Fatal("bob's /sync shows the hole's event sent late as a new event")
		}
	}
	wantWholeHistory(t, paginate(t, ctx, bob.cli, room, 7), append([]string{"après le trou"}, holeHistory(n)...))
}

// holeHistory is the history bob should read after holeScene, newest
// first.
func holeHistory(n int) []string {
	var want []string
	for i := n; i >= 0; i-- {
		want = append(want, fmt.Sprintf("trou %d", i))
	}
	return append(want, "avant le trou")
}

// holeScene makes the hole of TestFederationBackfillHole: bob's messages
// "trou 0" to "trou 30" (the chain), which A has and B has only the last
// of, with the state before it.
func holeScene(t *testing.T, ctx context.Context) (*bobScene, []gomatrixserverlib.PDU) {
	t.Helper()
	sc := newBobScene(t, ctx, "avant le trou")
	srv, bob, room, last, bKey := sc.srv, sc.bob, sc.room, sc.last, sc.bKey

	// bob's messages on top of it, which only A learns (sent in B's name):
	// B never stores them itself.
	auth, depth := sc.auth(), sc.depth
	const n = 30
	var chain []gomatrixserverlib.PDU
	prev := string(last)
	for i := range n + 1 {
		depth++
		ev := crafted(t, fedB, bKey.Private, bKey.ID, room, string(bob.id()), "m.room.message", nil,
			map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("trou %d", i)}, []string{prev}, auth, depth)
		prev = ev.EventID()
		chain = append(chain, ev)
	}
	var raws []json.RawMessage
	for _, ev := range chain {
		raws = append(raws, ev.JSON())
	}
	res := sendTxn(t, srv[1], srv[0], fmt.Sprintf("hole-%d", time.Now().UnixNano()), raws...)
	for _, ev := range chain {
		if r, ok := res[ev.EventID()]; !ok || r["error"] != "" {
			t.Fatalf("A refused %s: %v", ev.EventID(), res)
		}
	}
	// Then the last one reaches B alone, in A's name.
	head := chain[n]
	res = sendTxn(t, srv[0], srv[1], fmt.Sprintf("hole-head-%d", time.Now().UnixNano()), head.JSON())
	if r, ok := res[head.EventID()]; !ok || r["error"] != "" {
		t.Fatalf("B refused the event after the hole: %v", res)
	}
	bob.waitText(room, fmt.Sprintf("trou %d", n))
	if storedOn(t, srv[0], srv[1], id.EventID(chain[0].EventID())) {
		t.Fatal("B has the first event of the hole already: no hole to test")
	}
	return sc, chain
}
