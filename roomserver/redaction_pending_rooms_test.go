package roomserver

import (
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Requests of a room skip the pending-redaction query unless the room
// has pending redactions (pendingRooms): a redaction still waiting for
// its target when the roomserver restarts must still be applied when the
// target comes, and once the room has none left it is not looked at.
func TestPendingRedactionAcrossRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, rita := user("alice"), remoteUser("rita")
		r := newRemote(t)
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		env.joinRemote(r, roomID, rita)
		var roomNID int64
		if err := env.db.QueryRowContext(env.ctx, `SELECT room_nid FROM rs_rooms WHERE room_id = $1`, roomID).Scan(&roomNID); err != nil {
			t.Fatal(err)
		}
		if env.rs.fed.pendingRedactions.has(roomNID) {
			t.Fatal("a room without pending redactions is in the set")
		}
		d := env.dagOf(roomID)
		target := r.buildOn(d, d.prev, rita, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "plus tard"})
		redaction := r.buildOn(d, d.prev, rita, spec.MRoomRedaction, nil, map[string]string{"redacts": target.EventID()})
		wantStatus(t, env.input(roomID, InputKindNew, redaction), InputAccepted)
		if env.pendingRedactions(roomID) != 1 {
			t.Fatalf("%d pending redactions, want 1", env.pendingRedactions(roomID))
		}

		env.restart()
		if !env.rs.fed.pendingRedactions.has(roomNID) {
			t.Fatal("after a restart, the room's pending redaction is forgotten")
		}
		wantStatus(t, env.input(roomID, InputKindNew, target), InputAccepted)
		env.wantRedacted(alice, roomID, target.EventID(), redaction.EventID())
		if env.pendingRedactions(roomID) != 0 {
			t.Fatal("the pending redaction was not dropped")
		}
		if env.rs.fed.pendingRedactions.has(roomNID) {
			t.Fatal("the room stays in the set with no pending redaction left")
		}
	})
}
