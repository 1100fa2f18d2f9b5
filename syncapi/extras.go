package syncapi

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/chappe-matrix/chappe/roomserver"
)

// addExtras adds what is not a room event: global and per-room account
// data and the rooms' ephemeral events (receipts, typing); presence is a
// job of its own, run with the rooms' (buildSync). An initial sync, and a room the user just joined, get all of it; otherwise
// what changed in (since, now]. A joined room with nothing but these gets
// an entry with an empty timeline.
func (b *syncBuilder) addExtras(ctx context.Context) error {
	roomData, err := b.accountData(ctx)
	if err != nil {
		return err
	}
	receipts, err := b.receipts(ctx)
	if err != nil {
		return err
	}
	rf := &b.req.filter.Room
	for roomID := range b.joinedNow {
		var data, ephemeral []json.RawMessage
		if rf.AccountData.wantRoom(roomID) {
			data = roomData[roomID]
		}
		if rf.Ephemeral.wantRoom(roomID) {
			ephemeral = b.ephemeral(roomID, receipts[roomID])
		}
		if len(data) == 0 && len(ephemeral) == 0 {
			continue
		}
		room := b.resp.Rooms.Join[roomID]
		if room == nil {
			room = newJoinedRoom(timeline{Events: []roomserver.ClientEvent{}, PrevBatch: formatToken(b.now.Room)},
				stateBatch{Events: []roomserver.ClientEvent{}})
			b.resp.Rooms.Join[roomID] = room
		}
		room.AccountData.Events = append(room.AccountData.Events, data...)
		room.Ephemeral.Events = append(room.Ephemeral.Events, ephemeral...)
	}
	return nil
}

// sinceFor is where a room's extras start: 0 for a room sent from its
// start.
func (b *syncBuilder) sinceFor(roomID string) int64 {
	if b.req.initial || b.fresh[roomID] {
		return 0
	}
	return b.req.since.Stream
}

// accountData sets the global account data and returns the rooms' (as
// events, by room), filtered.
func (b *syncBuilder) accountData(ctx context.Context) (map[string][]json.RawMessage, error) {
	from := b.req.since.Stream
	if b.req.initial {
		from = 0
	}
	rows, err := b.api.store.accountDataChanges(ctx, b.userID, from, b.now.Stream)
	if err != nil {
		return nil, err
	}
	if from > 0 && len(b.fresh) > 0 {
		// Rooms joined since the token get their whole account data.
		older, err := b.api.store.accountDataChanges(ctx, b.userID, 0, from)
		if err != nil {
			return nil, err
		}
		rows = append(older, rows...)
	}
	gf, rf := &b.req.filter.AccountData, &b.req.filter.Room.AccountData
	byRoom := map[string][]json.RawMessage{}
	var global []json.RawMessage
	for _, r := range rows {
		ev, _ := json.Marshal(map[string]any{"type": r.Type, "content": r.Content})
		switch {
		case r.RoomID == "":
			if r.Pos > from && gf.matches(r.Type, "") {
				global = append(global, ev)
			}
		case r.Pos > b.sinceFor(r.RoomID) && b.joinedNow[r.RoomID] && rf.eventFilter.matches(r.Type, ""):
			byRoom[r.RoomID] = append(byRoom[r.RoomID], ev)
		}
	}
	b.resp.AccountData.Events = nonNil(global[:gf.limit(len(global))])
	for id, evs := range byRoom {
		byRoom[id] = evs[:rf.limit(len(evs))]
	}
	return byRoom, nil
}

// receipts reads the receipts to send, by room: every receipt of a room
// sent from its start, the changed ones of the others.
func (b *syncBuilder) receipts(ctx context.Context) (map[string][]receiptRow, error) {
	ef := &b.req.filter.Room.Ephemeral
	if !ef.eventFilter.matches("m.receipt", "") {
		return nil, nil
	}
	out := map[string][]receiptRow{}
	var whole []string
	for roomID := range b.joinedNow {
		if b.sinceFor(roomID) == 0 {
			whole = append(whole, roomID)
		}
	}
	if len(whole) < len(b.joinedNow) && b.now.Stream > b.req.since.Stream {
		rows, err := b.api.store.receiptChanges(ctx, b.req.since.Stream, b.now.Stream)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if b.joinedNow[r.RoomID] && b.sinceFor(r.RoomID) > 0 {
				out[r.RoomID] = append(out[r.RoomID], r)
			}
		}
	}
	var jobs []roomJob
	for _, roomID := range whole {
		jobs = append(jobs, func(ctx context.Context) error {
			rows, err := b.api.store.receiptsOfRoom(ctx, roomID, b.now.Stream)
			if err != nil {
				return err
			}
			b.mu.Lock()
			out[roomID] = rows
			b.mu.Unlock()
			return nil
		})
	}
	if err := runParallel(ctx, maxParallelRooms, jobs); err != nil {
		return nil, err
	}
	return out, nil
}

// ephemeral builds a room's m.receipt and m.typing events. Typing is sent
// when it changed since the token (as the list of who types now), and in
// full for a room sent from its start when someone types.
func (b *syncBuilder) ephemeral(roomID string, receipts []receiptRow) []json.RawMessage {
	ef := &b.req.filter.Room.Ephemeral
	var out []json.RawMessage
	if ev := receiptEvent(receipts, b.userID); ev != nil {
		out = append(out, ev)
	}
	if !ef.eventFilter.matches("m.typing", "") {
		return out
	}
	users, changed := b.api.notifier.typing.typers(roomID)
	fromStart := b.sinceFor(roomID) == 0
	if fromStart && len(users) > 0 || !fromStart && changed > b.req.since.Typing {
		ev, _ := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": nonNil(users)}})
		out = append(out, ev)
	}
	return out[:ef.limit(len(out))]
}

// presence adds the presence of the users who share a room with the
// syncing user (and their own): all of it in an initial sync, what changed
// otherwise. Nothing when presence is turned off. It runs beside the room
// jobs and is the only one to touch resp.Presence.
func (b *syncBuilder) presence(ctx context.Context) error {
	pf := &b.req.filter.Presence
	if !b.api.presenceEnabled || !pf.matches("m.presence", "") || pf.Limit != nil && *pf.Limit == 0 {
		return nil
	}
	var rows []presenceRow
	var err error
	if !b.req.initial {
		if b.now.Stream <= b.req.since.Stream {
			return nil
		}
		if rows, err = b.api.store.presenceChanges(ctx, b.req.since.Stream, b.now.Stream); err != nil || len(rows) == 0 {
			return err
		}
	}
	visible, err := b.roomMates(ctx)
	if err != nil {
		return err
	}
	if b.req.initial {
		users := make([]string, 0, len(visible))
		for u := range visible {
			users = append(users, u)
		}
		slices.Sort(users)
		if rows, err = b.api.store.presenceOf(ctx, users, b.now.Stream); err != nil {
			return err
		}
	}
	nowMS := time.Now().UnixMilli()
	for i := range rows {
		if visible[rows[i].UserID] && pf.matches("m.presence", rows[i].UserID) {
			b.resp.Presence.Events = append(b.resp.Presence.Events, presenceEvent(&rows[i], nowMS))
		}
	}
	b.resp.Presence.Events = b.resp.Presence.Events[:pf.limit(len(b.resp.Presence.Events))]
	return nil
}

// roomMates are the users joined to a room the syncing user is joined to,
// the user included. It reads every joined room, whatever the room filter.
func (b *syncBuilder) roomMates(ctx context.Context) (map[string]bool, error) {
	users, err := b.reader.RoomMates(ctx, b.userID)
	if err != nil {
		return nil, err
	}
	mates := make(map[string]bool, len(users)+1)
	mates[b.userID] = true
	for _, u := range users {
		mates[u] = true
	}
	return mates, nil
}
