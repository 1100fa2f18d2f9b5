package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
)

// pushDurable is the durable consumer of the roomserver's output that
// evaluates push rules: one position for every syncapi process, so each
// event is counted once whichever process handles it.
const pushDurable = "syncapi-push"

// notificationRetention is how long notifications are kept for
// /notifications; unread counts only need the unread ones, which are
// younger in practice.
const notificationRetention = 30 * 24 * time.Hour

// pushState is the running push machinery of a SyncAPI.
type pushState struct {
	processed   atomic.Int64 // last output position handled by this process
	persistedMS atomic.Int64 // when the position was last stored
	handled     atomic.Int64 // events handled, for periodic pruning
	rules       rulesCache
	sender      *pushSender
	sub         bus.Subscription
}

// startPush registers the push endpoints and starts the consumer and the
// sender to push gateways.
func (s *SyncAPI) startPush(ctx context.Context, r *httputil.Router) error {
	if err := s.store.db.Migrate(ctx, "syncapi_push", pushMigrations); err != nil {
		return fmt.Errorf("syncapi push storage: %w", err)
	}
	s.push = &pushState{sender: newPushSender(s)}
	pos, err := s.store.pushedPos(ctx)
	if err != nil {
		return err
	}
	s.push.processed.Store(pos)
	sub, err := roomserver.Output.ConsumeDurable(ctx, s.bus, pushDurable, s.onPushEvent)
	if err != nil {
		return fmt.Errorf("listen to room events for push: %w", err)
	}
	s.push.sub = sub
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

// onPushEvent evaluates one event for each local member of its room but
// the sender, stores who it notifies, moves the sender's own read position
// (sending is reading), and hands the notifications to the sender of
// pushes. An error (the database) makes the bus retry the event; an event
// that cannot be evaluated is skipped.
func (s *SyncAPI) onPushEvent(ctx context.Context, _ uint64, ev *roomserver.OutputEvent) error {
	evt, err := pushEventOf(ev)
	if err != nil {
		s.log.Warn("push: unreadable event skipped", "event", ev.EventID, "err", err)
		return s.storePushResult(ctx, ev, "", nil)
	}
	thread := threadKey(evt)
	var notes []notification
	users, room, err := s.pushCandidates(ctx, ev)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		raws, err := s.store.pushRulesOf(ctx, users)
		if err != nil {
			return err
		}
		for _, u := range users {
			rs := s.push.rules.get(u, raws[u])
			rule := rs.set.GetMatchingRule(room.forUser(u), evt)
			if rule == nil {
				continue
			}
			should := rule.GetActions().Should()
			if should.Notify {
				notes = append(notes, notification{UserID: u, Highlight: should.Highlight, Actions: rs.actions[string(rule.Type)+"/"+rule.RuleID]})
			}
		}
	}
	if err := s.storePushResult(ctx, ev, thread, notes); err != nil {
		return err
	}
	if len(notes) > 0 {
		s.push.sender.enqueue(ctx, ev, evt, room, notes)
	}
	if s.push.handled.Add(1)%1000 == 0 {
		s.pruneNotifications(ctx)
	}
	return nil
}

// pushCandidates are the local users an event may notify: the room's
// joined local members but the sender, and the target of an invite.
func (s *SyncAPI) pushCandidates(ctx context.Context, ev *roomserver.OutputEvent) ([]string, *pushRoom, error) {
	joined, err := s.reader.JoinedUsers(ctx, ev.RoomID)
	if err != nil {
		return nil, nil, fmt.Errorf("joined users of %s: %w", ev.RoomID, err)
	}
	isLocal := s.notifier.isLocal
	var users []string
	seen := map[string]bool{ev.Sender: true}
	for _, u := range joined {
		if isLocal(u) && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil && ev.Membership == roomserver.MembershipInvite &&
		isLocal(*ev.StateKey) && !seen[*ev.StateKey] {
		users = append(users, *ev.StateKey)
	}
	return users, &pushRoom{api: s, roomID: ev.RoomID, pos: ev.Pos, members: len(joined)}, nil
}

// storePushResult records an event's notifications, the sender's read
// position and the consumer's position in one transaction: a redelivered
// event (after a crash) finds its rows and inserts nothing twice.
func (s *SyncAPI) storePushResult(ctx context.Context, ev *roomserver.OutputEvent, thread string, notes []notification) error {
	now := time.Now().UnixMilli()
	markRead := thread != "" && s.notifier.isLocal(ev.Sender)
	if len(notes) == 0 {
		// Most events notify no one: skip the write (SQLite has one
		// writer, shared with the roomserver) unless the sender's read
		// position must move past unread notifications, or the stored
		// position (read by other sync processes) is a second old.
		var err error
		if markRead {
			if markRead, err = s.hasUnread(ctx, ev.Sender, ev.RoomID, thread, ev.Pos); err != nil {
				return err
			}
		}
		if !markRead && now-s.push.persistedMS.Load() < pushPositionEveryMS {
			s.push.noteProcessed(ev.Pos)
			return nil
		}
	}
	err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		for _, n := range notes {
			actions, _ := json.Marshal(nonNil(n.Actions))
			hl := 0
			if n.Highlight {
				hl = 1
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO sy_notifications (user_id, room_id, thread_id, event_id, pos, ts, highlight, actions)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, event_id) DO NOTHING`,
				n.UserID, ev.RoomID, thread, ev.EventID, ev.Pos, now, hl, string(actions))
			if err != nil {
				return fmt.Errorf("store notification: %w", err)
			}
		}
		if markRead {
			if err := markReadTx(ctx, tx, ev.Sender, ev.RoomID, thread, ev.Pos); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE sy_push_position SET pos = $1 WHERE id = 1 AND pos < $1`, ev.Pos)
		if err != nil {
			return fmt.Errorf("store push position: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.push.persistedMS.Store(now)
	s.push.noteProcessed(ev.Pos)
	return nil
}

// pushPositionEveryMS is how often, at most, the push position is stored
// when events notify no one. Reprocessing after a restart is harmless:
// notifications are unique per (user, event) and read positions only move
// forward.
const pushPositionEveryMS = 1000

func (p *pushState) noteProcessed(pos int64) {
	if pos > p.processed.Load() {
		p.processed.Store(pos)
	}
}

// hasUnread tells whether userID has unread notifications in the room's
// thread up to pos, which their own event would mark as read.
func (s *SyncAPI) hasUnread(ctx context.Context, userID, roomID, thread string, pos int64) (bool, error) {
	counts, err := s.store.unreadCounts(ctx, userID, roomID, pos)
	if err != nil {
		return false, err
	}
	for _, c := range counts {
		if c.ThreadID == thread && c.Notify > 0 {
			return true, nil
		}
	}
	return false, nil
}

func (s *SyncAPI) pruneNotifications(ctx context.Context) {
	cutoff := time.Now().Add(-notificationRetention).UnixMilli()
	if _, err := s.store.db.ExecContext(ctx, `DELETE FROM sy_notifications WHERE ts < $1`, cutoff); err != nil {
		s.log.Warn("push: pruning old notifications failed", "err", err)
	}
}

// pushEventOf turns the output's PDU into the event mautrix's rule engine
// reads.
func pushEventOf(ev *roomserver.OutputEvent) (*event.Event, error) {
	var pdu struct {
		Content        json.RawMessage `json:"content"`
		OriginServerTS int64           `json:"origin_server_ts"`
	}
	if err := json.Unmarshal(ev.Event, &pdu); err != nil {
		return nil, fmt.Errorf("parse event: %w", err)
	}
	raw := map[string]any{}
	if len(pdu.Content) > 0 {
		if err := json.Unmarshal(pdu.Content, &raw); err != nil {
			return nil, fmt.Errorf("parse content: %w", err)
		}
	}
	evt := &event.Event{
		StateKey:  ev.StateKey,
		Sender:    id.UserID(ev.Sender),
		Type:      event.Type{Type: ev.Type},
		Timestamp: pdu.OriginServerTS,
		ID:        id.EventID(ev.EventID),
		RoomID:    id.RoomID(ev.RoomID),
		Content:   event.Content{VeryRaw: pdu.Content, Raw: raw},
	}
	if ev.StateKey != nil {
		evt.Type.Class = event.StateEventType
	} else {
		evt.Type.Class = event.MessageEventType
	}
	return evt, nil
}

// threadKey is the notification thread of an event: the root of its
// m.thread relation, or "main". (The spec suggests following up to three
// relations, for reactions to thread messages; only the direct relation is
// read here.)
func threadKey(evt *event.Event) string {
	rel, _ := evt.Content.Raw["m.relates_to"].(map[string]any)
	if rel != nil && rel["rel_type"] == "m.thread" {
		if root, ok := rel["event_id"].(string); ok && root != "" {
			return root
		}
	}
	return threadMain
}

// pushRoom is what the rule engine asks about the room, for one event.
// The state is read once, and only when a rule needs it: most events are
// decided on their type and content and the member count alone.
type pushRoom struct {
	api     *SyncAPI
	roomID  string
	pos     int64
	members int

	once  sync.Once
	state []roomserver.ClientEvent
}

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

// displayName is userID's display name in the room ("" if none).
func (r *pushRoom) displayName(userID string) string {
	var c struct {
		DisplayName string `json:"displayname"`
	}
	_ = json.Unmarshal(r.stateContent("m.room.member", userID), &c)
	return c.DisplayName
}

func (r *pushRoom) forUser(userID string) pushrules.Room {
	return &userPushRoom{room: r, userID: userID}
}

// userPushRoom is pushRoom as one user sees it.
type userPushRoom struct {
	room   *pushRoom
	userID string
}

func (u *userPushRoom) GetOwnDisplayname() string { return u.room.displayName(u.userID) }
func (u *userPushRoom) GetMemberCount() int       { return u.room.members }

func (u *userPushRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	raw := u.room.stateContent("m.room.power_levels", "")
	if raw == nil {
		return nil
	}
	var pl event.PowerLevelsEventContent
	if err := json.Unmarshal(raw, &pl); err != nil {
		return nil
	}
	return &pl
}

// cachedRules is a user's ruleset ready for mautrix's engine, with each
// rule's actions as stored (kind/rule ID → actions), which
// /notifications and the push gateway are given verbatim.
type cachedRules struct {
	raw     string
	set     *pushrules.PushRuleset
	actions map[string][]json.RawMessage
}

// rulesCache keeps parsed rulesets by user, checked against the stored
// text, so an event in a big room does not parse hundreds of rulesets.
type rulesCache struct {
	mu    sync.Mutex
	users map[string]*cachedRules
}

const maxCachedRulesets = 10000

func (c *rulesCache) get(userID string, raw []byte) *cachedRules {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cr, ok := c.users[userID]; ok && cr.raw == string(raw) {
		return cr
	}
	rs := parseStoredRules(raw, userID)
	cr := &cachedRules{raw: string(raw), set: &pushrules.PushRuleset{}, actions: map[string][]json.RawMessage{}}
	for _, k := range pushKinds {
		for _, r := range *rs.kind(k) {
			cr.actions[k+"/"+r.RuleID] = r.Actions
		}
	}
	data, _ := json.Marshal(rs)
	if err := json.Unmarshal(data, cr.set); err != nil {
		cr.set = &pushrules.PushRuleset{}
	}
	if c.users == nil || len(c.users) >= maxCachedRulesets {
		c.users = map[string]*cachedRules{}
	}
	c.users[userID] = cr
	return cr
}

// pushRulesOf reads the stored m.push_rules of users (absent: no entry).
func (st *store) pushRulesOf(ctx context.Context, users []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for len(users) > 0 {
		n := min(len(users), 500)
		chunk := users[:n]
		users = users[n:]
		args := []any{pushRulesType}
		ph := make([]string, len(chunk))
		for i, u := range chunk {
			args = append(args, u)
			ph[i] = fmt.Sprintf("$%d", i+2)
		}
		rows, err := st.db.QueryContext(ctx, `SELECT user_id, content FROM sy_account_data
			WHERE room_id = '' AND type = $1 AND user_id IN (`+strings.Join(ph, ", ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read push rules: %w", err)
		}
		for rows.Next() {
			var u, c string
			if err := rows.Scan(&u, &c); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read push rules: %w", err)
			}
			out[u] = []byte(c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read push rules: %w", err)
		}
	}
	return out, nil
}
