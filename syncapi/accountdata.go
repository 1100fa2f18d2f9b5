package syncapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Limits on account data: its content (Synapse has none, but a client
// storing megabytes would slow every sync of the user) and its type.
const (
	maxAccountDataBytes = 64 << 10
	maxTypeBytes        = 255
)

// serverManaged are the account data types clients may read but not set
// through the account data API (the spec's 405 list).
var serverManaged = map[string]bool{"m.fully_read": true, "m.push_rules": true}

// accountDataRow is one stored entry; RoomID is "" for global data.
type accountDataRow struct {
	RoomID  string
	Type    string
	Content json.RawMessage
	Pos     int64
}

// putAccountData serves PUT /user/{userId}/account_data/{type} and its
// per-room form.
func (s *SyncAPI) putAccountData(req *httputil.Request) (any, error) {
	userID, roomID, typ, err := accountDataPath(req, "set account data")
	if err != nil {
		return nil, err
	}
	if serverManaged[typ] {
		return nil, mxerr.New(http.StatusMethodNotAllowed, "M_BAD_JSON", "cannot set %s through this API", typ)
	}
	content, err := readObject(req, maxAccountDataBytes)
	if err != nil {
		return nil, err
	}
	err = s.updateAccountData(req.Context(), userID, roomID, typ, func([]byte) ([]byte, error) { return content, nil })
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// getAccountData serves GET /user/{userId}/account_data/{type} and its
// per-room form.
func (s *SyncAPI) getAccountData(req *httputil.Request) (any, error) {
	userID, roomID, typ, err := accountDataPath(req, "read account data")
	if err != nil {
		return nil, err
	}
	content, err := s.store.accountData(req.Context(), userID, roomID, typ)
	if err != nil {
		return nil, err
	}
	if content == nil {
		return nil, mxerr.NotFound("no account data of type %s", typ)
	}
	return json.RawMessage(content), nil
}

// accountDataPath reads and checks the path's user, room (empty for the
// global form) and type.
func accountDataPath(req *httputil.Request, what string) (userID, roomID, typ string, err error) {
	userID, err = selfOnly(req, what)
	if err != nil {
		return "", "", "", err
	}
	// roomId is empty only on the global routes, which have none.
	roomID = req.PathValue("roomId")
	if roomID != "" && !mxid.RoomID(roomID) {
		return "", "", "", mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	typ = req.PathValue("type")
	if err := checkType(typ); err != nil {
		return "", "", "", err
	}
	return userID, roomID, typ, nil
}

func checkType(typ string) error {
	if typ == "" || len(typ) > maxTypeBytes {
		return mxerr.InvalidParam("the type must be 1 to %d bytes", maxTypeBytes)
	}
	return nil
}

// updateAccountData replaces an entry with what change makes of its current
// content (nil when absent), at a new stream position, and wakes the
// user's syncs.
func (s *SyncAPI) updateAccountData(ctx context.Context, userID, roomID, typ string, change func(old []byte) ([]byte, error)) error {
	var pos int64
	err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		// The position is taken first: it locks the stream row, so two
		// read-modify-writes of the same entry (two tags) do not race.
		var err error
		if pos, err = nextPos(ctx, tx); err != nil {
			return err
		}
		var old []byte
		var cur string
		err = tx.QueryRowContext(ctx, `SELECT content FROM sy_account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`,
			userID, roomID, typ).Scan(&cur)
		switch {
		case err == nil:
			old = []byte(cur)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read account data %s: %w", typ, err)
		}
		content, err := change(old)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sy_account_data (user_id, room_id, type, content, pos) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, pos = excluded.pos`,
			userID, roomID, typ, string(content), pos)
		if err != nil {
			return fmt.Errorf("store account data %s: %w", typ, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.publish(ctx, &OutputMessage{Kind: kindAccountData, Pos: pos, UserID: userID, RoomID: roomID})
	return nil
}

// accountData reads one entry (nil when absent).
func (st *store) accountData(ctx context.Context, userID, roomID, typ string) ([]byte, error) {
	var content string
	err := st.db.QueryRowContext(ctx, `SELECT content FROM sy_account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`,
		userID, roomID, typ).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read account data %s: %w", typ, err)
	}
	return []byte(content), nil
}

// accountDataChanges lists userID's entries, global and per room, written
// with from < pos <= to.
func (st *store) accountDataChanges(ctx context.Context, userID string, from, to int64) ([]accountDataRow, error) {
	if from >= to {
		return nil, nil // the stream did not move: no query
	}
	rows, err := st.db.QueryContext(ctx, `SELECT room_id, type, content, pos FROM sy_account_data
		WHERE user_id = $1 AND pos > $2 AND pos <= $3 ORDER BY pos`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("read account data of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []accountDataRow
	for rows.Next() {
		var r accountDataRow
		var content string
		if err := rows.Scan(&r.RoomID, &r.Type, &content, &r.Pos); err != nil {
			return nil, fmt.Errorf("read account data of %s: %w", userID, err)
		}
		r.Content = json.RawMessage(content)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read account data of %s: %w", userID, err)
	}
	return out, nil
}
