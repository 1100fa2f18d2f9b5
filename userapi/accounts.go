package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// newAccount is an account checked and ready to insert.
type newAccount struct {
	userID       string
	passwordHash string // '' for no password login
	displayName  string
	admin        bool
}

// prepareAccount validates the localpart and password and hashes the
// password. It runs before any transaction: bcrypt takes tens of
// milliseconds and must not hold SQLite's write lock.
func prepareAccount(ctx context.Context, db *sqlutil.DB, serverName, localpart, password, displayName string, admin bool) (*newAccount, error) {
	userID, err := ValidateLocalpart(localpart, serverName)
	if err != nil {
		return nil, err
	}
	if err := checkPasswordLength(password); err != nil {
		return nil, err
	}
	// Refuse a taken name before spending a bcrypt on it; the insert's
	// unique constraint still decides races.
	taken, err := accountExists(ctx, db, userID)
	if err != nil {
		return nil, err
	}
	if taken {
		return nil, mxerr.UserInUse("the user ID %s is already taken", userID)
	}
	a := &newAccount{userID: userID, displayName: displayName, admin: admin}
	if a.displayName == "" {
		a.displayName = localpart
	}
	if password != "" {
		if a.passwordHash, err = hashPassword(ctx, password); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// insertAccount stores the account and its profile.
func insertAccount(ctx context.Context, tx *sqlutil.Tx, a *newAccount, nowMS int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO ua_accounts (user_id, password_hash, is_admin, created_ms) VALUES ($1, $2, $3, $4)`,
		a.userID, a.passwordHash, a.admin, nowMS)
	if sqlutil.IsUniqueViolation(err) {
		return mxerr.UserInUse("the user ID %s is already taken", a.userID)
	}
	if err != nil {
		return fmt.Errorf("insert account %s: %w", a.userID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ua_profiles (user_id, displayname) VALUES ($1, $2)`,
		a.userID, a.displayName); err != nil {
		return fmt.Errorf("insert profile of %s: %w", a.userID, err)
	}
	return nil
}

func accountExists(ctx context.Context, q sqlutil.Querier, userID string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM ua_accounts WHERE user_id = $1`, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up account %s: %w", userID, err)
	}
	return true, nil
}

// CreateAccount creates an account straight in the database, without the
// bus: it is what `chappe user create` calls. It runs the userapi
// migrations first, so it works on a fresh database. An empty password
// makes an account that cannot log in with a password. Errors for a bad or
// taken name are *mxerr.Error (M_INVALID_USERNAME, M_USER_IN_USE).
func CreateAccount(ctx context.Context, db *sqlutil.DB, serverName, localpart, password string, admin bool) (userID string, err error) {
	if err := Migrate(ctx, db); err != nil {
		return "", err
	}
	a, err := prepareAccount(ctx, db, serverName, localpart, password, "", admin)
	if err != nil {
		return "", err
	}
	err = db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		return insertAccount(ctx, tx, a, time.Now().UnixMilli())
	})
	if err != nil {
		return "", err
	}
	return a.userID, nil
}

// register creates an account and, unless InhibitLogin, its first device
// and access token, in one transaction.
func (u *UserAPI) register(ctx context.Context, req *RegisterRequest) (*LoginResponse, error) {
	a, err := prepareAccount(ctx, u.db, u.serverName, req.Localpart, req.Password, req.DisplayName, req.Admin)
	if err != nil {
		return nil, err
	}
	if !req.InhibitLogin {
		if err := checkDeviceID(req.DeviceID); err != nil {
			return nil, err
		}
	}
	resp := &LoginResponse{UserID: a.userID}
	nowMS := u.now().UnixMilli()
	err = u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if err := insertAccount(ctx, tx, a, nowMS); err != nil {
			return err
		}
		if req.InhibitLogin {
			return nil
		}
		// A brand-new account has no tokens to revoke.
		issued, err := issueToken(ctx, tx, a.userID, req.DeviceID, req.InitialDisplayName, nowMS, u.tokenLife(req.RefreshToken))
		if err != nil {
			return err
		}
		resp = issued.response(a.userID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.log.Info("account registered", "user_id", a.userID, "admin", a.admin)
	return resp, nil
}

func (u *UserAPI) queryAvailable(ctx context.Context, req *QueryAvailableRequest) (*QueryAvailableResponse, error) {
	userID, err := ValidateLocalpart(req.Localpart, u.serverName)
	if err != nil {
		return nil, err
	}
	taken, err := accountExists(ctx, u.db, userID)
	if err != nil {
		return nil, err
	}
	return &QueryAvailableResponse{Available: !taken}, nil
}

func (u *UserAPI) queryProfile(ctx context.Context, req *QueryProfileRequest) (*Profile, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no profile for %s on this server", req.UserID)
	}
	var p Profile
	err := u.db.QueryRowContext(ctx, `SELECT displayname, avatar_url FROM ua_profiles WHERE user_id = $1`, userID).
		Scan(&p.DisplayName, &p.AvatarURL)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mxerr.NotFound("no such user %s", userID)
	}
	if err != nil {
		return nil, fmt.Errorf("query profile of %s: %w", userID, err)
	}
	return &p, nil
}

// deactivate refuses further logins and ends every session of the account.
func (u *UserAPI) deactivate(ctx context.Context, req *DeactivateRequest) (*DeactivateResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no such user %s on this server", req.UserID)
	}
	var revoked [][]byte
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ua_accounts SET is_deactivated = TRUE WHERE user_id = $1`, userID)
		if err != nil {
			return fmt.Errorf("deactivate %s: %w", userID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("deactivate %s: %w", userID, err)
		} else if n == 0 {
			return mxerr.NotFound("no such user %s", userID)
		}
		if req.Erase {
			if _, err := tx.ExecContext(ctx, `UPDATE ua_profiles SET displayname = '', avatar_url = '' WHERE user_id = $1`, userID); err != nil {
				return fmt.Errorf("erase profile of %s: %w", userID, err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM ua_profile_fields WHERE user_id = $1`, userID); err != nil {
				return fmt.Errorf("erase profile fields of %s: %w", userID, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ua_login_tokens WHERE user_id = $1`, userID); err != nil {
			return fmt.Errorf("delete login tokens of %s: %w", userID, err)
		}
		revoked, err = deleteDevices(ctx, tx, userID, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	u.revoke(revoked)
	u.log.Info("account deactivated", "user_id", userID, "tokens_revoked", len(revoked))
	return &DeactivateResponse{}, nil
}
