package syncapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Sliding sync keeps, per connection (user, device, conn_id), what it has
// sent of each room, in the database rather than in memory: the client's
// next request may reach another syncapi process, or this one after a
// restart. Each response that changes that record writes a new position
// row; the pos given to the client names it. A request with pos N tells
// that the client has the response that issued N, so older positions of
// the connection are deleted then (N itself is kept: the client may retry
// it). The migrations have their own component name so that they never
// clash with syncapi's own list.
//
// Version 2 records when each connection was last used (last_used_ms,
// brought up to date at most every slidingTouchEvery): a connection
// unused for slidingConnExpiry is deleted, and its pos answers
// M_UNKNOWN_POS, as MSC4186 lets a server do (Synapse also expires them
// after a week).
var slidingMigrations = []sqlutil.Migration{
	{Version: 1, SQL: `
CREATE TABLE sy_sliding_conns (
	conn_nid BIGSERIAL PRIMARY KEY,
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	conn_id TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	UNIQUE (user_id, device_id, conn_id)
);
CREATE TABLE sy_sliding_positions (
	pos_nid BIGSERIAL PRIMARY KEY,
	conn_nid BIGINT NOT NULL,
	state TEXT NOT NULL, -- JSON: slidingConnState
	created_ms BIGINT NOT NULL
);
CREATE INDEX sy_sliding_positions_conn ON sy_sliding_positions (conn_nid, pos_nid)`},
	{Version: 2, SQL: `
ALTER TABLE sy_sliding_conns ADD COLUMN last_used_ms BIGINT NOT NULL DEFAULT 0;
UPDATE sy_sliding_conns SET last_used_ms = COALESCE((SELECT MAX(p.created_ms) FROM sy_sliding_positions p
	WHERE p.conn_nid = sy_sliding_conns.conn_nid), created_ms);
CREATE INDEX sy_sliding_conns_last_used ON sy_sliding_conns (last_used_ms)`},
}

// Connection expiry: a connection unused for slidingConnExpiry is gone.
// Its last use is written at most every slidingTouchEvery (a write per
// request would compete with the roomserver for SQLite's write lock), so
// a connection may be a few minutes older than it looks; the bound is
// days. Expired connections of users who never come back are swept at
// most every slidingSweepEvery.
const (
	slidingConnExpiry = 7 * 24 * time.Hour
	slidingTouchEvery = 5 * time.Minute
	slidingSweepEvery = time.Hour
)

// slidingMaxConns bounds the connections kept per device: a client that
// invents a new conn_id on every start does not fill the database.
const slidingMaxConns = 10

// slidingConnState is what a connection has been sent, by room, and
// where its device lists stand (sliding_e2ee.go).
type slidingConnState struct {
	Rooms map[string]slidingRoomState `json:"rooms"`
	// DeviceLists, when set, is the position up to which the e2ee
	// extension has told device-list changes, behind the pos: responses
	// without the extension leave it there, so that changes are told once
	// the extension is on again. Unset: told up to the pos.
	DeviceLists *slidingMark `json:"dl,omitempty"`
}

// slidingMark is a room and a sy_stream position.
type slidingMark struct {
	Room   int64 `json:"r"`
	Stream int64 `json:"s"`
}

// slidingRoomState is what was last sent of a room: everything up to the
// room stream position Room, with that membership, required_state config,
// timeline limit and unread counts.
type slidingRoomState struct {
	Room       int64  `json:"r"`
	Membership string `json:"m"`
	Config     string `json:"c"`
	Limit      int    `json:"l"`
	// The unread counts sent: a receipt that changes them sends the room
	// again.
	Notify    int64 `json:"n,omitempty"`
	Highlight int64 `json:"h,omitempty"`
}

func (c *slidingConnState) equal(o *slidingConnState) bool {
	if len(c.Rooms) != len(o.Rooms) {
		return false
	}
	if (c.DeviceLists == nil) != (o.DeviceLists == nil) || c.DeviceLists != nil && *c.DeviceLists != *o.DeviceLists {
		return false
	}
	for id, r := range c.Rooms {
		if o.Rooms[id] != r {
			return false
		}
	}
	return true
}

type slidingConnKey struct {
	userID, deviceID, connID string
}

// newConnection starts a connection afresh: a request without pos drops
// what an earlier connection of the same conn_id had.
func (st *store) newSlidingConn(ctx context.Context, k slidingConnKey) (int64, error) {
	var nid int64
	err := st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if err := deleteSlidingConn(ctx, tx, `user_id = $1 AND device_id = $2 AND conn_id = $3`, k.userID, k.deviceID, k.connID); err != nil {
			return err
		}
		// Beyond the per-device bound, the oldest connections go.
		err := deleteSlidingConn(ctx, tx, `user_id = $1 AND device_id = $2 AND conn_nid NOT IN (
			SELECT conn_nid FROM sy_sliding_conns WHERE user_id = $1 AND device_id = $2 ORDER BY conn_nid DESC LIMIT $3)`,
			k.userID, k.deviceID, slidingMaxConns-1)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO sy_sliding_conns (user_id, device_id, conn_id, created_ms, last_used_ms)
			VALUES ($1, $2, $3, $4, $4) RETURNING conn_nid`, k.userID, k.deviceID, k.connID, time.Now().UnixMilli()).Scan(&nid)
	})
	if err != nil {
		return 0, fmt.Errorf("start sliding sync connection: %w", err)
	}
	return nid, nil
}

func deleteSlidingConn(ctx context.Context, tx *sqlutil.Tx, where string, args ...any) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM sy_sliding_positions WHERE conn_nid IN (SELECT conn_nid FROM sy_sliding_conns WHERE `+where+`)`, args...); err != nil {
		return fmt.Errorf("drop sliding sync positions: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sy_sliding_conns WHERE `+where, args...); err != nil {
		return fmt.Errorf("drop sliding sync connection: %w", err)
	}
	return nil
}

// slidingPosition reads position posID of the connection; errUnknownPos
// when the connection or position is gone (or belongs to someone else),
// or the connection has expired (it is deleted then).
func (st *store) slidingPosition(ctx context.Context, k slidingConnKey, posID int64) (connNID int64, state *slidingConnState, err error) {
	var raw string
	var lastUsed int64
	err = st.db.QueryRowContext(ctx, `SELECT c.conn_nid, p.state, c.last_used_ms FROM sy_sliding_positions p
		JOIN sy_sliding_conns c ON c.conn_nid = p.conn_nid
		WHERE p.pos_nid = $1 AND c.user_id = $2 AND c.device_id = $3 AND c.conn_id = $4`,
		posID, k.userID, k.deviceID, k.connID).Scan(&connNID, &raw, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, unknownPos()
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read sliding sync position: %w", err)
	}
	now := time.Now()
	unused := now.Sub(time.UnixMilli(lastUsed))
	if unused > slidingConnExpiry {
		err := st.db.WithTx(ctx, func(tx *sqlutil.Tx) error { return deleteSlidingConn(ctx, tx, `conn_nid = $1`, connNID) })
		if err != nil {
			return 0, nil, err
		}
		return 0, nil, unknownPos()
	}
	if unused > slidingTouchEvery {
		if _, err := st.db.ExecContext(ctx, `UPDATE sy_sliding_conns SET last_used_ms = $1 WHERE conn_nid = $2`, now.UnixMilli(), connNID); err != nil {
			return 0, nil, fmt.Errorf("mark sliding sync connection used: %w", err)
		}
	}
	state = &slidingConnState{}
	if err := json.Unmarshal([]byte(raw), state); err != nil {
		// A row this code cannot read: the client starts over.
		return 0, nil, unknownPos()
	}
	if state.Rooms == nil {
		state.Rooms = map[string]slidingRoomState{}
	}
	return connNID, state, nil
}

// sweepSlidingConns deletes every connection unused for slidingConnExpiry.
func (st *store) sweepSlidingConns(ctx context.Context) error {
	cutoff := time.Now().Add(-slidingConnExpiry).UnixMilli()
	return st.db.WithTx(ctx, func(tx *sqlutil.Tx) error { return deleteSlidingConn(ctx, tx, `last_used_ms < $1`, cutoff) })
}

// saveSlidingPosition stores a new position of the connection and drops
// those older than acked (the position the client has; 0 for none).
func (st *store) saveSlidingPosition(ctx context.Context, connNID, acked int64, state *slidingConnState) (int64, error) {
	data, err := json.Marshal(state)
	if err != nil {
		return 0, fmt.Errorf("encode sliding sync state: %w", err)
	}
	var id int64
	err = st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if acked > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sy_sliding_positions WHERE conn_nid = $1 AND pos_nid < $2`, connNID, acked); err != nil {
				return err
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO sy_sliding_positions (conn_nid, state, created_ms) VALUES ($1, $2, $3) RETURNING pos_nid`,
			connNID, string(data), time.Now().UnixMilli()).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("store sliding sync position: %w", err)
	}
	return id, nil
}
