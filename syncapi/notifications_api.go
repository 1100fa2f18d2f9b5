package syncapi

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

const (
	defaultNotificationsLimit = 20
	maxNotificationsLimit     = 100
)

// getNotifications serves GET /notifications: the user's notified events,
// newest first. The token is the last row's ID. Events the user may no
// longer see are left out.
func (s *SyncAPI) getNotifications(req *httputil.Request) (any, error) {
	q := req.URL.Query()
	limit := defaultNotificationsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, mxerr.InvalidParam("limit: %q is not a non-negative number", v)
		}
		limit = min(max(n, 1), maxNotificationsLimit)
	}
	from := int64(1 << 62)
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, mxerr.InvalidParam("from: malformed token %q", v)
		}
		from = n
	}
	only := ""
	switch v := q.Get("only"); v {
	case "":
	case "highlight":
		only = " AND n.highlight = 1"
	default:
		return nil, mxerr.InvalidParam("only: %q is not highlight", v)
	}
	ctx, userID := req.Context(), req.Device.UserID
	rows, err := s.store.db.QueryContext(ctx, `SELECT n.id, n.room_id, n.event_id, n.ts, n.actions,
		CASE WHEN n.pos <= COALESCE((SELECT MAX(r.pos) FROM sy_push_read r WHERE r.user_id = n.user_id AND r.room_id = n.room_id
			AND (r.thread_id = '' OR r.thread_id = n.thread_id)), 0) THEN 1 ELSE 0 END
		FROM sy_notifications n WHERE n.user_id = $1 AND n.id < $2`+only+` ORDER BY n.id DESC LIMIT $3`, userID, from, limit+1)
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	type row struct {
		id                    int64
		roomID, eventID, acts string
		ts                    int64
		read                  int
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.roomID, &r.eventID, &r.ts, &r.acts, &r.read); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read notifications: %w", err)
		}
		list = append(list, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	type item struct {
		Actions json.RawMessage        `json:"actions"`
		Event   roomserver.ClientEvent `json:"event"`
		Read    bool                   `json:"read"`
		RoomID  string                 `json:"room_id"`
		TS      int64                  `json:"ts"`
	}
	out := struct {
		NextToken     string `json:"next_token,omitempty"`
		Notifications []item `json:"notifications"`
	}{Notifications: []item{}}
	if len(list) > limit {
		list = list[:limit]
		out.NextToken = strconv.FormatInt(list[limit-1].id, 10)
	}
	for _, r := range list {
		ev, err := s.roomEvent(ctx, r.roomID, userID, r.eventID)
		if err != nil {
			if _, ok := mxerr.As(err); ok {
				continue // redacted away, or no longer visible
			}
			return nil, err
		}
		out.Notifications = append(out.Notifications, item{Actions: json.RawMessage(r.acts), Event: *ev, Read: r.read == 1, RoomID: r.roomID, TS: r.ts})
	}
	return out, nil
}
