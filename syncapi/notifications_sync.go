package syncapi

import (
	"context"
	"encoding/json"
	"time"
)

// unreadNotifications is a room's (or thread's) unread_notifications.
type unreadNotifications struct {
	NotificationCount int64 `json:"notification_count"`
	HighlightCount    int64 `json:"highlight_count"`
}

// pushCatchUpWait bounds how long a sync waits for the push consumer to
// count the events it is about to return: the spec wants an event and the
// counts it changes in the same response, and the consumer is usually a
// few milliseconds behind. Past the bound the counts lag by one sync.
// When the consumer is far behind (a burst of activity, a restart), a
// sync does not wait at all: its latency matters more than exact counts.
const (
	pushCatchUpWait   = 100 * time.Millisecond
	pushCatchUpEvents = 50
)

// addPushData sets the unread counts of every joined room in the response
// and, in an initial sync, the default m.push_rules of a user who never
// changed them (clients expect it in account_data).
func (b *syncBuilder) addPushData(ctx context.Context) error {
	s := b.api
	if s.push == nil {
		return nil
	}
	if b.req.initial && b.req.filter.AccountData.matches(pushRulesType, "") {
		if err := b.addDefaultPushRules(ctx); err != nil {
			return err
		}
	}
	if len(b.resp.Rooms.Join) == 0 {
		return nil
	}
	s.waitPushed(ctx, b.now.Room)
	counts, err := s.store.unreadCounts(ctx, b.userID, "", b.now.Room)
	if err != nil {
		return err
	}
	threaded := b.req.filter.Room.Timeline.UnreadThreadNotifications
	for _, c := range counts {
		room := b.resp.Rooms.Join[c.RoomID]
		if room == nil {
			continue
		}
		if threaded && c.ThreadID != threadMain {
			if room.UnreadThreadNotifications == nil {
				room.UnreadThreadNotifications = map[string]unreadNotifications{}
			}
			room.UnreadThreadNotifications[c.ThreadID] = unreadNotifications{NotificationCount: c.Notify, HighlightCount: c.Highlight}
			continue
		}
		room.UnreadNotifications.NotificationCount += c.Notify
		room.UnreadNotifications.HighlightCount += c.Highlight
	}
	return nil
}

func (b *syncBuilder) addDefaultPushRules(ctx context.Context) error {
	for _, ev := range b.resp.AccountData.Events {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(ev, &head) == nil && head.Type == pushRulesType {
			return nil
		}
	}
	raw, err := b.api.store.accountData(ctx, b.userID, "", pushRulesType)
	if err != nil || raw != nil {
		// Stored but left out (by the filter's limit): not ours to add.
		return err
	}
	ev, err := json.Marshal(map[string]any{"type": pushRulesType, "content": pushRulesContent{Global: defaultRuleset(b.userID)}})
	if err != nil {
		return err
	}
	b.resp.AccountData.Events = append(b.resp.AccountData.Events, ev)
	return nil
}

// waitPushed waits, at most pushCatchUpWait, until the push consumer (of
// this process or another) has handled the events up to pos.
func (s *SyncAPI) waitPushed(ctx context.Context, pos int64) {
	if pos-s.push.processed.Load() > pushCatchUpEvents {
		return
	}
	deadline := time.Now().Add(pushCatchUpWait)
	for s.push.processed.Load() < pos {
		done, err := s.store.pushedPos(ctx)
		if err == nil && done >= pos {
			return
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// receiptScanLimit bounds how far back a receipt's event is looked for to
// find its position: receipts are sent for recent events; one for an
// older event would not move the read position anyway in practice.
const receiptScanLimit = 2000

// markReadReceipt moves the user's read position to a receipt's event, so
// that counts restart after it. An unthreaded receipt covers every
// thread; a threaded one its thread only ("main" included).
func (s *SyncAPI) markReadReceipt(ctx context.Context, roomID, userID, typ, threadID, eventID string) error {
	if s.push == nil || typ != receiptRead && typ != receiptReadPrivate {
		return nil
	}
	pos, err := s.eventPos(ctx, roomID, eventID)
	if err != nil || pos == 0 {
		return err
	}
	return markReadTx(ctx, s.store.db, userID, roomID, threadID, pos)
}

// eventPos finds the stream position of a recent event of the room (0
// when it is not among the latest receiptScanLimit events).
func (s *SyncAPI) eventPos(ctx context.Context, roomID, eventID string) (int64, error) {
	upper, err := s.reader.MaxPos(ctx)
	if err != nil {
		return 0, err
	}
	for scanned := 0; scanned < receiptScanLimit; {
		evs, err := s.reader.Events(ctx, roomID, 0, upper, 200, true)
		if err != nil {
			return 0, err
		}
		for _, ev := range evs {
			if ev.Event.EventID == eventID {
				return ev.Pos, nil
			}
		}
		if len(evs) < 200 {
			return 0, nil
		}
		scanned += len(evs)
		upper = evs[len(evs)-1].Pos - 1
	}
	return 0, nil
}
