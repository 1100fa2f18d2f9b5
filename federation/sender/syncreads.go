package sender

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// SyncReader reads the receipts and presence that syncapi stores.
type SyncReader interface {
	// Receipt is userID's receipt in roomID written at position pos; nil
	// when a newer one has replaced it.
	Receipt(ctx context.Context, roomID, userID string, pos int64) (*Receipt, error)
	// Presence is userID's stored presence; nil when never set.
	Presence(ctx context.Context, userID string) (*Presence, error)
}

type Receipt struct {
	Type     string // m.read or m.read.private
	ThreadID string // "" when unthreaded
	EventID  string
	TS       int64
}

type Presence struct {
	Presence     string
	StatusMsg    *string
	LastActiveMS int64
}

// sqlSyncReader reads syncapi's sy_receipts and sy_presence directly:
// syncapi's output stream only says that they changed, and both share
// the homeserver's one database. Read only; the columns read are
// syncapi's migration 1.
type sqlSyncReader struct{ db *sqlutil.DB }

func (r sqlSyncReader) Receipt(ctx context.Context, roomID, userID string, pos int64) (*Receipt, error) {
	var out Receipt
	err := r.db.QueryRowContext(ctx, `SELECT receipt_type, thread_id, event_id, ts FROM sy_receipts
		WHERE room_id = $1 AND user_id = $2 AND pos = $3`, roomID, userID, pos).Scan(&out.Type, &out.ThreadID, &out.EventID, &out.TS)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read receipt of %s in %s: %w", userID, roomID, err)
	}
	return &out, nil
}

func (r sqlSyncReader) Presence(ctx context.Context, userID string) (*Presence, error) {
	var out Presence
	var msg sql.NullString
	err := r.db.QueryRowContext(ctx, `SELECT presence, status_msg, last_active_ms FROM sy_presence WHERE user_id = $1`, userID).
		Scan(&out.Presence, &msg, &out.LastActiveMS)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read presence of %s: %w", userID, err)
	}
	if msg.Valid {
		out.StatusMsg = &msg.String
	}
	return &out, nil
}
