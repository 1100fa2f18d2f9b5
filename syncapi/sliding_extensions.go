package syncapi

import (
	"context"
	"encoding/json"

	"github.com/chappe-matrix/chappe/roomserver"
)

// slidingExtensionsResponse holds the extensions that have something to
// say; one with nothing is left out, so that a long-poll keeps waiting.
type slidingExtensionsResponse struct {
	AccountData *slidingAccountData `json:"account_data,omitempty"`
	Receipts    *slidingRoomEvents  `json:"receipts,omitempty"`
	Typing      *slidingRoomEvents  `json:"typing,omitempty"`
	// to_device and e2ee are sent whenever enabled (next_batch and the key
	// counts are always wanted); only their messages and device-list
	// changes count as news (sliding_e2ee.go).
	ToDevice *slidingToDevice `json:"to_device,omitempty"`
	E2EE     *slidingE2EE     `json:"e2ee,omitempty"`
}

type slidingAccountData struct {
	Global []json.RawMessage            `json:"global"`
	Rooms  map[string][]json.RawMessage `json:"rooms"`
}

// slidingRoomEvents is one ephemeral event per room.
type slidingRoomEvents struct {
	Rooms map[string]json.RawMessage `json:"rooms"`
}

func (x *slidingExtensionsResponse) empty() bool {
	return x.AccountData == nil && x.Receipts == nil && x.Typing == nil &&
		(x.ToDevice == nil || len(x.ToDevice.Events) == 0) &&
		(x.E2EE == nil || x.E2EE.DeviceLists == nil || len(x.E2EE.DeviceLists.Changed)+len(x.E2EE.DeviceLists.Left) == 0)
}

// extensions fills the extensions asked for. They cover the rooms of the
// lists' windows and the subscriptions (narrowed by each extension's
// lists and rooms): what changed since the pos, and everything for the
// rooms this response sends from their start. They reuse /sync's storage.
func (sb *slidingBuilder) extensions(ctx context.Context, configs map[string]*slidingRoomConfig, matched map[string][]string, byID map[string]*slidingEntry) error {
	x := &sb.req.Extensions
	covered := func(ext *slidingExtension, joinedOnly bool) map[string]bool {
		out := map[string]bool{}
		for roomID := range configs {
			e := byID[roomID]
			if joinedOnly && e.membership != roomserver.MembershipJoin {
				continue
			}
			if ext.covers(roomID, matched[roomID], sb.req.Subs[roomID] != nil) {
				out[roomID] = true
			}
		}
		return out
	}
	if x.AccountData.on() {
		if err := sb.accountDataExtension(ctx, covered(x.AccountData, false)); err != nil {
			return err
		}
	}
	if x.Receipts.on() {
		if err := sb.receiptsExtension(ctx, covered(x.Receipts, true)); err != nil {
			return err
		}
	}
	if x.Typing.on() {
		sb.typingExtension(covered(x.Typing, true))
	}
	if x.ToDevice.on() {
		if err := sb.toDeviceExtension(ctx); err != nil {
			return err
		}
	}
	if x.E2EE.on() {
		if err := sb.e2eeExtension(ctx, byID); err != nil {
			return err
		}
	} else {
		sb.holdDeviceLists()
	}
	return nil
}

// fromStart says whether a room's extension data is sent in full.
func (sb *slidingBuilder) fromStart(roomID string) bool {
	return sb.initial || sb.fresh[roomID]
}

func (sb *slidingBuilder) accountDataExtension(ctx context.Context, rooms map[string]bool) error {
	from := sb.since.Stream
	if sb.initial || len(sb.fresh) > 0 {
		from = 0
	}
	rows, err := sb.api.store.accountDataChanges(ctx, sb.userID, from, sb.now.Stream)
	if err != nil {
		return err
	}
	out := &slidingAccountData{Global: []json.RawMessage{}, Rooms: map[string][]json.RawMessage{}}
	n := 0
	for _, r := range rows {
		ev, _ := json.Marshal(map[string]any{"type": r.Type, "content": r.Content})
		switch {
		case r.RoomID == "":
			if sb.initial || r.Pos > sb.since.Stream {
				out.Global = append(out.Global, ev)
				n++
			}
		case rooms[r.RoomID] && (sb.fromStart(r.RoomID) || r.Pos > sb.since.Stream):
			out.Rooms[r.RoomID] = append(out.Rooms[r.RoomID], ev)
			n++
		}
	}
	if n > 0 {
		sb.resp.Extensions.AccountData = out
	}
	return nil
}

// receiptsExtension sends, for a room sent from its start, the receipts
// on the events of its timeline and the user's own; for the others, the
// receipts that changed since the pos.
func (sb *slidingBuilder) receiptsExtension(ctx context.Context, rooms map[string]bool) error {
	byRoom := map[string][]receiptRow{}
	var whole []string
	for roomID := range rooms {
		if sb.fromStart(roomID) {
			whole = append(whole, roomID)
		}
	}
	if len(whole) < len(rooms) && sb.now.Stream > sb.since.Stream {
		rows, err := sb.api.store.receiptChanges(ctx, sb.since.Stream, sb.now.Stream)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if rooms[r.RoomID] && !sb.fromStart(r.RoomID) {
				byRoom[r.RoomID] = append(byRoom[r.RoomID], r)
			}
		}
	}
	var jobs []roomJob
	for _, roomID := range whole {
		jobs = append(jobs, func(ctx context.Context) error {
			rows, err := sb.api.store.receiptsOfRoom(ctx, roomID, sb.now.Stream)
			if err != nil {
				return err
			}
			sb.mu.Lock()
			defer sb.mu.Unlock()
			shown := map[string]bool{}
			for _, id := range sb.sent[roomID] {
				shown[id] = true
			}
			for _, r := range rows {
				if shown[r.EventID] || r.UserID == sb.userID {
					byRoom[roomID] = append(byRoom[roomID], r)
				}
			}
			return nil
		})
	}
	if err := runParallel(ctx, maxParallelRooms, jobs); err != nil {
		return err
	}
	out := &slidingRoomEvents{Rooms: map[string]json.RawMessage{}}
	for roomID, rows := range byRoom {
		if ev := receiptEvent(rows, sb.userID); ev != nil {
			out.Rooms[roomID] = ev
		}
	}
	if len(out.Rooms) > 0 {
		sb.resp.Extensions.Receipts = out
	}
	return nil
}

// typingExtension sends who types in the rooms where it changed since the
// pos, and in the rooms sent from their start where someone types.
func (sb *slidingBuilder) typingExtension(rooms map[string]bool) {
	out := &slidingRoomEvents{Rooms: map[string]json.RawMessage{}}
	for roomID := range rooms {
		users, changed := sb.api.notifier.typing.typers(roomID)
		start := sb.fromStart(roomID)
		if start && len(users) > 0 || !start && changed > sb.since.Typing {
			ev, _ := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": nonNil(users)}})
			out.Rooms[roomID] = ev
		}
	}
	if len(out.Rooms) > 0 {
		sb.resp.Extensions.Typing = out
	}
}
