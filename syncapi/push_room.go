package syncapi

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// pushRoom is what the rules and the gateway requests ask about the room
// of one event. The state is read once, and only when needed: most events
// are decided on their type and content and the member count alone.
type pushRoom struct {
	api     *SyncAPI
	roomID  string
	pos     int64
	members int

	once  sync.Once
	state []roomserver.ClientEvent
}

var _ pushContext = (*pushRoom)(nil)

func (r *pushRoom) loadState() []roomserver.ClientEvent {
	r.once.Do(func() {
		st, err := r.api.reader.StateBefore(context.Background(), r.roomID, r.pos)
		if err != nil {
			r.api.log.Warn("push: room state unreadable", "room", r.roomID, "err", err)
		}
		r.state = st
	})
	return r.state
}

func (r *pushRoom) stateContent(typ, stateKey string) json.RawMessage {
	for _, ev := range r.loadState() {
		if ev.Type == typ && ev.StateKey != nil && *ev.StateKey == stateKey {
			return ev.Content
		}
	}
	return nil
}

func (r *pushRoom) memberCount() int { return r.members }

// displayName is userID's display name in the room ("" if none).
func (r *pushRoom) displayName(userID string) string {
	var c struct {
		DisplayName string `json:"displayname"`
	}
	_ = json.Unmarshal(r.stateContent("m.room.member", userID), &c)
	return c.DisplayName
}

// senderPowerAtLeast compares the sender's power level with the one the
// power levels' notifications section requires for key (50 by default).
// In room versions with privileged creators (12), the creators' power is
// above any level.
func (r *pushRoom) senderPowerAtLeast(sender, key string) bool {
	var pl struct {
		Users         map[string]json.Number `json:"users"`
		UsersDefault  json.Number            `json:"users_default"`
		Notifications map[string]json.Number `json:"notifications"`
	}
	plRaw := r.stateContent("m.room.power_levels", "")
	if plRaw != nil {
		_ = json.Unmarshal(plRaw, &pl)
	}
	creator := ""
	var create struct {
		RoomVersion        string   `json:"room_version"`
		AdditionalCreators []string `json:"additional_creators"`
	}
	for _, ev := range r.loadState() {
		if ev.Type == "m.room.create" && ev.StateKey != nil && *ev.StateKey == "" {
			creator = ev.Sender
			_ = json.Unmarshal(ev.Content, &create)
		}
	}
	if privilegedCreators(create.RoomVersion) && (sender == creator || slices.Contains(create.AdditionalCreators, sender)) {
		return true
	}
	level := int64(0)
	switch n, listed := pl.Users[sender]; {
	case plRaw == nil && sender == creator:
		level = 100 // no power levels yet: the creator has 100
	case listed:
		level = numberOr(n, 0)
	default:
		level = numberOr(pl.UsersDefault, 0)
	}
	return level >= numberOr(pl.Notifications[key], 50)
}

// privilegedCreators says whether a room version gives its creators
// infinite power (room version 12 and its unstable name).
func privilegedCreators(version string) bool {
	return version == "12" || version == "org.matrix.hydra.11"
}

func numberOr(n json.Number, def int64) int64 {
	if n == "" {
		return def
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil && !math.IsNaN(f) {
		return int64(f)
	}
	return def
}
