package roomserver

import (
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// HistoryOpenThrough names the rooms whose history visibility never hid
// anything from a member, with the user's last join; and VisibleEvents
// does keep every event up to that position there.
func TestHistoryOpenThrough(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob, carol := user("alice"), user("bob"), user("carol")
		reader := NewEventReader(env.db)
		hr := reader.(HistoryReader)
		joins := map[string]int64{} // bob's last join per room
		var rooms []string
		room := func(visibilities ...string) string {
			roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPrivate})
			for _, vis := range visibilities {
				if _, err := env.sendState(alice, roomID, spec.MRoomHistoryVisibility, "", map[string]string{"history_visibility": vis}); err != nil {
					t.Fatal(err)
				}
				env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "under " + vis})
			}
			env.mustMember(alice, roomID, bob, MembershipInvite)
			join := env.mustMember(bob, roomID, bob, MembershipJoin)
			env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "after"})
			evs, err := reader.Events(env.ctx, roomID, 0, 1<<62, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				if ev.Event.EventID == join {
					joins[roomID] = ev.Pos
				}
			}
			rooms = append(rooms, roomID)
			return roomID
		}
		shared := room(visShared)
		world := room(visWorldReadable, visShared)
		joined := room(visJoined)
		invited := room(visInvited)
		wasJoined := room(visJoined, visShared)

		open, err := hr.HistoryOpenThrough(env.ctx, bob, append(rooms, "!unknown:test"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{shared: joins[shared], world: joins[world]}
		if len(open) != len(want) || open[shared] != want[shared] || open[world] != want[world] {
			t.Fatalf("open = %v, want %v (joined %s, invited %s, was joined %s)", open, want, joined, invited, wasJoined)
		}
		for roomID, through := range open {
			evs, err := reader.Events(env.ctx, roomID, 0, through, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			kept, err := hr.VisibleEvents(env.ctx, roomID, bob, evs)
			if err != nil {
				t.Fatal(err)
			}
			if len(kept) != len(evs) {
				t.Fatalf("%s: VisibleEvents keeps %d of the %d events through %d", roomID, len(kept), len(evs), through)
			}
		}
		// carol never joined any of them.
		if open, err := hr.HistoryOpenThrough(env.ctx, carol, rooms); err != nil || len(open) != 0 {
			t.Fatalf("carol: %v %v", open, err)
		}
	})
}
