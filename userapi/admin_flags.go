package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// ErrUserLocked is the spec's answer to a locked account: 401 with
// soft_logout, so that clients keep their session for when it is unlocked.
func ErrUserLocked() *mxerr.Error {
	e := mxerr.New(http.StatusUnauthorized, "M_USER_LOCKED", "this account has been locked")
	e.Extra = map[string]any{"soft_logout": true}
	return e
}

// ErrUserSuspended is the spec's answer to an action a suspended account
// may not take.
func ErrUserSuspended() *mxerr.Error {
	return mxerr.New(http.StatusForbidden, "M_USER_SUSPENDED", "you cannot perform this action while suspended")
}

func (u *UserAPI) queryAccountFlags(ctx context.Context, req *QueryAccountFlagsRequest) (*AccountFlags, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.InvalidParam("%s is not a user of this server", req.UserID)
	}
	return readFlags(ctx, u.db, userID)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readFlags(ctx context.Context, q queryer, userID string) (*AccountFlags, error) {
	var f AccountFlags
	err := q.QueryRowContext(ctx, `SELECT is_admin, is_suspended, is_locked FROM ua_accounts
		WHERE user_id = $1 AND NOT is_deactivated`, userID).Scan(&f.Admin, &f.Suspended, &f.Locked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mxerr.NotFound("no such user %s", userID)
	}
	if err != nil {
		return nil, fmt.Errorf("read flags of %s: %w", userID, err)
	}
	return &f, nil
}

// setAccountFlags changes the flags, then evicts the account's tokens from
// every process's cache (they stay valid: the spec wants locked sessions
// kept), so the next request sees the new flags.
func (u *UserAPI) setAccountFlags(ctx context.Context, req *SetAccountFlagsRequest) (*AccountFlags, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.InvalidParam("%s is not a user of this server", req.UserID)
	}
	var flags *AccountFlags
	var hashes [][]byte
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		f, err := readFlags(ctx, tx, userID)
		if err != nil {
			return err
		}
		if req.Suspended != nil {
			f.Suspended = *req.Suspended
		}
		if req.Locked != nil {
			f.Locked = *req.Locked
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ua_accounts SET is_suspended = $2, is_locked = $3 WHERE user_id = $1`,
			userID, f.Suspended, f.Locked); err != nil {
			return fmt.Errorf("set flags of %s: %w", userID, err)
		}
		flags = f
		hashes, err = tokenHashesOf(ctx, tx, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	u.revoke(hashes)
	u.log.Info("account moderation changed", "user_id", userID, "suspended", flags.Suspended, "locked", flags.Locked)
	return flags, nil
}

func tokenHashesOf(ctx context.Context, tx *sqlutil.Tx, userID string) ([][]byte, error) {
	rows, err := tx.QueryContext(ctx, `SELECT token_hash FROM ua_access_tokens WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %s: %w", userID, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("scan token: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// refuseLocked keeps a locked account from getting new tokens (login,
// login tokens), as the spec asks.
func (u *UserAPI) refuseLocked(ctx context.Context, userID string) error {
	var locked bool
	err := u.db.QueryRowContext(ctx, `SELECT is_locked FROM ua_accounts WHERE user_id = $1`, userID).Scan(&locked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read lock of %s: %w", userID, err)
	}
	if locked {
		return ErrUserLocked()
	}
	return nil
}

// maxUserReportBytes bounds a report's reason, as for room reports.
const maxUserReportBytes = 2048

func (u *UserAPI) reportUser(ctx context.Context, req *ReportUserRequest) (*Empty, error) {
	if len(req.Reason) > maxUserReportBytes {
		return nil, mxerr.InvalidParam("reason is longer than %d bytes", maxUserReportBytes)
	}
	if strings.HasSuffix(req.UserID, ":"+u.serverName) {
		if _, err := readFlags(ctx, u.db, req.UserID); err != nil {
			return nil, err // M_NOT_FOUND for an unknown local user
		}
	}
	_, err := u.db.ExecContext(ctx, `INSERT INTO ua_user_reports (target_user_id, reporter, reason, received_ms)
		VALUES ($1, $2, $3, $4)`, req.UserID, req.Reporter, req.Reason, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store user report: %w", err)
	}
	u.log.Info("user reported", "user_id", req.UserID, "reporter", req.Reporter)
	return &Empty{}, nil
}
