package roomserver

import (
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
)

// In room version 12 a creator's power is infinite, so they may change
// notification levels; the library alone refuses (see v12fix.go).
func TestV12CreatorsChangeNotificationLevels(t *testing.T) {
	if _, ok := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV12).(privilegedCreatorsFix); !ok {
		t.Fatal("the room version 12 fix is not installed")
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob := user("alice"), user("bob")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: "12", Preset: presetPublic})
		env.mustMember(bob, roomID, bob, MembershipJoin)
		pl := map[string]any{
			"users":         map[string]int{bob: 50},
			"notifications": map[string]int{"room": 100},
			"events":        map[string]int{"m.room.power_levels": 100, "m.room.tombstone": 150},
		}
		if _, err := env.sendState(alice, roomID, "m.room.power_levels", "", pl); err != nil {
			t.Fatalf("creator cannot change notification levels: %v", err)
		}
		// bob (50) may not lower a level above his own.
		pl["notifications"] = map[string]int{"room": 0}
		_, err := env.sendState(bob, roomID, "m.room.power_levels", "", pl)
		wantCode(t, err, "M_FORBIDDEN")
		// Creators may not be listed.
		pl["users"] = map[string]int{bob: 50, alice: 100}
		pl["notifications"] = map[string]int{"room": 100}
		_, err = env.sendState(alice, roomID, "m.room.power_levels", "", pl)
		wantCode(t, err, "M_FORBIDDEN")
		// Creators outrank everyone: bob cannot kick alice, alice can kick bob.
		_, err = env.member(bob, roomID, alice, MembershipLeave)
		wantCode(t, err, "M_FORBIDDEN")
		env.mustMember(alice, roomID, bob, MembershipLeave)
	})
}
