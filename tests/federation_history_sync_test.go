package tests

import (
	"encoding/json"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// History visibility in the timelines of /sync and sliding sync on the
// server that joined a room later. B stores the messages sent before
// bob's join once he paginates back (backfill); with "joined" his initial
// /sync and a new sliding sync connection still leave them out, as
// /messages does; with "shared" they show them.
func TestFederationHistorySync(t *testing.T) {
	for _, tc := range []struct {
		visibility string
		shown      bool
	}{{"joined", false}, {"shared", true}} {
		t.Run(tc.visibility, func(t *testing.T) {
			ctx := ctxT(t)
			srv := testserver.NewFederation(t, fedA, fedB)
			alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
			room, secret := historyRoom(t, ctx, alice, bob, tc.visibility, 3)
			after := alice.send(ctx, room, "après l'arrivée de bob")
			bob.waitText(room, "après l'arrivée de bob")
			paginate(t, ctx, bob.cli, room, 4)
			if !storedOn(t, srv[0], srv[1], secret[0]) {
				t.Fatal("B did not store the old messages")
			}

			// checkTimeline checks a timeline of room as bob is shown it.
			checkTimeline := func(what string, evs []*event.Event) {
				t.Helper()
				ids := eventIDs(evs)
				if !slices.Contains(ids, after) {
					t.Fatalf("%s: the message sent after bob's join is missing: %q", what, bodies(evs))
				}
				for _, s := range secret {
					if slices.Contains(ids, s) != tc.shown {
						t.Fatalf("%s: message %s shown %v, want %v: %q", what, s, !tc.shown, tc.shown, bodies(evs))
					}
				}
				if n := redactedMessages(evs); n != 0 {
					t.Fatalf("%s shows %d redacted messages", what, n)
				}
			}

			resp := must[*mautrix.RespSync](t)(bob.cli.SyncRequest(ctx, 0, "", `{"room":{"timeline":{"limit":50}}}`, false, ""))
			joined, ok := resp.Rooms.Join[room]
			if !ok {
				t.Fatal("the room is not in bob's initial sync")
			}
			checkTimeline("initial /sync", joined.Timeline.Events)

			ss := mustSliding(t, bob.cli, "", -1, map[string]any{
				"lists": map[string]any{"all": map[string]any{"ranges": [][2]int{{0, 10}}, "timeline_limit": 50, "required_state": [][2]string{}}},
			})
			r, ok := ss.Rooms[string(room)]
			if !ok {
				t.Fatal("the room is not in bob's sliding sync")
			}
			var evs []*event.Event
			for _, e := range r.Timeline {
				// Read as mautrix reads /sync's events.
				ev := new(event.Event)
				if err := json.Unmarshal(must[[]byte](t)(json.Marshal(e)), ev); err != nil {
					t.Fatal(err)
				}
				evs = append(evs, ev)
			}
			checkTimeline("sliding sync", evs)
		})
	}
}
