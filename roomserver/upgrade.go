package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Room upgrades: a new room whose create event names its predecessor,
// the old room's state carried over, the local aliases moved, a tombstone
// in the old room and, there, the power to speak restricted.

// notCarried are the state events an upgrade does not copy: the room's
// identity and membership, what the upgrade writes itself, and what points
// at events of the old room.
var notCarried = []string{
	spec.MRoomCreate, spec.MRoomMember, spec.MRoomPowerLevels, "m.room.tombstone",
	spec.MRoomThirdPartyInvite, "m.room.pinned_events",
}

// oldRoom is what the upgrade reads from the room it replaces.
type oldRoom struct {
	lastEventID string
	create      map[string]any
	pl          gomatrixserverlib.PowerLevelContent
	senderLevel int64
	member      memberContent
	state       []StateEvent // carried over, sorted by (type, state_key)
	joinRule    string
}

func (rs *Roomserver) upgradeRoom(ctx context.Context, req *UpgradeRoomRequest) (*UpgradeRoomResponse, error) {
	if err := checkUserID("sender", req.Sender); err != nil {
		return nil, err
	}
	version, err := rs.roomVersion(req.NewVersion)
	if err != nil {
		return nil, err
	}
	room, err := rs.roomFor(ctx, req.RoomID, req.Sender)
	if err != nil {
		return nil, err
	}
	res, err := rs.queue.submit(ctx, room.id, func(b *batch) (any, error) { return readForUpgrade(b, req.Sender) })
	if err != nil {
		return nil, err
	}
	old := res.(*oldRoom)
	create, err := rs.createRoom(ctx, upgradeCreateRequest(req, room, version, old))
	if err != nil {
		return nil, fmt.Errorf("create the replacement room: %w", err)
	}
	newID := create.RoomID
	if _, err := rs.db.ExecContext(ctx, `UPDATE rs_aliases SET room_id = $1 WHERE room_id = $2`, newID, room.id); err != nil {
		return nil, fmt.Errorf("move aliases to %s: %w", newID, err)
	}
	if _, err := rs.queue.submit(ctx, room.id, func(b *batch) (any, error) {
		return nil, retireRoom(b, req.Sender, newID, old)
	}); err != nil {
		return nil, err
	}
	published, err := rs.isPublished(ctx, room.id)
	if err != nil {
		return nil, err
	}
	if published {
		if err := rs.setPublished(ctx, newID, true); err != nil {
			return nil, err
		}
		if err := rs.setPublished(ctx, room.id, false); err != nil {
			return nil, err
		}
	}
	rs.log.Info("room upgraded", "room_id", room.id, "replacement", newID, "version", req.NewVersion)
	return &UpgradeRoomResponse{ReplacementRoom: newID}, nil
}

// readForUpgrade checks the sender may tombstone the room and reads what
// the new room takes over. It adds no event.
func readForUpgrade(b *batch, sender string) (*oldRoom, error) {
	m, memberEv, err := b.membership(sender)
	if err != nil {
		return nil, err
	}
	if m != spec.Join {
		return nil, mxerr.Forbidden("%s is not in the room", sender)
	}
	level, pl, err := b.userLevel(sender)
	if err != nil {
		return nil, err
	}
	if need := pl.EventLevel("m.room.tombstone", true); level < need {
		return nil, mxerr.Forbidden("upgrading the room needs power level %d, %s has %d", need, sender, level)
	}
	old := &oldRoom{pl: pl, senderLevel: level, create: map[string]any{}}
	if len(b.extremities) > 0 {
		old.lastEventID = b.extremities[0]
	}
	_ = json.Unmarshal(memberEv.Content(), &old.member)
	keys := slices.Collect(maps.Keys(b.head.state))
	keys = append(keys, slices.Collect(maps.Keys(b.overlay))...)
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Type != keys[j].Type {
			return keys[i].Type < keys[j].Type
		}
		return keys[i].StateKey < keys[j].StateKey
	})
	for _, k := range slices.Compact(keys) {
		ev, err := b.stateEvent(k)
		if err != nil {
			return nil, err
		}
		if ev == nil {
			continue
		}
		switch {
		case k.Type == spec.MRoomCreate:
			_ = json.Unmarshal(ev.Content(), &old.create)
		case slices.Contains(notCarried, k.Type):
		case string(ev.Content()) == "{}":
			// An emptied state event (a removed space child) says nothing.
		default:
			if k.Type == spec.MRoomJoinRules {
				var jr gomatrixserverlib.JoinRuleContent
				_ = json.Unmarshal(ev.Content(), &jr)
				old.joinRule = jr.JoinRule
			}
			old.state = append(old.state, StateEvent{Type: k.Type, StateKey: k.StateKey, Content: json.RawMessage(ev.Content())})
		}
	}
	return old, nil
}

// upgradeCreateRequest is the replacement room's creation: the old room's
// type and federation flag, its state, and its power levels adjusted to
// the new version. In room version 12 the creators' power is implied, so
// they are taken out of users; coming from version 12, the upgrader gets
// level 100. If the upgrader's level is below what sending the carried
// state needs, it is raised for the creation and restored by a last power
// levels event.
func upgradeCreateRequest(req *UpgradeRoomRequest, room roomInfo, version gomatrixserverlib.IRoomVersion, old *oldRoom) *CreateRoomRequest {
	creation := map[string]any{"predecessor": map[string]any{"room_id": room.id, "event_id": old.lastEventID}}
	for _, k := range []string{"type", "m.federate"} {
		if v, ok := old.create[k]; ok {
			creation[k] = v
		}
	}
	if version.PrivilegedCreators() {
		if v, ok := old.create["additional_creators"]; ok {
			creation["additional_creators"] = v
		}
	}
	pl := old.pl
	pl.Users = maps.Clone(pl.Users)
	if pl.Users == nil {
		pl.Users = map[string]int64{}
	}
	initial := slices.Clone(old.state)
	if version.PrivilegedCreators() {
		delete(pl.Users, req.Sender)
		if extra, ok := creation["additional_creators"].([]any); ok {
			for _, u := range extra {
				if s, ok := u.(string); ok {
					delete(pl.Users, s)
				}
			}
		}
	} else {
		level := min(old.senderLevel, 100) // a version 12 creator becomes 100
		pl.Users[req.Sender] = level
		need := pl.StateDefault
		for _, l := range pl.Events {
			need = max(need, l)
		}
		if need > level {
			final := pl
			final.Users = maps.Clone(pl.Users)
			pl.Users = maps.Clone(pl.Users)
			pl.Users[req.Sender] = need
			initial = append(initial, StateEvent{Type: spec.MRoomPowerLevels, Content: plJSON(final)})
		}
	}
	preset := presetPrivate
	if old.joinRule == spec.Public {
		preset = presetPublic
	}
	return &CreateRoomRequest{
		Sender:                    req.Sender,
		SenderDisplayName:         old.member.DisplayName,
		SenderAvatarURL:           old.member.AvatarURL,
		RoomVersion:               req.NewVersion,
		Preset:                    preset,
		CreationContent:           mustJSON(creation),
		InitialState:              initial,
		PowerLevelContentOverride: plJSON(pl),
	}
}

// retireRoom ends the old room: the tombstone (which the upgrader may
// send: readForUpgrade checked), then, as far as the upgrader's power
// allows, the canonical alias cleared (the aliases moved) and the power
// to speak and invite raised to max(50, users_default+1), as the spec
// recommends.
func retireRoom(b *batch, sender, newRoomID string, old *oldRoom) error {
	empty := ""
	p, err := b.build(eventSpec{Type: "m.room.tombstone", StateKey: &empty, Sender: sender, Content: mustJSON(map[string]string{
		"body": "This room has been replaced", "replacement_room": newRoomID,
	})})
	if err != nil {
		return err
	}
	b.add(p)
	if ev, err := b.stateEvent(stateKey{spec.MRoomCanonicalAlias, ""}); err == nil && ev != nil && string(ev.Content()) != "{}" {
		if p, err := b.build(eventSpec{Type: spec.MRoomCanonicalAlias, StateKey: &empty, Sender: sender, Content: json.RawMessage(`{}`)}); err == nil {
			b.add(p)
		}
	}
	restricted := max(50, old.pl.UsersDefault+1)
	if old.pl.EventsDefault < restricted || old.pl.Invite < restricted {
		pl := old.pl
		pl.EventsDefault = max(pl.EventsDefault, restricted)
		pl.Invite = max(pl.Invite, restricted)
		if p, err := b.build(eventSpec{Type: spec.MRoomPowerLevels, StateKey: &empty, Sender: sender, Content: plJSON(pl)}); err == nil {
			b.add(p)
		}
	}
	return nil
}

// plJSON encodes power levels with empty maps rather than nulls.
func plJSON(pl gomatrixserverlib.PowerLevelContent) json.RawMessage {
	if pl.Users == nil {
		pl.Users = map[string]int64{}
	}
	if pl.Events == nil {
		pl.Events = map[string]int64{}
	}
	if pl.Notifications == nil {
		pl.Notifications = map[string]int64{}
	}
	return mustJSON(pl)
}
