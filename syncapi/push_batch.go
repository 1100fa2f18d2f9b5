package syncapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// pushPositionEveryMS is how often, at most, the push position is stored
// when a batch notifies no one. Reprocessing after a restart is harmless:
// notifications are unique per (user, event), counts only grow for rows
// actually inserted, and read positions only move forward.
const pushPositionEveryMS = 1000

// Rows per multi-row statement: few distinct statement texts, and few
// parameters each (SQLite's driver looks each parameter's name up in a
// list, a cost that grows with the square of their number).
const (
	notificationRowsPerInsert = 16
	unreadRowsPerUpsert       = 32
)

// unreadKey is one (user, room, thread) of the unread counts.
type unreadKey struct{ user, room, thread string }

func compareKeys(a, b unreadKey) int {
	return cmp.Or(strings.Compare(a.user, b.user), strings.Compare(a.room, b.room), strings.Compare(a.thread, b.thread))
}

// storedNote is a notification row the batch inserted (not one a
// redelivered batch found there already).
type storedNote struct {
	key       unreadKey
	pos       int64
	highlight bool
}

// storePushBatch records a batch's notifications, the unread counts they
// add, the senders' read positions and the consumer's position in one
// transaction. Most batches of a quiet room notify no one: then nothing
// is written (SQLite has one writer, shared with the roomserver), unless
// a sender's read position must move past unread notifications or the
// stored position (read by other sync processes) is a second old.
func (s *SyncAPI) storePushBatch(ctx context.Context, done []*pushedEvent, last int64) error {
	now := time.Now().UnixMilli()
	reads, err := s.senderReads(ctx, done)
	if err != nil {
		return err
	}
	notes := 0
	for _, pe := range done {
		notes += len(pe.notes)
	}
	if notes == 0 && len(reads) == 0 && now-s.push.persistedMS.Load() < pushPositionEveryMS {
		return nil
	}
	// Rows are locked in one order (read positions, then counts, each
	// sorted), the receipts' order, so that on PostgreSQL a receipt and a
	// batch wait for each other rather than deadlock. A sender's counts are
	// counted again from the rows, this batch's included: they are not
	// added to.
	senders := make([]unreadKey, 0, len(reads))
	for k := range reads {
		senders = append(senders, k)
	}
	slices.SortFunc(senders, compareKeys)
	var inserted []storedNote
	err = s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var err error
		if inserted, err = insertNotifications(ctx, tx, done, now); err != nil {
			return err
		}
		for _, k := range senders {
			if err := markReadTx(ctx, tx, k.user, k.room, k.thread, reads[k]); err != nil {
				return err
			}
		}
		if err := addUnread(ctx, tx, inserted, reads); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sy_push_position SET pos = $1 WHERE id = 1 AND pos < $1`, last); err != nil {
			return fmt.Errorf("store push position: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.push.persistedMS.Store(now)
	s.recountReadAhead(ctx, inserted)
	return nil
}

// senderReads are the read positions the batch's local senders move:
// sending in a thread reads it. Only those with unread notifications
// there (counted, or in this batch) are kept: moving the others changes
// nothing.
func (s *SyncAPI) senderReads(ctx context.Context, done []*pushedEvent) (map[unreadKey]int64, error) {
	reads := map[unreadKey]int64{}
	for _, pe := range done {
		if pe.room != nil && s.notifier.isLocal(pe.ev.Sender) {
			k := unreadKey{pe.ev.Sender, pe.ev.RoomID, pe.thread}
			reads[k] = max(reads[k], pe.ev.Pos)
		}
	}
	notified := map[unreadKey]bool{}
	for _, pe := range done {
		for _, n := range pe.notes {
			notified[unreadKey{n.UserID, pe.ev.RoomID, pe.thread}] = true
		}
	}
	// The others: one query per room for the senders' unread threads.
	byRoom := map[string][]string{}
	for k := range reads {
		if !notified[k] {
			byRoom[k.room] = append(byRoom[k.room], k.user)
		}
	}
	unread := map[unreadKey]bool{}
	for room, users := range byRoom {
		for len(users) > 0 {
			chunk := users[:min(len(users), maxInList)]
			users = users[len(chunk):]
			in, args := inList(2, chunk)
			rows, err := s.store.db.QueryContext(ctx, `SELECT user_id, thread_id FROM sy_unread
				WHERE room_id = $1 AND user_id IN (`+in+`) AND (notify > 0 OR highlight > 0)`, append([]any{room}, args...)...)
			if err != nil {
				return nil, fmt.Errorf("unread counts in %s: %w", room, err)
			}
			for rows.Next() {
				k := unreadKey{room: room}
				if err := rows.Scan(&k.user, &k.thread); err != nil {
					rows.Close()
					return nil, fmt.Errorf("unread counts in %s: %w", room, err)
				}
				unread[k] = true
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, fmt.Errorf("unread counts in %s: %w", room, err)
			}
		}
	}
	for k := range reads {
		if !notified[k] && !unread[k] {
			delete(reads, k)
		}
	}
	return reads, nil
}

// insertNotifications inserts the batch's notifications and returns those
// it inserted: a batch given again after a crash finds its rows and
// counts nothing twice.
func insertNotifications(ctx context.Context, tx *sqlutil.Tx, done []*pushedEvent, now int64) ([]storedNote, error) {
	var rows [][]any
	for _, pe := range done {
		for _, n := range pe.notes {
			actions, _ := json.Marshal(nonNil(n.Actions))
			hl := 0
			if n.Highlight {
				hl = 1
			}
			rows = append(rows, []any{n.UserID, pe.ev.RoomID, pe.thread, pe.ev.EventID, pe.ev.Pos, now, hl, string(actions)})
		}
	}
	var out []storedNote
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), notificationRowsPerInsert)]
		rows = rows[len(chunk):]
		values, args := valuesList(chunk)
		res, err := tx.QueryContext(ctx, `INSERT INTO sy_notifications (user_id, room_id, thread_id, event_id, pos, ts, highlight, actions)
			VALUES `+values+` ON CONFLICT (user_id, event_id) DO NOTHING RETURNING user_id, room_id, thread_id, pos, highlight`, args...)
		if err != nil {
			return nil, fmt.Errorf("store notifications: %w", err)
		}
		for res.Next() {
			var n storedNote
			var hl int
			if err := res.Scan(&n.key.user, &n.key.room, &n.key.thread, &n.pos, &hl); err != nil {
				res.Close()
				return nil, fmt.Errorf("store notifications: %w", err)
			}
			n.highlight = hl == 1
			out = append(out, n)
		}
		err = res.Err()
		res.Close()
		if err != nil {
			return nil, fmt.Errorf("store notifications: %w", err)
		}
	}
	return out, nil
}

// addUnread adds the inserted notifications to the unread counts, but
// for the keys counted again in the transaction.
func addUnread(ctx context.Context, tx *sqlutil.Tx, inserted []storedNote, recounted map[unreadKey]int64) error {
	type count struct{ notify, highlight int64 }
	sums := map[unreadKey]*count{}
	var order []unreadKey
	for _, n := range inserted {
		if _, ok := recounted[n.key]; ok {
			continue
		}
		c := sums[n.key]
		if c == nil {
			c = &count{}
			sums[n.key] = c
			order = append(order, n.key)
		}
		c.notify++
		if n.highlight {
			c.highlight++
		}
	}
	slices.SortFunc(order, compareKeys)
	for len(order) > 0 {
		chunk := order[:min(len(order), unreadRowsPerUpsert)]
		order = order[len(chunk):]
		rows := make([][]any, len(chunk))
		for i, k := range chunk {
			rows[i] = []any{k.user, k.room, k.thread, sums[k].notify, sums[k].highlight}
		}
		values, args := valuesList(rows)
		_, err := tx.ExecContext(ctx, `INSERT INTO sy_unread (user_id, room_id, thread_id, notify, highlight) VALUES `+values+`
			ON CONFLICT (user_id, room_id, thread_id)
			DO UPDATE SET notify = sy_unread.notify + excluded.notify, highlight = sy_unread.highlight + excluded.highlight`, args...)
		if err != nil {
			return fmt.Errorf("add unread counts: %w", err)
		}
	}
	return nil
}

// valuesList writes "($1, $2), ($3, $4)" for rows of equal width.
func valuesList(rows [][]any) (string, []any) {
	var b strings.Builder
	var args []any
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, v := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			args = append(args, v)
			b.WriteString("$" + strconv.Itoa(len(args)))
		}
		b.WriteByte(')')
	}
	return b.String(), args
}

// recountReadAhead counts again the rooms where a user had already read
// past a notification the batch inserted: a receipt that came before the
// consumer reached its event (the consumer lags under load), possibly
// while the batch's transaction ran, so that the transaction could not
// see it. Read positions only move forward, so reading them after the
// commit sees every receipt the counts may have missed.
func (s *SyncAPI) recountReadAhead(ctx context.Context, inserted []storedNote) {
	type userRoom struct{ user, room string }
	first := map[userRoom]map[string]int64{} // thread → the oldest notification inserted
	byRoom := map[string][]string{}
	for _, n := range inserted {
		ur := userRoom{n.key.user, n.key.room}
		threads := first[ur]
		if threads == nil {
			threads = map[string]int64{}
			first[ur] = threads
			byRoom[ur.room] = append(byRoom[ur.room], ur.user)
		}
		if p, ok := threads[n.key.thread]; !ok || n.pos < p {
			threads[n.key.thread] = n.pos
		}
	}
	stale := map[userRoom]bool{}
	read := func(room string, users []string) error {
		in, args := inList(2, users)
		rows, err := s.store.db.QueryContext(ctx, `SELECT user_id, thread_id, pos FROM sy_push_read
			WHERE room_id = $1 AND user_id IN (`+in+`)`, append([]any{room}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u, thread string
			var pos int64
			if err := rows.Scan(&u, &thread, &pos); err != nil {
				return err
			}
			ur := userRoom{u, room}
			for t, p := range first[ur] {
				if (thread == "" || thread == t) && p <= pos {
					stale[ur] = true
				}
			}
		}
		return rows.Err()
	}
	for room, users := range byRoom {
		for len(users) > 0 {
			chunk := users[:min(len(users), maxInList)]
			users = users[len(chunk):]
			if err := read(room, chunk); err != nil {
				// The counts stay as the batch left them until the next
				// receipt: the batch itself is stored.
				s.log.Warn("push: checking read positions failed", "room", room, "err", err)
				return
			}
		}
	}
	for ur := range stale {
		err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error { return recountTx(ctx, tx, ur.user, ur.room, "") })
		if err != nil {
			s.log.Warn("push: counting unread notifications again failed", "user", ur.user, "room", ur.room, "err", err)
		}
	}
}
