package roomserver

import (
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// What another server may see of a room's history, through the changes of
// m.room.history_visibility and of its users' memberships.
func TestVisibleToServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		const other = "other.test" // a server whose user is only invited
		r := newRemote(t)
		alice, carol, erin := user("alice"), remoteUser("carol"), "@erin:"+other
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic,
			PowerLevelContentOverride: json.RawMessage(`{"invite": 0}`)})
		fr := NewFederationReader(env.db)
		setVis := func(vis string) string {
			t.Helper()
			id, err := env.sendState(alice, roomID, spec.MRoomHistoryVisibility, "", map[string]string{"history_visibility": vis})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		msg := func(body string) string {
			return env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": body})
		}
		remoteMember := func(target, membership string) string {
			t.Helper()
			ev := r.build(env.dagOf(roomID), carol, spec.MRoomMember, skey(target), map[string]string{"membership": membership})
			wantStatus(t, env.input(roomID, InputKindNew, ev), InputAccepted)
			return ev.EventID()
		}
		// want checks what server sees of the events (true: in full).
		want := func(server string, expected map[string]bool) {
			t.Helper()
			ids := make([]string, 0, len(expected))
			for id := range expected {
				ids = append(ids, id)
			}
			got, err := fr.VisibleToServer(env.ctx, roomID, server, ids)
			if err != nil {
				t.Fatal(err)
			}
			for id, w := range expected {
				if got[id] != w {
					t.Errorf("%s sees %s: %v, want %v", server, id, got[id], w)
				}
			}
		}

		create := env.state(alice, roomID)["m.room.create|"].EventID
		setJoined := setVis("joined")
		before := msg("before carol")
		join := remoteMember(carol, "join")
		during := msg("while carol is in")
		leave := remoteMember(carol, "leave")
		after := msg("after carol left")
		want(remoteName, map[string]bool{
			// The room's first events had the default visibility
			// (shared), and carol joined later.
			create: true,
			// Joined: nothing from before the join nor after the leave;
			// carol's own join and leave are seen.
			before: false, join: true, during: true, leave: true, after: false,
			// The change to "joined" itself: shared before it.
			setJoined: true,
		})
		want(other, map[string]bool{before: false, during: false, create: false})

		// Shared: what is sent while the server is out shows once it
		// joins again; never what "joined" hid.
		setShared := setVis("shared")
		out := msg("shared, carol out")
		want(remoteName, map[string]bool{out: false, setShared: false})
		join2 := remoteMember(carol, "join")
		want(remoteName, map[string]bool{out: true, setShared: true, join2: true, before: false, after: false})

		// Invited: from the invite on.
		setVis("invited")
		beforeInvite := msg("before erin's invite")
		invite := remoteMember(erin, "invite")
		invited := msg("erin is invited")
		want(other, map[string]bool{beforeInvite: false, invite: true, invited: true})

		// World readable: every server.
		setVis("world_readable")
		public := msg("for everyone")
		want("nobody.test", map[string]bool{public: true, invited: false})
		// Unknown IDs are left out.
		want(remoteName, map[string]bool{"$unknown": false})
	})
}
