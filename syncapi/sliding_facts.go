package syncapi

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// bumpTypes are the events that move a room up the list (MSC4186's
// "proper activity"): a member joining or a topic changing does not.
var bumpTypes = map[string]bool{
	"m.room.create": true, "m.room.message": true, "m.room.encrypted": true, "m.sticker": true,
	"m.call.invite": true, "m.poll.start": true, "m.beacon_info": true,
}

// Bounds of the scan for a room's latest bump event: a room whose last
// thousand events are all state (a mass join) falls back to the user's
// membership position.
const (
	bumpScanPage  = 100
	bumpScanLimit = 1000
	// factsCacheRooms bounds the cache; past it, it starts over.
	factsCacheRooms = 100_000
)

// roomFacts are what the room list needs of a room and what is costly to
// read again on every request: the latest bump event, up to the position
// scanned, and the room type (from the create event, which never changes).
type roomFacts struct {
	upTo      int64
	bump      int64
	last      int64 // the latest event up to upTo (0: none seen)
	typeKnown bool
	roomType  string // "" for none
}

// factsCache keeps roomFacts per process. It is derived from the
// database only, so processes never disagree, and it is brought up to
// date on each read by reading the events after upTo (none, mostly: one
// indexed query).
type factsCache struct {
	reader roomserver.EventReader
	mu     sync.Mutex
	rooms  map[string]roomFacts
}

func newFactsCache(reader roomserver.EventReader) *factsCache {
	return &factsCache{reader: reader, rooms: map[string]roomFacts{}}
}

func (c *factsCache) get(roomID string) roomFacts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[roomID]
}

func (c *factsCache) put(roomID string, f roomFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rooms) >= factsCacheRooms {
		c.rooms = map[string]roomFacts{}
	}
	// A concurrent request may have scanned further.
	if old, ok := c.rooms[roomID]; ok && old.upTo > f.upTo {
		if f.typeKnown && !old.typeKnown {
			old.typeKnown, old.roomType = true, f.roomType
			c.rooms[roomID] = old
		}
		return
	}
	c.rooms[roomID] = f
}

// bump is the position of roomID's latest bump event up to now (0 when
// none was found within the scan bound).
func (c *factsCache) bump(ctx context.Context, roomID string, now int64) (int64, error) {
	f := c.get(roomID)
	if f.upTo >= now {
		return f.bump, nil
	}
	upper, scanned := now, 0
	found := int64(0)
	for found == 0 && scanned < bumpScanLimit {
		evs, err := c.reader.Events(ctx, roomID, f.upTo, upper, bumpScanPage, true)
		if err != nil {
			return 0, err
		}
		if upper == now && len(evs) > 0 {
			f.last = max(f.last, evs[0].Pos)
		}
		for _, ev := range evs {
			if bumpTypes[ev.Event.Type] {
				found = ev.Pos
				break
			}
		}
		scanned += len(evs)
		if len(evs) < bumpScanPage {
			break
		}
		upper = evs[len(evs)-1].Pos - 1
	}
	if found > 0 {
		f.bump = found
	}
	f.upTo = now
	c.put(roomID, f)
	return f.bump, nil
}

// activeSince says whether roomID may have events with from < pos <= now:
// false only when the facts, brought up to now, know it has none.
func (c *factsCache) activeSince(ctx context.Context, roomID string, from, now int64) (bool, error) {
	if _, err := c.bump(ctx, roomID, now); err != nil {
		return false, err
	}
	f := c.get(roomID)
	return f.upTo < now || f.last > from, nil
}

// roomType is the type in roomID's create event ("" for none).
func (c *factsCache) roomType(ctx context.Context, roomID string, now int64) (string, error) {
	if f := c.get(roomID); f.typeKnown {
		return f.roomType, nil
	}
	// A room's first event is its create event: one row, where the whole
	// state of a big room would be hundreds.
	state, err := c.reader.Events(ctx, roomID, 0, now, 1, false)
	if err != nil {
		return "", err
	}
	if len(state) == 0 || state[0].Event.Type != "m.room.create" {
		if state, err = c.stateOf(ctx, roomID, now); err != nil {
			return "", err
		}
	}
	typ := ""
	for _, se := range state {
		if ev := se.Event; ev.Type == "m.room.create" {
			var content struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(ev.Content, &content) // a bad create event has no type
			typ = content.Type
		}
	}
	c.mu.Lock()
	f := c.rooms[roomID]
	f.typeKnown, f.roomType = true, typ
	c.rooms[roomID] = f
	c.mu.Unlock()
	return typ, nil
}

// stateOf is a room's state as stream events (only Event is set).
func (c *factsCache) stateOf(ctx context.Context, roomID string, now int64) ([]roomserver.StreamEvent, error) {
	state, err := c.reader.StateAt(ctx, roomID, now)
	if err != nil {
		return nil, err
	}
	out := make([]roomserver.StreamEvent, len(state))
	for i, ev := range state {
		out[i].Event = ev
	}
	return out, nil
}
