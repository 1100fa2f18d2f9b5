package syncapi

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
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
	counts, err := s.store.unreadCounts(ctx, b.userID)
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
// this process or another) has handled the events up to pos. This
// process's consumer wakes the waiters as it goes; another process's
// progress is read from the database every pushPollInterval.
func (s *SyncAPI) waitPushed(ctx context.Context, pos int64) {
	p := s.push
	if p.processed.Load() >= pos || pos-p.processed.Load() > pushCatchUpEvents {
		return
	}
	deadline := time.NewTimer(pushCatchUpWait)
	defer deadline.Stop()
	poll := time.NewTicker(pushPollInterval)
	defer poll.Stop()
	for {
		progressed := p.progress.wait()
		if p.processed.Load() >= pos {
			return
		}
		select {
		case <-progressed:
		case <-poll.C:
			if done, err := s.store.pushedPos(ctx); err == nil && done >= pos {
				return
			}
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// pushPollInterval is how often a waiting sync reads the stored push
// position, for events another process's consumer handles.
const pushPollInterval = 5 * time.Millisecond

// progressSignal wakes every goroutine waiting for the push consumer to
// move on: wait returns a channel that the next broadcast closes.
type progressSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (p *progressSignal) init() { p.ch = make(chan struct{}) }

func (p *progressSignal) wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch
}

func (p *progressSignal) broadcast() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.ch)
	p.ch = make(chan struct{})
}

// markReadReceipt moves the user's read position to a receipt's event (at
// stream position pos), so that counts restart after it. An unthreaded
// receipt covers every thread; a threaded one its thread only ("main"
// included).
func (s *SyncAPI) markReadReceipt(ctx context.Context, roomID, userID, typ, threadID string, pos int64) error {
	if s.push == nil || typ != receiptRead && typ != receiptReadPrivate || pos <= 0 {
		return nil
	}
	return s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error { return markReadTx(ctx, tx, userID, roomID, threadID, pos) })
}
