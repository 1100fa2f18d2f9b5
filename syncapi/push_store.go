package syncapi

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Push data has its own migration component, syncapi_push, so that its
// versions never collide with syncapi's own list, which other features
// extend.
//
//   - sy_push_position is the roomserver output position the push consumer
//     has handled: /sync waits for it (briefly) so that an event and the
//     counts it changes arrive in the same response.
//   - sy_notifications has one row per (user, event) that notified the
//     user, with the event's stream position: unread counts are the rows
//     after the user's read position.
//   - sy_push_read is where each user has read up to in each room, per
//     thread (” for unthreaded receipts, which cover every thread), as a
//     stream position: receipts name events, and resolving an event ID to
//     a position once, when the receipt is stored, keeps counting a plain
//     range query.
//   - sy_pushers are the users' pushers.
//   - sy_unread (version 2) holds each user's unread counts per room and
//     thread, kept up to date as notifications are stored and read
//     positions move: a sync reads a row per room instead of counting the
//     unread notifications, which grew with them (a user who never reads
//     a busy room made every one of their syncs slower).
var pushMigrations = []sqlutil.Migration{
	{Version: 1, SQL: `
CREATE TABLE sy_push_position (
	id INT PRIMARY KEY,
	pos BIGINT NOT NULL
);
INSERT INTO sy_push_position (id, pos) VALUES (1, 0);

CREATE TABLE sy_notifications (
	id BIGSERIAL PRIMARY KEY,
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	thread_id TEXT NOT NULL, -- 'main' or the thread root's event ID
	event_id TEXT NOT NULL,
	pos BIGINT NOT NULL,
	ts BIGINT NOT NULL,
	highlight INT NOT NULL,
	actions TEXT NOT NULL,
	UNIQUE (user_id, event_id)
);
CREATE INDEX sy_notifications_unread ON sy_notifications (user_id, room_id, pos);
CREATE INDEX sy_notifications_ts ON sy_notifications (ts);

CREATE TABLE sy_push_read (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	thread_id TEXT NOT NULL, -- '' for unthreaded
	pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, thread_id)
);

CREATE TABLE sy_pushers (
	user_id TEXT NOT NULL,
	app_id TEXT NOT NULL,
	pushkey TEXT NOT NULL,
	kind TEXT NOT NULL,
	app_display_name TEXT NOT NULL,
	device_display_name TEXT NOT NULL,
	profile_tag TEXT NOT NULL,
	lang TEXT NOT NULL,
	data TEXT NOT NULL,
	pushkey_ts BIGINT NOT NULL,
	PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX sy_pushers_user ON sy_pushers (user_id)`},
	{Version: 2, SQL: `
CREATE TABLE sy_unread (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	thread_id TEXT NOT NULL, -- as in sy_notifications
	notify BIGINT NOT NULL,
	highlight BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, thread_id)
);
INSERT INTO sy_unread (user_id, room_id, thread_id, notify, highlight)
SELECT n.user_id, n.room_id, n.thread_id, COUNT(*), COALESCE(SUM(n.highlight), 0)
FROM sy_notifications n
WHERE n.pos > COALESCE((SELECT MAX(r.pos) FROM sy_push_read r
	WHERE r.user_id = n.user_id AND r.room_id = n.room_id AND (r.thread_id = '' OR r.thread_id = n.thread_id)), 0)
GROUP BY n.user_id, n.room_id, n.thread_id;
-- Counting reads one thread's unread rows, pruning walks the primary key.
-- Every notification writes each index: two fewer.
CREATE INDEX sy_notifications_thread ON sy_notifications (user_id, room_id, thread_id, pos);
DROP INDEX sy_notifications_unread;
DROP INDEX sy_notifications_ts`},
}

// markReadTx moves userID's read position in roomID/thread forward to pos
// (a receipt for an older event leaves it where it is, as the spec asks:
// the most advanced of m.read and m.read.private counts) and counts the
// unread notifications the move may have read again.
func markReadTx(ctx context.Context, q sqlutil.Querier, userID, roomID, thread string, pos int64) error {
	_, err := q.ExecContext(ctx, `INSERT INTO sy_push_read (user_id, room_id, thread_id, pos) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, room_id, thread_id)
		DO UPDATE SET pos = CASE WHEN excluded.pos > sy_push_read.pos THEN excluded.pos ELSE sy_push_read.pos END`,
		userID, roomID, thread, pos)
	if err != nil {
		return fmt.Errorf("store read position: %w", err)
	}
	return recountTx(ctx, q, userID, roomID, thread)
}

// recountTx counts again userID's unread notifications in roomID, in one
// thread or, for thread "", in every thread that has some: those after
// the thread's read position or the unthreaded one, whichever is further.
// Read positions only move forward, so a thread without unread
// notifications keeps none; each count reads the unread rows only
// (sy_notifications_thread), those the calling transaction inserted
// included.
func recountTx(ctx context.Context, q sqlutil.Querier, userID, roomID, thread string) error {
	reads, err := readPositions(ctx, q, userID, roomID)
	if err != nil {
		return err
	}
	threads := []string{thread}
	if thread == "" {
		if threads, err = sqlutil.Strings(ctx, q, `SELECT thread_id FROM sy_unread
			WHERE user_id = $1 AND room_id = $2 AND (notify > 0 OR highlight > 0)`, userID, roomID); err != nil {
			return fmt.Errorf("threads with unread notifications: %w", err)
		}
	}
	for _, t := range threads {
		_, err := q.ExecContext(ctx, `INSERT INTO sy_unread (user_id, room_id, thread_id, notify, highlight)
			SELECT $1, $2, $3, COUNT(*), COALESCE(SUM(n.highlight), 0) FROM sy_notifications n
			WHERE n.user_id = $1 AND n.room_id = $2 AND n.thread_id = $3 AND n.pos > $4
			ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET notify = excluded.notify, highlight = excluded.highlight`,
			userID, roomID, t, max(reads[""], reads[t]))
		if err != nil {
			return fmt.Errorf("count unread notifications: %w", err)
		}
	}
	return nil
}

// readPositions reads userID's read positions in roomID by thread (""
// for the unthreaded one).
func readPositions(ctx context.Context, q sqlutil.Querier, userID, roomID string) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT thread_id, pos FROM sy_push_read WHERE user_id = $1 AND room_id = $2`, userID, roomID)
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var t string
		var pos int64
		if err := rows.Scan(&t, &pos); err != nil {
			return nil, fmt.Errorf("read positions: %w", err)
		}
		out[t] = pos
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	return out, nil
}

// pushedPos is the output position the push consumer has handled.
func (st *store) pushedPos(ctx context.Context) (int64, error) {
	var pos int64
	if err := st.db.QueryRowContext(ctx, `SELECT pos FROM sy_push_position WHERE id = 1`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("push position: %w", err)
	}
	return pos, nil
}

// unreadCount is one (room, thread)'s unread notifications.
type unreadCount struct {
	RoomID, ThreadID  string
	Notify, Highlight int64
}

// unreadCounts reads userID's unread counts in every room.
func (st *store) unreadCounts(ctx context.Context, userID string) ([]unreadCount, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT room_id, thread_id, notify, highlight FROM sy_unread
		WHERE user_id = $1 AND (notify > 0 OR highlight > 0)`, userID)
	if err != nil {
		return nil, fmt.Errorf("unread counts of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []unreadCount
	for rows.Next() {
		var c unreadCount
		if err := rows.Scan(&c.RoomID, &c.ThreadID, &c.Notify, &c.Highlight); err != nil {
			return nil, fmt.Errorf("unread counts of %s: %w", userID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unread counts of %s: %w", userID, err)
	}
	return out, nil
}

// maxInList bounds the values of one IN list.
const maxInList = 500

// inList writes the placeholders of an IN list from $first, padded by
// repeating the last value to one of a few lengths, so that SQLite keeps
// a handful of prepared statements for lists of any length.
func inList(first int, values []string) (string, []any) {
	n := len(values)
	for _, size := range []int{1, 8, 64, maxInList} {
		if n <= size {
			n = size
			break
		}
	}
	args := make([]any, n)
	ph := make([]string, n)
	for i := range n {
		args[i] = values[min(i, len(values)-1)]
		ph[i] = "$" + strconv.Itoa(first+i)
	}
	return strings.Join(ph, ", "), args
}
