package userapi

import (
	"context"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// The KEY_CHANGES outbox. A key change writes a ua_key_changes row in its
// own transaction; publishOutbox then publishes the rows on KeyChanges and
// deletes them. A row left by a crash, or by a process whose publish
// failed, is published by the next pass of any userapi process (the
// ticker), so an announced change is never lost, at worst sent twice,
// which consumers tolerate (a device list marked changed twice).

// outboxInterval is how often the outbox is checked without a nudge.
const outboxInterval = time.Second

// recordKeyChange notes, inside tx, that userID's keys changed.
func recordKeyChange(ctx context.Context, tx *sqlutil.Tx, userID string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO ua_key_changes (user_id) VALUES ($1)`, userID); err != nil {
		return fmt.Errorf("record key change of %s: %w", userID, err)
	}
	return nil
}

// nudgeOutbox asks the publisher to run now (after a commit).
func (u *UserAPI) nudgeOutbox() {
	select {
	case u.keys.nudge <- struct{}{}:
	default:
	}
}

// keysState is the userapi's E2EE state beyond the database.
type keysState struct {
	nudge chan struct{}
}

// outboxLoop publishes the outbox until the userapi stops.
func (u *UserAPI) outboxLoop() {
	t := time.NewTicker(outboxInterval)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
		case <-u.keys.nudge:
		}
		if err := u.publishOutbox(context.Background()); err != nil {
			u.log.Warn("publish key changes failed; retrying", "err", err)
		}
	}
}

// publishOutbox publishes the pending rows in order, deleting each batch
// once JetStream has stored it.
func (u *UserAPI) publishOutbox(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		rows, err := u.db.QueryContext(ctx, `SELECT id, user_id FROM ua_key_changes ORDER BY id LIMIT 100`)
		if err != nil {
			return fmt.Errorf("read key changes: %w", err)
		}
		var last int64
		var users []string
		for rows.Next() {
			var user string
			if err := rows.Scan(&last, &user); err != nil {
				rows.Close()
				return fmt.Errorf("scan key change: %w", err)
			}
			users = append(users, user)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read key changes: %w", err)
		}
		if len(users) == 0 {
			return nil
		}
		seen := map[string]bool{}
		for _, user := range users {
			if seen[user] {
				continue
			}
			seen[user] = true
			if _, err := KeyChanges.Publish(ctx, u.bus, &KeyChange{UserID: user}); err != nil {
				return err
			}
		}
		if _, err := u.db.ExecContext(ctx, `DELETE FROM ua_key_changes WHERE id <= $1`, last); err != nil {
			return fmt.Errorf("delete published key changes: %w", err)
		}
	}
}
