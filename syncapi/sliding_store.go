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
}

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
		return tx.QueryRowContext(ctx, `INSERT INTO sy_sliding_conns (user_id, device_id, conn_id, created_ms)
			VALUES ($1, $2, $3, $4) RETURNING conn_nid`, k.userID, k.deviceID, k.connID, time.Now().UnixMilli()).Scan(&nid)
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
// when the connection or position is gone (or belongs to someone else).
func (st *store) slidingPosition(ctx context.Context, k slidingConnKey, posID int64) (connNID int64, state *slidingConnState, err error) {
	var raw string
	err = st.db.QueryRowContext(ctx, `SELECT c.conn_nid, p.state FROM sy_sliding_positions p
		JOIN sy_sliding_conns c ON c.conn_nid = p.conn_nid
		WHERE p.pos_nid = $1 AND c.user_id = $2 AND c.device_id = $3 AND c.conn_id = $4`,
		posID, k.userID, k.deviceID, k.connID).Scan(&connNID, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, unknownPos()
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read sliding sync position: %w", err)
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
