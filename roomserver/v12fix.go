package roomserver

import (
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// The pinned gomatrixserverlib checks the notification levels of an
// m.room.power_levels event, in room versions with privileged creators
// (12), with the sender's level read from the old power levels' users map
// alone. Creators are never listed there in those versions, so a creator,
// whose level is infinite, is treated as users_default (0) and cannot
// change "notifications" at all (spec, room version 12, auth rules 10.7
// and 10.8, "the sender's current power level").
//
// gomatrixserverlib.Allowed looks the room version up in its registry, so
// the fix wraps the registered version and replaces CheckPowerLevelEvent
// with a creator-aware copy. It is installed once per process, before
// any event is authorised.
func init() {
	var toFix []gomatrixserverlib.IRoomVersion
	for _, impl := range gomatrixserverlib.RoomVersions() {
		if _, done := impl.(privilegedCreatorsFix); impl.PrivilegedCreators() && !done {
			toFix = append(toFix, impl)
		}
	}
	for _, impl := range toFix {
		gomatrixserverlib.SetRoomVersion(privilegedCreatorsFix{impl})
	}
}

type privilegedCreatorsFix struct {
	gomatrixserverlib.IRoomVersion
}

// CheckPowerLevelEvent runs the checks the library delegates to the room
// version for power level events: creators may not appear in users (rule
// 10.4), and notification levels may only move within the sender's
// level (rules 10.7 and 10.8), a creator's level being infinite.
func (v privilegedCreatorsFix) CheckPowerLevelEvent(sender string, createEvent gomatrixserverlib.PDU, oldPL, newPL gomatrixserverlib.PowerLevelContent) error {
	if createEvent == nil {
		return &gomatrixserverlib.NotAllowed{Message: "power levels event without a create event"}
	}
	creators := gomatrixserverlib.CreatorsFromCreateEvent(createEvent)
	for userID := range newPL.Users {
		if slices.Contains(creators, userID) {
			return &gomatrixserverlib.NotAllowed{Message: fmt.Sprintf("power levels must not list the room creator %s", userID)}
		}
	}
	senderLevel := oldPL.UserLevel(spec.SenderID(sender))
	if slices.Contains(creators, sender) {
		senderLevel = gomatrixserverlib.CreatorPowerLevel
	}
	keys := map[string]bool{}
	for k := range newPL.Notifications {
		keys[k] = true
	}
	for k := range oldPL.Notifications {
		keys[k] = true
	}
	for k := range keys {
		oldLevel, newLevel := oldPL.NotificationLevel(k), newPL.NotificationLevel(k)
		if oldLevel == newLevel {
			continue
		}
		if oldLevel > senderLevel || newLevel > senderLevel {
			return &gomatrixserverlib.NotAllowed{Message: fmt.Sprintf(
				"sender with level %d may not change notification level %q from %d to %d", senderLevel, k, oldLevel, newLevel)}
		}
	}
	return nil
}
