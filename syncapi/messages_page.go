package syncapi

import (
	"context"

	"github.com/chappe-matrix/chappe/roomserver"
)

// maxMessagesScan bounds the events one /messages request reads to find
// those the user may see: past it, the chunk comes back short with an end
// token after what was read, and the client goes on from there (a room
// with "joined" history hides everything before its members' joins).
const maxMessagesScan = 1000

// messagesPage is what /messages returns of the room's events.
type messagesPage struct {
	events []roomserver.StreamEvent
	end    string // "" when the range was read to its end
}

// readPage reads up to mr.limit events of (lo, hi] in mr's direction that
// the user may see. It reads in rounds, each asking for one event more
// than it still needs (which tells whether there is more), and leaves out
// what history visibility hides. Backwards, a round that reaches an event
// whose older history this server does not have (a room joined over
// federation, a hole /send left in the middle, see HistoryGaps) first
// asks the federation for that history, which the roomserver places below
// the event, and reads again: the events come in the DAG's order with the
// same tokens. upper is the last position the user may read.
func (s *SyncAPI) readPage(ctx context.Context, mr *messagesRequest, userID string, lo, hi, upper int64, peeking bool) (*messagesPage, error) {
	hr, _ := s.reader.(roomserver.HistoryReader)
	endAfter := func(pos int64) string {
		if mr.backwards {
			return formatToken(pos - 1)
		}
		return formatToken(pos)
	}
	var kept []roomserver.StreamEvent
	from, to := lo, hi // what is left to read: (from, to]
	scanned, backfills := 0, 0
	for {
		want := mr.limit + 1 - len(kept)
		raw, err := s.reader.Events(ctx, mr.roomID, from, to, want, mr.backwards)
		if err != nil {
			return nil, err
		}
		if hr != nil && mr.backwards && mr.to == nil && backfills < maxBackfillRounds {
			gaps, left, err := s.gapsReached(ctx, hr, mr.roomID, raw, len(raw) == want, to, upper)
			if err != nil {
				return nil, err
			}
			if len(gaps) > 0 {
				backfills++
				if s.backfill(ctx, mr.roomID, gaps, backfillLimit(want, len(gaps), left)) {
					continue // read the same range again, backfilled
				}
			}
		}
		visible, err := s.visibleOnly(ctx, hr, mr.roomID, userID, raw, peeking, mr.backwards)
		if err != nil {
			return nil, err
		}
		kept = append(kept, visible...)
		if len(kept) > mr.limit {
			kept = kept[:mr.limit]
			return &messagesPage{events: kept, end: endAfter(kept[len(kept)-1].Pos)}, nil
		}
		if len(raw) < want {
			return &messagesPage{events: kept}, nil
		}
		last := raw[len(raw)-1].Pos
		if mr.backwards {
			to = last - 1
		} else {
			from = last
		}
		if scanned += len(raw); scanned >= maxMessagesScan {
			return &messagesPage{events: kept, end: endAfter(last)}, nil
		}
	}
}

// visibleOnly keeps the events (in either order) the user may see: for a
// user peeking into a world-readable room, those whose state had it so;
// for others, as the room's history visibility lets them.
func (s *SyncAPI) visibleOnly(ctx context.Context, hr roomserver.HistoryReader, roomID, userID string, evs []roomserver.StreamEvent, peeking, descending bool) ([]roomserver.StreamEvent, error) {
	switch {
	case peeking:
		return s.worldReadableInOrder(ctx, roomID, evs, descending)
	case hr == nil:
		return evs, nil
	}
	return hr.VisibleEvents(ctx, roomID, userID, evs)
}

// gapsReached lists the history gaps that a backwards read of (…, to]
// went past and backfill can fill, and the fewest events one of them has
// room for: the events read (raw, newest first) that have older ones read
// below them, or all of them when the read came back short (full: it did
// not); when none was read, the event just above to (the page before
// ended at it, and what comes before it is not stored yet). The lowest
// of a full read is left to the next page, which may not come.
func (s *SyncAPI) gapsReached(ctx context.Context, hr roomserver.HistoryReader, roomID string, raw []roomserver.StreamEvent, full bool, to, upper int64) ([]string, int64, error) {
	low, high := int64(0), to
	if len(raw) > 0 {
		low = raw[len(raw)-1].Pos
		if full {
			low++
		}
	} else {
		above, err := s.reader.Events(ctx, roomID, to, upper, 1, false)
		if err != nil || len(above) == 0 {
			return nil, 0, err
		}
		low, high = above[0].Pos, above[0].Pos
	}
	gaps, err := hr.HistoryGaps(ctx, roomID, low, high)
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	var left int64
	for _, g := range gaps {
		if g.Left > 0 && len(ids) < backfillFrom {
			ids = append(ids, g.EventID)
			if left == 0 || g.Left < left {
				left = g.Left
			}
		}
	}
	return ids, left, nil
}
