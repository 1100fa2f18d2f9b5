package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Limits on pushers: the spec's 64 characters for app_id and 512 bytes
// for pushkey, and a bound on pushers per user (each one is a request to
// a gateway for every notification).
const (
	maxAppIDChars     = 64
	maxPushkeyBytes   = 512
	maxPushersPerUser = 50
	maxPusherBody     = 16 << 10
	pushGatewayPath   = "/_matrix/push/v1/notify"
)

// pusherRow is a stored pusher, in the API's shape.
type pusherRow struct {
	UserID            string          `json:"-"`
	AppID             string          `json:"app_id"`
	Pushkey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
	PushkeyTS         int64           `json:"-"`
}

func (s *SyncAPI) pusherRoutes(r *httputil.Router) {
	r.Handle("GET "+v3+"/pushers", httputil.RequireAuth, s.getPushers)
	r.Handle("POST "+v3+"/pushers/set", httputil.RequireAuth, s.setPusher)
}

func (s *SyncAPI) getPushers(req *httputil.Request) (any, error) {
	ps, err := s.store.pushers(req.Context(), `user_id = $1`, req.Device.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"pushers": nonNil(ps)}, nil
}

// setPusher serves POST /pushers/set: kind null deletes the user's pusher
// (app_id, pushkey); otherwise the pusher is created or updated, and,
// unless append is set, the same app_id and pushkey of other users is
// removed (the device changed hands).
func (s *SyncAPI) setPusher(req *httputil.Request) (any, error) {
	body, err := readObject(req, maxPusherBody)
	if err != nil {
		return nil, err
	}
	var in struct {
		AppID             *string         `json:"app_id"`
		Pushkey           *string         `json:"pushkey"`
		Kind              json.RawMessage `json:"kind"`
		AppDisplayName    *string         `json:"app_display_name"`
		DeviceDisplayName *string         `json:"device_display_name"`
		ProfileTag        string          `json:"profile_tag"`
		Lang              *string         `json:"lang"`
		Data              json.RawMessage `json:"data"`
		Append            bool            `json:"append"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if in.AppID == nil || in.Pushkey == nil || in.Kind == nil {
		return nil, mxerr.MissingParam("app_id, pushkey and kind are required")
	}
	if *in.AppID == "" || len([]rune(*in.AppID)) > maxAppIDChars {
		return nil, mxerr.InvalidParam("app_id must be 1 to %d characters", maxAppIDChars)
	}
	if *in.Pushkey == "" || len(*in.Pushkey) > maxPushkeyBytes {
		return nil, mxerr.InvalidParam("pushkey must be 1 to %d bytes", maxPushkeyBytes)
	}
	ctx, userID := req.Context(), req.Device.UserID
	if string(in.Kind) == "null" {
		_, err := s.store.db.ExecContext(ctx, `DELETE FROM sy_pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, userID, *in.AppID, *in.Pushkey)
		if err != nil {
			return nil, fmt.Errorf("delete pusher: %w", err)
		}
		return struct{}{}, nil
	}
	var kind string
	if json.Unmarshal(in.Kind, &kind) != nil || kind != "http" && kind != "email" {
		return nil, mxerr.InvalidParam("kind must be http, email or null")
	}
	if in.AppDisplayName == nil || in.DeviceDisplayName == nil || in.Lang == nil || in.Data == nil {
		return nil, mxerr.MissingParam("app_display_name, device_display_name, lang and data are required")
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(in.Data, &data) != nil {
		return nil, mxerr.BadJSON("data must be an object")
	}
	if kind == "http" {
		if err := checkGatewayData(data); err != nil {
			return nil, err
		}
	}
	p := pusherRow{UserID: userID, AppID: *in.AppID, Pushkey: *in.Pushkey, Kind: kind, AppDisplayName: *in.AppDisplayName,
		DeviceDisplayName: *in.DeviceDisplayName, ProfileTag: in.ProfileTag, Lang: *in.Lang, Data: in.Data, PushkeyTS: time.Now().Unix()}
	if err := s.store.savePusher(ctx, &p, in.Append); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// checkGatewayData requires data.url to be a push gateway's notify URL and
// format, when given, to be the one format the spec defines.
func checkGatewayData(data map[string]json.RawMessage) error {
	var raw string
	if json.Unmarshal(data["url"], &raw) != nil || raw == "" {
		return mxerr.InvalidParam("data.url is required for http pushers")
	}
	u, err := url.Parse(raw)
	// http is accepted besides the spec's https: gateways inside a
	// ministry's network, and tests, use it.
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.Path != pushGatewayPath {
		return mxerr.InvalidParam("data.url must be an https URL with the path %s", pushGatewayPath)
	}
	if f, ok := data["format"]; ok {
		var format string
		if json.Unmarshal(f, &format) != nil || format != "event_id_only" {
			return mxerr.InvalidParam("data.format must be event_id_only when given")
		}
	}
	return nil
}

func (st *store) savePusher(ctx context.Context, p *pusherRow, appendPusher bool) error {
	return st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if !appendPusher {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sy_pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3`,
				p.AppID, p.Pushkey, p.UserID); err != nil {
				return fmt.Errorf("replace pusher: %w", err)
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sy_pushers WHERE user_id = $1 AND NOT (app_id = $2 AND pushkey = $3)`,
			p.UserID, p.AppID, p.Pushkey).Scan(&n); err != nil {
			return fmt.Errorf("count pushers: %w", err)
		}
		if n >= maxPushersPerUser {
			return mxerr.New(http.StatusBadRequest, "M_RESOURCE_LIMIT_EXCEEDED", "at most %d pushers per user", maxPushersPerUser)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sy_pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, pushkey_ts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (app_id, pushkey, user_id) DO UPDATE SET kind = excluded.kind, app_display_name = excluded.app_display_name,
				device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag, lang = excluded.lang,
				data = excluded.data, pushkey_ts = excluded.pushkey_ts`,
			p.UserID, p.AppID, p.Pushkey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, string(p.Data), p.PushkeyTS)
		if err != nil {
			return fmt.Errorf("store pusher: %w", err)
		}
		return nil
	})
}

// pushers lists the pushers matching where.
func (st *store) pushers(ctx context.Context, where string, args ...any) ([]pusherRow, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, pushkey_ts
		FROM sy_pushers WHERE `+where+` ORDER BY user_id, app_id, pushkey`, args...)
	if err != nil {
		return nil, fmt.Errorf("read pushers: %w", err)
	}
	defer rows.Close()
	var out []pusherRow
	for rows.Next() {
		var p pusherRow
		var data string
		if err := rows.Scan(&p.UserID, &p.AppID, &p.Pushkey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.PushkeyTS); err != nil {
			return nil, fmt.Errorf("read pushers: %w", err)
		}
		p.Data = json.RawMessage(data)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pushers: %w", err)
	}
	return out, nil
}

// deletePushers removes a user's pushers of app_id with the given keys:
// the gateway rejected them.
func (st *store) deletePusher(ctx context.Context, userID, appID, pushkey string) error {
	_, err := st.db.ExecContext(ctx, `DELETE FROM sy_pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, userID, appID, pushkey)
	if err != nil {
		return fmt.Errorf("delete rejected pusher: %w", err)
	}
	return nil
}
