package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// checkPassword backs the m.login.password stage of user-interactive auth.
// Like login, it spends a bcrypt even on unknown accounts.
func (u *UserAPI) checkPassword(ctx context.Context, req *CheckPasswordRequest) (*CheckPasswordResponse, error) {
	if err := checkPasswordLength(req.Password); err != nil {
		return nil, err
	}
	var hash string
	var deactivated bool
	if userID, ok := u.localUserID(req.UserID); ok {
		err := u.db.QueryRowContext(ctx, `SELECT password_hash, is_deactivated FROM ua_accounts WHERE user_id = $1`, userID).
			Scan(&hash, &deactivated)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("look up account %s: %w", userID, err)
		}
	}
	ok, err := checkPassword(ctx, hash, req.Password)
	if err != nil {
		return nil, err
	}
	return &CheckPasswordResponse{Valid: ok && !deactivated}, nil
}

// setPassword stores a new password hash and, with LogoutDevices, ends
// every other session of the user.
func (u *UserAPI) setPassword(ctx context.Context, req *SetPasswordRequest) (*SetPasswordResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no such user %s on this server", req.UserID)
	}
	if req.Password == "" {
		return nil, mxerr.MissingParam("new_password is required")
	}
	if err := checkPasswordLength(req.Password); err != nil {
		return nil, err
	}
	hash, err := hashPassword(ctx, req.Password) // outside the transaction: bcrypt is slow
	if err != nil {
		return nil, err
	}
	var revoked [][]byte
	err = u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ua_accounts SET password_hash = $2 WHERE user_id = $1 AND NOT is_deactivated`, userID, hash)
		if err != nil {
			return fmt.Errorf("set password of %s: %w", userID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("set password of %s: %w", userID, err)
		} else if n == 0 {
			return mxerr.NotFound("no such user %s", userID)
		}
		if !req.LogoutDevices {
			return nil
		}
		ids, err := deviceIDs(ctx, tx, userID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id == req.KeepDeviceID {
				continue
			}
			r, err := deleteDevices(ctx, tx, userID, id)
			if err != nil {
				return err
			}
			revoked = append(revoked, r...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.revoke(revoked)
	u.log.Info("password changed", "user_id", userID, "tokens_revoked", len(revoked))
	return &SetPasswordResponse{}, nil
}

func deviceIDs(ctx context.Context, q sqlutil.Querier, userID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT device_id FROM ua_devices WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan device of %s: %w", userID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	return ids, nil
}
