package userapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

func (u *UserAPI) backupKeys(ctx context.Context, req *BackupKeysRequest) (*BackupKeysResponse, error) {
	switch req.Op {
	case "get":
		return u.getBackupKeys(ctx, req)
	case "put":
		return u.putBackupKeys(ctx, req)
	case "delete":
		return u.deleteBackupKeys(ctx, req)
	}
	return nil, mxerr.InvalidParam("unknown backup keys operation %q", req.Op)
}

// liveVersion checks that version names a live backup of the user.
func liveVersion(ctx context.Context, q queryFunc, userID, version string) (int64, error) {
	v, ok := parseVersion(version)
	if !ok {
		return 0, errNoBackup(version)
	}
	rows, err := q(ctx, `SELECT 1 FROM ua_backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted`, userID, v)
	if err != nil {
		return 0, fmt.Errorf("read backup %d of %s: %w", v, userID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, errNoBackup(version)
	}
	return v, rows.Err()
}

// scope is the WHERE clause of a request's rooms and sessions.
func (req *BackupKeysRequest) scope(v int64) (string, []any) {
	cond, args := `user_id = $1 AND version = $2`, []any{req.UserID, v}
	if req.RoomID != "" {
		cond, args = cond+` AND room_id = $3`, append(args, req.RoomID)
		if req.SessionID != "" {
			cond, args = cond+` AND session_id = $4`, append(args, req.SessionID)
		}
	}
	return cond, args
}

func (u *UserAPI) getBackupKeys(ctx context.Context, req *BackupKeysRequest) (*BackupKeysResponse, error) {
	v, err := liveVersion(ctx, u.db.QueryContext, req.UserID, req.Version)
	if err != nil {
		return nil, err
	}
	cond, args := req.scope(v)
	rows, err := u.db.QueryContext(ctx, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data FROM ua_backup_keys WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("read backup keys of %s: %w", req.UserID, err)
	}
	defer rows.Close()
	resp := &BackupKeysResponse{Keys: map[string]map[string]BackupKeyData{}}
	for rows.Next() {
		var room, session, data string
		var k BackupKeyData
		if err := rows.Scan(&room, &session, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &data); err != nil {
			return nil, fmt.Errorf("scan backup key: %w", err)
		}
		k.SessionData = json.RawMessage(data)
		if resp.Keys[room] == nil {
			resp.Keys[room] = map[string]BackupKeyData{}
		}
		resp.Keys[room][session] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read backup keys of %s: %w", req.UserID, err)
	}
	if req.SessionID != "" && len(resp.Keys) == 0 {
		return nil, mxerr.NotFound("no backed-up key for this session")
	}
	return resp, nil
}

// putBackupKeys stores the keys that are better than those stored, in one
// transaction that holds the version row: a concurrent deletion or a
// concurrent upload cannot interleave.
func (u *UserAPI) putBackupKeys(ctx context.Context, req *BackupKeysRequest) (*BackupKeysResponse, error) {
	n := 0
	for _, sessions := range req.Keys {
		n += len(sessions)
	}
	if n > maxBackupKeysPerRequest {
		return nil, mxerr.InvalidParam("at most %d keys per request", maxBackupKeysPerRequest)
	}
	resp := &BackupKeysResponse{}
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		current, err := currentVersion(ctx, tx.QueryContext, req.UserID)
		if err != nil {
			return err
		}
		if current == 0 {
			return errNoBackup(req.Version)
		}
		if v, ok := parseVersion(req.Version); !ok || v != current {
			return wrongVersion(current)
		}
		// Taking the row lock first serialises uploads to the version.
		var etag int64
		if err := tx.QueryRowContext(ctx, `UPDATE ua_backup_versions SET etag = etag WHERE user_id = $1 AND version = $2 RETURNING etag`,
			req.UserID, current).Scan(&etag); err != nil {
			return fmt.Errorf("lock backup %d of %s: %w", current, req.UserID, err)
		}
		changed := false
		for room, sessions := range req.Keys {
			for session, k := range sessions {
				wrote, err := putBackupKey(ctx, tx, req.UserID, current, room, session, k)
				if err != nil {
					return err
				}
				changed = changed || wrote
			}
		}
		if changed {
			etag++
			if _, err := tx.ExecContext(ctx, `UPDATE ua_backup_versions SET etag = $3 WHERE user_id = $1 AND version = $2`, req.UserID, current, etag); err != nil {
				return fmt.Errorf("update backup etag of %s: %w", req.UserID, err)
			}
		}
		resp.ETag = strconv.FormatInt(etag, 10)
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_backup_keys WHERE user_id = $1 AND version = $2`, req.UserID, current).Scan(&resp.Count)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// putBackupKey writes one key unless the stored copy is better.
func putBackupKey(ctx context.Context, tx *sqlutil.Tx, userID string, v int64, room, session string, k BackupKeyData) (bool, error) {
	var old BackupKeyData
	err := tx.QueryRowContext(ctx, `SELECT first_message_index, forwarded_count, is_verified FROM ua_backup_keys WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`,
		userID, v, room, session).Scan(&old.FirstMessageIndex, &old.ForwardedCount, &old.IsVerified)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("read backup key of %s: %w", userID, err)
	case !betterKey(k, old):
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO ua_backup_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
	forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`,
		userID, v, room, session, k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, string(k.SessionData)); err != nil {
		return false, fmt.Errorf("store backup key of %s: %w", userID, err)
	}
	return true, nil
}

func (u *UserAPI) deleteBackupKeys(ctx context.Context, req *BackupKeysRequest) (*BackupKeysResponse, error) {
	resp := &BackupKeysResponse{}
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		v, err := liveVersion(ctx, tx.QueryContext, req.UserID, req.Version)
		if err != nil {
			return err
		}
		cond, args := req.scope(v)
		res, err := tx.ExecContext(ctx, `DELETE FROM ua_backup_keys WHERE `+cond, args...)
		if err != nil {
			return fmt.Errorf("delete backup keys of %s: %w", req.UserID, err)
		}
		bump := 0
		if n, _ := res.RowsAffected(); n > 0 {
			bump = 1
		}
		var etag int64
		if err := tx.QueryRowContext(ctx, `UPDATE ua_backup_versions SET etag = etag + $3 WHERE user_id = $1 AND version = $2 RETURNING etag`,
			req.UserID, v, bump).Scan(&etag); err != nil {
			return fmt.Errorf("update backup etag of %s: %w", req.UserID, err)
		}
		resp.ETag = strconv.FormatInt(etag, 10)
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_backup_keys WHERE user_id = $1 AND version = $2`, req.UserID, v).Scan(&resp.Count)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
