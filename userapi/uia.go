package userapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

const (
	// uiaSessionTTL is how long a user has to complete the stages.
	uiaSessionTTL = 15 * time.Minute
	// maxUIAStages bounds a session's completed list (flows are short).
	maxUIAStages  = 10
	maxStageBytes = 128
	maxRouteBytes = 255
)

func (u *UserAPI) createUIASession(ctx context.Context, req *CreateUIASessionRequest) (*CreateUIASessionResponse, error) {
	if len(req.Route) > maxRouteBytes || len(req.UserID) > maxUserIDBytes {
		return nil, mxerr.InvalidParam("route or user too long")
	}
	nowMS := u.now().UnixMilli()
	if err := u.sweepUIASessions(ctx, nowMS); err != nil {
		return nil, err
	}
	session := newNonce()
	if _, err := u.db.ExecContext(ctx, `INSERT INTO ua_uia_sessions (session_id, user_id, route, expires_ms) VALUES ($1, $2, $3, $4)`,
		session, req.UserID, req.Route, nowMS+uiaSessionTTL.Milliseconds()); err != nil {
		return nil, fmt.Errorf("store uia session: %w", err)
	}
	return &CreateUIASessionResponse{Session: session}, nil
}

// sweepUIASessions deletes expired sessions and gives back the
// registration-token uses they had reserved. Run when sessions are
// created: the table only grows then.
func (u *UserAPI) sweepUIASessions(ctx context.Context, nowMS int64) error {
	return u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM ua_uia_sessions WHERE expires_ms <= $1 RETURNING reg_token`, nowMS)
		if err != nil {
			return fmt.Errorf("sweep uia sessions: %w", err)
		}
		var tokens []string
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return fmt.Errorf("scan uia session: %w", err)
			}
			if t != "" {
				tokens = append(tokens, t)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sweep uia sessions: %w", err)
		}
		for _, t := range tokens {
			if err := releaseToken(ctx, tx, t, false); err != nil {
				return err
			}
		}
		return nil
	})
}

func (u *UserAPI) queryUIASession(ctx context.Context, req *QueryUIASessionRequest) (*UIASession, error) {
	return readUIASession(ctx, u.db, req.Session, u.now().UnixMilli())
}

// readUIASession returns the session, or Found false if it is unknown or
// expired.
func readUIASession(ctx context.Context, q sqlutil.Querier, session string, nowMS int64) (*UIASession, error) {
	if session == "" || len(session) > 64 {
		return &UIASession{}, nil
	}
	s := UIASession{Session: session}
	var completed string
	var expiresMS int64
	err := q.QueryRowContext(ctx, `SELECT user_id, route, completed, reg_token, expires_ms FROM ua_uia_sessions WHERE session_id = $1`, session).
		Scan(&s.UserID, &s.Route, &completed, &s.RegToken, &expiresMS)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && nowMS >= expiresMS) {
		return &UIASession{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read uia session: %w", err)
	}
	if err := json.Unmarshal([]byte(completed), &s.Completed); err != nil {
		return nil, fmt.Errorf("read uia session %s: %w", session, err)
	}
	s.Found = true
	return &s, nil
}

// completeUIAStage adds a stage to the session's completed list. For the
// registration-token stage it first reserves one use of the token, in the
// same transaction, so two sessions cannot both take a token's last use.
func (u *UserAPI) completeUIAStage(ctx context.Context, req *CompleteUIAStageRequest) (*UIASession, error) {
	if req.Stage == "" || len(req.Stage) > maxStageBytes {
		return nil, mxerr.InvalidParam("bad stage type")
	}
	nowMS := u.now().UnixMilli()
	var out *UIASession
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		s, err := readUIASession(ctx, tx, req.Session, nowMS)
		if err != nil || !s.Found {
			out = s
			return err
		}
		out = s
		if req.RegToken != "" && s.RegToken == "" {
			ok, err := reserveToken(ctx, tx, req.RegToken, nowMS)
			if err != nil {
				return err
			}
			if !ok {
				s.Refused = true
				return nil
			}
			s.RegToken = req.RegToken
		}
		if !slices.Contains(s.Completed, req.Stage) {
			if len(s.Completed) >= maxUIAStages {
				return mxerr.InvalidParam("too many stages")
			}
			s.Completed = append(s.Completed, req.Stage)
		}
		completed, _ := json.Marshal(s.Completed)
		if _, err := tx.ExecContext(ctx, `UPDATE ua_uia_sessions SET completed = $2, reg_token = $3 WHERE session_id = $1`,
			req.Session, string(completed), s.RegToken); err != nil {
			return fmt.Errorf("update uia session: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// endUIASession deletes the session, so one authentication authorises one
// operation, and returns what it held. Found is false if another request
// ended it first.
func (u *UserAPI) endUIASession(ctx context.Context, req *EndUIASessionRequest) (*UIASession, error) {
	var out *UIASession
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		s, err := readUIASession(ctx, tx, req.Session, u.now().UnixMilli())
		if err != nil || !s.Found {
			out = s
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM ua_uia_sessions WHERE session_id = $1`, req.Session)
		if err != nil {
			return fmt.Errorf("delete uia session: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete uia session: %w", err)
		} else if n == 0 {
			s = &UIASession{}
		}
		out = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
