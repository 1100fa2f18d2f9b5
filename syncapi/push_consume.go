package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/roomserver"
)

// pushDurable is the durable consumer of the roomserver's output that
// evaluates push rules: one position for every syncapi process, so each
// event is counted once whichever process handles it.
const pushDurable = "syncapi-push"

// pushBatchSize bounds the events evaluated and stored together: under
// load the consumer takes what is pending, up to this, and writes it in
// one transaction (SQLite has one writer, shared with the roomserver).
const pushBatchSize = 256

// notificationRetention is how long notifications are kept for
// /notifications; unread counts only need the unread ones, which are
// younger in practice.
const notificationRetention = 30 * 24 * time.Hour

// pushState is the running push machinery of a SyncAPI.
type pushState struct {
	processed   atomic.Int64 // last output position handled by this process
	persistedMS atomic.Int64 // when the position was last stored
	handled     atomic.Int64 // events handled, for periodic pruning
	progress    progressSignal
	rules       rulesCache
	sender      *pushSender
	gate        pushGate // the commit feed and the stream evaluate each event once (feed.go)
}

// startPush registers the push endpoints and starts the consumer and the
// sender to push gateways.
func (s *SyncAPI) startPush(ctx context.Context, r *httputil.Router) error {
	if err := s.store.db.Migrate(ctx, "syncapi_push", pushMigrations); err != nil {
		return fmt.Errorf("syncapi push storage: %w", err)
	}
	if err := s.store.db.Migrate(ctx, "syncapi_receipts", receiptMigrations); err != nil { // receipts_schema.go
		return fmt.Errorf("syncapi receipt storage: %w", err)
	}
	s.push = &pushState{sender: newPushSender(s)}
	s.push.progress.init()
	pos, err := s.store.pushedPos(ctx)
	if err != nil {
		return err
	}
	s.push.processed.Store(pos)
	// Rule changes made through another process evict its cached rules
	// here (this process's own changes evict them at once).
	rulesSub, err := Output.ConsumeNew(ctx, s.bus, s.push.rules.onOutput)
	if err != nil {
		return fmt.Errorf("listen to push rule changes: %w", err)
	}
	s.subs = append(s.subs, rulesSub)
	sub, err := roomserver.Output.ConsumeDurableBatch(ctx, s.bus, pushDurable, pushBatchSize, s.pushOnce) // feed.go
	if err != nil {
		return fmt.Errorf("listen to room events for push: %w", err)
	}
	s.subs = append(s.subs, sub, s.push.sender)
	s.pushRuleRoutes(r)
	s.pusherRoutes(r)
	r.Handle("GET "+v3+"/notifications", httputil.RequireAuth, s.getNotifications)
	return nil
}

// notification is one user notified of one event.
type notification struct {
	UserID    string
	Highlight bool
	Actions   []json.RawMessage
}

// pushedEvent is an event with what its evaluation found.
type pushedEvent struct {
	ev      *roomserver.OutputEvent
	content json.RawMessage
	ts      int64 // origin_server_ts
	thread  string
	room    *pushRoom
	notes   []notification
}

// onPushBatch evaluates a batch of events for the local members of their
// rooms but the sender, stores who they notify and the unread counts they
// add, moves the senders' own read positions (sending is reading), all in
// one transaction, then hands the notifications to the sender of pushes.
// An error (the database) makes the bus retry the batch; an event that
// cannot be evaluated is skipped.
func (s *SyncAPI) onPushBatch(ctx context.Context, batch []bus.Message[roomserver.OutputEvent]) error {
	members := map[string]map[string]struct{}{} // room → joined users, read once per batch
	var done []*pushedEvent
	for _, m := range batch {
		pe, err := s.evaluatePush(ctx, m.Value, members)
		if err != nil {
			return err
		}
		done = append(done, pe)
	}
	last := batch[len(batch)-1].Value.Pos
	for _, m := range batch {
		last = max(last, m.Value.Pos)
	}
	if err := s.storePushBatch(ctx, done, last); err != nil {
		return err
	}
	s.push.noteProcessed(last)
	s.push.sender.enqueue(done)
	if n := s.push.handled.Add(int64(len(batch))); n/1000 != (n-int64(len(batch)))/1000 {
		s.pruneNotifications(ctx)
	}
	return nil
}

// evaluatePush evaluates one event. members caches the rooms' joined
// users for the batch; membership events of the batch are applied to it
// as they come.
func (s *SyncAPI) evaluatePush(ctx context.Context, ev *roomserver.OutputEvent, members map[string]map[string]struct{}) (*pushedEvent, error) {
	pe := &pushedEvent{ev: ev}
	pev, err := s.decodePushEvent(pe)
	if err != nil {
		s.log.Warn("push: unreadable event skipped", "event", ev.EventID, "err", err)
		return pe, nil
	}
	joined, ok := members[ev.RoomID]
	if !ok {
		list, err := s.reader.JoinedUsers(ctx, ev.RoomID)
		if err != nil {
			return nil, fmt.Errorf("joined users of %s: %w", ev.RoomID, err)
		}
		joined = make(map[string]struct{}, len(list))
		for _, u := range list {
			joined[u] = struct{}{}
		}
		members[ev.RoomID] = joined
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		if ev.Membership == roomserver.MembershipJoin {
			joined[*ev.StateKey] = struct{}{}
		} else {
			delete(joined, *ev.StateKey)
		}
	}
	users := s.pushCandidates(ev, joined)
	pe.room = &pushRoom{api: s, roomID: ev.RoomID, pos: ev.Pos, members: len(joined)}
	if len(users) == 0 {
		return pe, nil
	}
	rules, err := s.push.rules.get(ctx, s.store, users)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		rule := rules[u].match(pev, pe.room, u)
		if rule != nil && rule.notify {
			pe.notes = append(pe.notes, notification{UserID: u, Highlight: rule.highlight, Actions: rule.actions})
		}
	}
	return pe, nil
}

// pushCandidates are the local users an event may notify: the room's
// joined local members but the sender, and the target of an invite.
func (s *SyncAPI) pushCandidates(ev *roomserver.OutputEvent, joined map[string]struct{}) []string {
	isLocal := s.notifier.isLocal
	var users []string
	for u := range joined {
		if u != ev.Sender && isLocal(u) {
			users = append(users, u)
		}
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil && ev.Membership == roomserver.MembershipInvite {
		target := *ev.StateKey
		if _, in := joined[target]; !in && target != ev.Sender && isLocal(target) {
			users = append(users, target)
		}
	}
	return users
}

// decodePushEvent reads the output's PDU: the content the rules read,
// the timestamp and the thread.
func (s *SyncAPI) decodePushEvent(pe *pushedEvent) (*pushEvent, error) {
	ev := pe.ev
	pe.thread = threadMain
	var pdu struct {
		Content        json.RawMessage `json:"content"`
		OriginServerTS int64           `json:"origin_server_ts"`
	}
	if err := json.Unmarshal(ev.Event, &pdu); err != nil {
		return nil, fmt.Errorf("parse event: %w", err)
	}
	content := map[string]any{}
	if len(pdu.Content) > 0 {
		if err := json.Unmarshal(pdu.Content, &content); err != nil {
			return nil, fmt.Errorf("parse content: %w", err)
		}
	}
	pe.content, pe.ts = pdu.Content, pdu.OriginServerTS
	pe.thread = threadKey(content)
	return newPushEvent(ev.Type, ev.Sender, ev.RoomID, ev.StateKey, content), nil
}

// threadKey is the notification thread of an event: the root of its
// m.thread relation, or "main". (The spec suggests following up to three
// relations, for reactions to thread messages; only the direct relation is
// read here.)
func threadKey(content map[string]any) string {
	rel, _ := content["m.relates_to"].(map[string]any)
	if rel != nil && rel["rel_type"] == "m.thread" {
		if root, ok := rel["event_id"].(string); ok && root != "" {
			return root
		}
	}
	return threadMain
}

func (s *SyncAPI) pruneNotifications(ctx context.Context) {
	cutoff := time.Now().Add(-notificationRetention).UnixMilli()
	// Rows are inserted in time order: the old ones are those before the
	// first recent one, found by walking the primary key from its start.
	_, err := s.store.db.ExecContext(ctx, `DELETE FROM sy_notifications WHERE id < COALESCE(
		(SELECT id FROM sy_notifications WHERE ts >= $1 ORDER BY id LIMIT 1),
		(SELECT MAX(id) + 1 FROM sy_notifications))`, cutoff)
	if err != nil {
		s.log.Warn("push: pruning old notifications failed", "err", err)
	}
}

// noteProcessed records that the events up to pos are counted and wakes
// the syncs waiting for it.
func (p *pushState) noteProcessed(pos int64) {
	for {
		cur := p.processed.Load()
		if pos <= cur {
			return
		}
		if p.processed.CompareAndSwap(cur, pos) {
			p.progress.broadcast()
			return
		}
	}
}
