package syncapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Presence states.
const (
	presenceOnline      = "online"
	presenceOffline     = "offline"
	presenceUnavailable = "unavailable"
)

const (
	maxStatusMsgBytes = 1 << 10
	// activeWindow: a user online who was active this recently is
	// currently_active.
	activeWindow = 5 * time.Minute
	// touchEvery: a sync of a user already online refreshes their last
	// active time at most this often (and without waking anyone), so that
	// syncing does not write to the database each time.
	touchEvery = 30 * time.Second
)

// presenceRow is a user's stored presence.
type presenceRow struct {
	UserID       string
	Presence     string
	StatusMsg    *string
	LastActiveMS int64
	Pos          int64
}

// content is the m.presence content at nowMS.
func (p *presenceRow) content(nowMS int64) map[string]any {
	age := max(nowMS-p.LastActiveMS, 0)
	c := map[string]any{
		"presence":         p.Presence,
		"last_active_ago":  age,
		"currently_active": p.Presence == presenceOnline && age < activeWindow.Milliseconds(),
	}
	if p.StatusMsg != nil {
		c["status_msg"] = *p.StatusMsg
	}
	return c
}

// getPresence serves GET /presence/{userId}/status. With presence turned
// off (presence.enabled: false) every user is "offline", as Synapse
// answers then; otherwise a user sees their own presence and that of users
// who share a room with them (M_FORBIDDEN for others, as Synapse does).
func (s *SyncAPI) getPresence(req *httputil.Request) (any, error) {
	target := req.PathValue("userId")
	if !mxid.UserID(target) {
		return nil, mxerr.InvalidParam("%q is not a user ID", target)
	}
	if !s.presenceEnabled {
		return map[string]any{"presence": presenceOffline}, nil
	}
	ctx := req.Context()
	if target != req.Device.UserID {
		share, err := s.shareRoom(ctx, req.Device.UserID, target)
		if err != nil {
			return nil, err
		}
		if !share {
			return nil, mxerr.Forbidden("you may not see the presence of %s", target)
		}
	}
	p, err := s.store.presence(ctx, target)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return map[string]any{"presence": presenceOffline}, nil
	}
	return p.content(time.Now().UnixMilli()), nil
}

// putPresence serves PUT /presence/{userId}/status. With presence turned
// off the request is checked, then ignored (200), as Synapse does.
func (s *SyncAPI) putPresence(req *httputil.Request) (any, error) {
	userID, err := selfOnly(req, "set the presence")
	if err != nil {
		return nil, err
	}
	body, err := readObject(req, 4<<10)
	if err != nil {
		return nil, err
	}
	var in struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if !validPresence(in.Presence) {
		return nil, mxerr.BadJSON("presence must be online, offline or unavailable")
	}
	if in.StatusMsg != nil && len(*in.StatusMsg) > maxStatusMsgBytes {
		return nil, mxerr.BadJSON("status_msg is over %d bytes", maxStatusMsgBytes)
	}
	if !s.presenceEnabled {
		return struct{}{}, nil
	}
	if err := s.setPresence(req.Context(), userID, in.Presence, in.StatusMsg, true); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func validPresence(p string) bool {
	return p == presenceOnline || p == presenceOffline || p == presenceUnavailable
}

// setPresence stores a user's presence. explicit (PUT) always writes, and
// sets the status message; a sync's set_presence writes only a change of
// state, and otherwise refreshes the last active time now and then.
func (s *SyncAPI) setPresence(ctx context.Context, userID, presence string, statusMsg *string, explicit bool) error {
	return s.storePresence(ctx, userID, presence, statusMsg, explicit, time.Now())
}

// storePresence is setPresence with the time the user was last active.
func (s *SyncAPI) storePresence(ctx context.Context, userID, presence string, statusMsg *string, explicit bool, now time.Time) error {
	nowMS := now.UnixMilli()
	if !explicit {
		if presence == presenceOnline && s.touches.fresh(userID, now) {
			return nil
		}
		// Most syncs find the state unchanged: they read without taking
		// the write lock.
		cur, err := s.store.presence(ctx, userID)
		if err != nil {
			return err
		}
		if cur.unchanged(presence, nowMS) {
			if presence == presenceOnline {
				s.touches.remember(userID, time.UnixMilli(cur.LastActiveMS))
			}
			return nil
		}
	}
	var pos int64
	err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if !explicit {
			cur, err := readPresence(ctx, tx, userID)
			if err != nil {
				return err
			}
			if cur != nil && cur.Presence == presence {
				if !cur.unchanged(presence, nowMS) { // online, last active long ago
					_, err = tx.ExecContext(ctx, `UPDATE sy_presence SET last_active_ms = $2 WHERE user_id = $1`, userID, nowMS)
				}
				return err
			}
			if cur != nil {
				statusMsg = cur.StatusMsg
			}
		}
		var err error
		if pos, err = nextPos(ctx, tx); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sy_presence (user_id, presence, status_msg, last_active_ms, pos)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
				last_active_ms = excluded.last_active_ms, pos = excluded.pos`,
			userID, presence, nullString(statusMsg), nowMS, pos)
		if err != nil {
			return fmt.Errorf("store presence: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if pos == 0 {
		if !explicit && presence == presenceOnline {
			s.touches.remember(userID, now)
		}
		return nil
	}
	s.publish(ctx, &OutputMessage{Kind: kindPresence, Pos: pos, UserID: userID})
	return nil
}

// unchanged says whether a sync's set_presence finds nothing to store:
// the same state and, online, a last active time refreshed less than
// touchEvery ago. A nil row (never set) is a change.
func (p *presenceRow) unchanged(presence string, nowMS int64) bool {
	return p != nil && p.Presence == presence && (presence != presenceOnline || nowMS-p.LastActiveMS <= touchEvery.Milliseconds())
}

func nullString(s *string) sql.NullString {
	if s == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *s, Valid: true}
}

// shareRoom says whether two users are both joined to some room.
func (s *SyncAPI) shareRoom(ctx context.Context, a, b string) (bool, error) {
	ra, err := s.reader.RoomsOfUser(ctx, a, roomserver.MembershipJoin)
	if err != nil {
		return false, err
	}
	rb, err := s.reader.RoomsOfUser(ctx, b, roomserver.MembershipJoin)
	if err != nil {
		return false, err
	}
	mine := map[string]bool{}
	for _, r := range ra {
		mine[r.RoomID] = true
	}
	for _, r := range rb {
		if mine[r.RoomID] {
			return true, nil
		}
	}
	return false, nil
}

const presenceColumns = `SELECT user_id, presence, status_msg, last_active_ms, pos FROM sy_presence `

func readPresence(ctx context.Context, q sqlutil.Querier, userID string) (*presenceRow, error) {
	rows, err := scanPresence(q.QueryContext(ctx, presenceColumns+`WHERE user_id = $1`, userID))
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

func (st *store) presence(ctx context.Context, userID string) (*presenceRow, error) {
	return readPresence(ctx, st.db, userID)
}

// presenceChanges lists the presence rows written with from < pos <= to.
func (st *store) presenceChanges(ctx context.Context, from, to int64) ([]presenceRow, error) {
	return scanPresence(st.db.QueryContext(ctx, presenceColumns+`WHERE pos > $1 AND pos <= $2 ORDER BY pos`, from, to))
}

// presenceOf reads the presence rows of the given users with pos <= to,
// in batches of a bounded number of parameters.
func (st *store) presenceOf(ctx context.Context, users []string, to int64) ([]presenceRow, error) {
	const batch = 200
	var out []presenceRow
	for len(users) > 0 {
		n := min(len(users), batch)
		marks := make([]string, n)
		args := []any{to}
		for i, u := range users[:n] {
			marks[i] = fmt.Sprintf("$%d", i+2)
			args = append(args, u)
		}
		rows, err := scanPresence(st.db.QueryContext(ctx,
			presenceColumns+`WHERE pos <= $1 AND user_id IN (`+strings.Join(marks, ", ")+`)`, args...))
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		users = users[n:]
	}
	return out, nil
}

func scanPresence(rows *sql.Rows, err error) ([]presenceRow, error) {
	if err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	defer rows.Close()
	var out []presenceRow
	for rows.Next() {
		var p presenceRow
		var msg sql.NullString
		if err := rows.Scan(&p.UserID, &p.Presence, &msg, &p.LastActiveMS, &p.Pos); err != nil {
			return nil, fmt.Errorf("read presence: %w", err)
		}
		if msg.Valid {
			p.StatusMsg = &msg.String
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	return out, nil
}

// presenceEvent is an m.presence event for /sync.
func presenceEvent(p *presenceRow, nowMS int64) json.RawMessage {
	out, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": p.UserID, "content": p.content(nowMS)})
	return out
}
