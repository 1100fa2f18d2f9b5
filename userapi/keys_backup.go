package userapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Server-side key backups (spec: "Server-side key backups"). The server
// only stores what the client encrypted; its one decision is which of two
// copies of a session key to keep (betterKey).

// maxBackupKeysPerRequest bounds one upload; clients upload in batches of
// a few hundred.
const maxBackupKeysPerRequest = 10000

func (u *UserAPI) backupVersion(ctx context.Context, req *BackupVersionRequest) (*BackupVersionResponse, error) {
	switch req.Op {
	case BackupCreate:
		return u.createBackup(ctx, req)
	case BackupGet:
		return u.getBackup(ctx, req.UserID, req.Version)
	case BackupUpdate:
		return u.updateBackup(ctx, req)
	case BackupDelete:
		return u.deleteBackup(ctx, req)
	}
	return nil, mxerr.InvalidParam("unknown backup operation %q", req.Op)
}

func errNoBackup(version string) error {
	if version == "" {
		return mxerr.NotFound("no current backup version")
	}
	return mxerr.NotFound("unknown backup version %s", truncateString(version, 32))
}

// parseVersion reads a version number; anything else names no version.
func parseVersion(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == v
}

// currentVersion is the user's latest live version (0: none).
func currentVersion(ctx context.Context, q queryFunc, userID string) (int64, error) {
	rows, err := q(ctx, `SELECT COALESCE(MAX(version), 0) FROM ua_backup_versions WHERE user_id = $1 AND NOT deleted`, userID)
	if err != nil {
		return 0, fmt.Errorf("current backup of %s: %w", userID, err)
	}
	defer rows.Close()
	var v int64
	if rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return 0, fmt.Errorf("current backup of %s: %w", userID, err)
		}
	}
	return v, rows.Err()
}

func (u *UserAPI) createBackup(ctx context.Context, req *BackupVersionRequest) (*BackupVersionResponse, error) {
	var version int64
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		// Deleted versions count: a number is never reused, so a client
		// holding an old version cannot write into a new backup.
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM ua_backup_versions WHERE user_id = $1`, req.UserID).Scan(&version); err != nil {
			return fmt.Errorf("next backup version of %s: %w", req.UserID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ua_backup_versions (user_id, version, algorithm, auth_data) VALUES ($1, $2, $3, $4)`,
			req.UserID, version, req.Algorithm, string(req.AuthData)); err != nil {
			return fmt.Errorf("create backup of %s: %w", req.UserID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &BackupVersionResponse{Version: strconv.FormatInt(version, 10)}, nil
}

func (u *UserAPI) getBackup(ctx context.Context, userID, version string) (*BackupVersionResponse, error) {
	var v int64
	if version == "" {
		var err error
		if v, err = currentVersion(ctx, u.db.QueryContext, userID); err != nil {
			return nil, err
		}
	} else if n, ok := parseVersion(version); ok {
		v = n
	}
	if v == 0 {
		return nil, errNoBackup(version)
	}
	resp := &BackupVersionResponse{Version: strconv.FormatInt(v, 10)}
	var authData string
	var etag int64
	err := u.db.QueryRowContext(ctx, `SELECT algorithm, auth_data, etag FROM ua_backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted`,
		userID, v).Scan(&resp.Algorithm, &authData, &etag)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoBackup(version)
	}
	if err != nil {
		return nil, fmt.Errorf("read backup %d of %s: %w", v, userID, err)
	}
	resp.AuthData, resp.ETag = json.RawMessage(authData), strconv.FormatInt(etag, 10)
	if err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_backup_keys WHERE user_id = $1 AND version = $2`, userID, v).Scan(&resp.Count); err != nil {
		return nil, fmt.Errorf("count backup keys of %s: %w", userID, err)
	}
	return resp, nil
}

func (u *UserAPI) updateBackup(ctx context.Context, req *BackupVersionRequest) (*BackupVersionResponse, error) {
	v, ok := parseVersion(req.Version)
	if !ok {
		return nil, errNoBackup(req.Version)
	}
	var algorithm string
	err := u.db.QueryRowContext(ctx, `SELECT algorithm FROM ua_backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted`,
		req.UserID, v).Scan(&algorithm)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoBackup(req.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("read backup %d of %s: %w", v, req.UserID, err)
	}
	if req.Algorithm != algorithm {
		return nil, mxerr.InvalidParam("algorithm cannot change (it is %s): create a new version", algorithm)
	}
	if _, err := u.db.ExecContext(ctx, `UPDATE ua_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2`,
		req.UserID, v, string(req.AuthData)); err != nil {
		return nil, fmt.Errorf("update backup %d of %s: %w", v, req.UserID, err)
	}
	return &BackupVersionResponse{Version: req.Version}, nil
}

func (u *UserAPI) deleteBackup(ctx context.Context, req *BackupVersionRequest) (*BackupVersionResponse, error) {
	v, ok := parseVersion(req.Version)
	if !ok {
		return nil, errNoBackup(req.Version)
	}
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ua_backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2 AND NOT deleted`, req.UserID, v)
		if err != nil {
			return fmt.Errorf("delete backup %d of %s: %w", v, req.UserID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errNoBackup(req.Version)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ua_backup_keys WHERE user_id = $1 AND version = $2`, req.UserID, v); err != nil {
			return fmt.Errorf("delete keys of backup %d of %s: %w", v, req.UserID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &BackupVersionResponse{Version: req.Version}, nil
}

// wrongVersion is the spec's 403 for writing to a version that is not the
// current one.
func wrongVersion(current int64) error {
	e := mxerr.New(http.StatusForbidden, "M_WRONG_ROOM_KEYS_VERSION", "that is not the current backup version")
	e.Extra = map[string]any{"current_version": strconv.FormatInt(current, 10)}
	return e
}

// betterKey is the spec's rule for two copies of one session's key: a
// verified one wins; then the one that decrypts more (lower
// first_message_index); then the one forwarded fewer times. A tie keeps
// the stored copy.
func betterKey(newKey, old BackupKeyData) bool {
	if newKey.IsVerified != old.IsVerified {
		return newKey.IsVerified
	}
	if newKey.FirstMessageIndex != old.FirstMessageIndex {
		return newKey.FirstMessageIndex < old.FirstMessageIndex
	}
	return newKey.ForwardedCount < old.ForwardedCount
}
