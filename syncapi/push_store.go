package syncapi

import (
	"context"
	"fmt"

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
}

// markReadTx moves userID's read position in roomID/thread forward to pos;
// a receipt for an older event leaves it where it is, as the spec asks
// (the most advanced of m.read and m.read.private counts).
func markReadTx(ctx context.Context, q sqlutil.Querier, userID, roomID, thread string, pos int64) error {
	_, err := q.ExecContext(ctx, `INSERT INTO sy_push_read (user_id, room_id, thread_id, pos) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, room_id, thread_id)
		DO UPDATE SET pos = CASE WHEN excluded.pos > sy_push_read.pos THEN excluded.pos ELSE sy_push_read.pos END`,
		userID, roomID, thread, pos)
	if err != nil {
		return fmt.Errorf("store read position: %w", err)
	}
	return nil
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

// unreadCounts counts userID's notifications with pos <= to that come
// after their read position: the thread's own or the unthreaded one,
// whichever is further. One query for every room of the user; it reads
// only unread rows through sy_notifications_unread.
func (st *store) unreadCounts(ctx context.Context, userID, roomID string, to int64) ([]unreadCount, error) {
	where := ""
	args := []any{userID, to}
	if roomID != "" {
		where = " AND n.room_id = $3"
		args = append(args, roomID)
	}
	rows, err := st.db.QueryContext(ctx, `SELECT n.room_id, n.thread_id, COUNT(*), COALESCE(SUM(n.highlight), 0)
		FROM sy_notifications n
		WHERE n.user_id = $1 AND n.pos <= $2`+where+` AND n.pos > COALESCE((SELECT MAX(r.pos) FROM sy_push_read r
			WHERE r.user_id = n.user_id AND r.room_id = n.room_id AND (r.thread_id = '' OR r.thread_id = n.thread_id)), 0)
		GROUP BY n.room_id, n.thread_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("count notifications of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []unreadCount
	for rows.Next() {
		var c unreadCount
		if err := rows.Scan(&c.RoomID, &c.ThreadID, &c.Notify, &c.Highlight); err != nil {
			return nil, fmt.Errorf("count notifications of %s: %w", userID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count notifications of %s: %w", userID, err)
	}
	return out, nil
}
