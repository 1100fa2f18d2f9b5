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

// loginTokenTTL is how long an m.login.token token from /login/get_token
// may wait to be used: long enough to scan a QR code, short enough to be
// worthless once leaked.
const loginTokenTTL = 2 * time.Minute

// refresh rotates a refresh token: it is deleted, the device's access
// tokens are revoked and new ones are issued, in one transaction, so a
// refresh token works once. An unknown, used or expired token is
// M_UNKNOWN_TOKEN with soft_logout: the client must log in again.
func (u *UserAPI) refresh(ctx context.Context, req *RefreshRequest) (*LoginResponse, error) {
	if !plausibleToken(req.RefreshToken) {
		return nil, mxerr.UnknownToken(true)
	}
	hash := hashToken(req.RefreshToken)
	nowMS := u.now().UnixMilli()
	var issued issuedToken
	var userID string
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var expiresMS int64
		var deactivated bool
		err := tx.QueryRowContext(ctx, `SELECT r.user_id, r.device_id, r.expires_ms, a.is_deactivated
			FROM ua_refresh_tokens r JOIN ua_accounts a ON a.user_id = r.user_id WHERE r.token_hash = $1`, hash[:]).
			Scan(&userID, &issued.deviceID, &expiresMS, &deactivated)
		if errors.Is(err, sql.ErrNoRows) {
			return mxerr.UnknownToken(true)
		}
		if err != nil {
			return fmt.Errorf("look up refresh token: %w", err)
		}
		if deactivated || (expiresMS != 0 && nowMS >= expiresMS) {
			return mxerr.UnknownToken(true)
		}
		// deleteTokens removes this refresh token with the access tokens.
		if issued.revoked, err = deleteTokens(ctx, tx, userID, issued.deviceID); err != nil {
			return err
		}
		return insertTokens(ctx, tx, userID, &issued, nowMS, u.tokenLife(true))
	})
	if err != nil {
		return nil, err
	}
	u.revoke(issued.revoked)
	return issued.response(userID), nil
}

func (u *UserAPI) createLoginToken(ctx context.Context, req *CreateLoginTokenRequest) (*CreateLoginTokenResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no such user %s on this server", req.UserID)
	}
	nowMS := u.now().UnixMilli()
	token, hash := newLoginToken()
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		// Swept here: the table only grows when tokens are created.
		if _, err := tx.ExecContext(ctx, `DELETE FROM ua_login_tokens WHERE expires_ms <= $1`, nowMS); err != nil {
			return fmt.Errorf("sweep login tokens: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ua_login_tokens (token_hash, user_id, expires_ms) VALUES ($1, $2, $3)`,
			hash[:], userID, nowMS+loginTokenTTL.Milliseconds()); err != nil {
			return fmt.Errorf("store login token of %s: %w", userID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &CreateLoginTokenResponse{LoginToken: token, ExpiresInMS: loginTokenTTL.Milliseconds()}, nil
}

// consumeLoginToken deletes the token (single use, even with racing
// processes) and returns its user if it was valid.
func (u *UserAPI) consumeLoginToken(ctx context.Context, token string) (string, error) {
	if !plausibleToken(token) {
		return "", mxerr.Forbidden("invalid login token")
	}
	hash := hashToken(token)
	var userID string
	var expiresMS int64
	err := u.db.QueryRowContext(ctx, `DELETE FROM ua_login_tokens WHERE token_hash = $1 RETURNING user_id, expires_ms`, hash[:]).
		Scan(&userID, &expiresMS)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && u.now().UnixMilli() >= expiresMS) {
		return "", mxerr.Forbidden("invalid or expired login token")
	}
	if err != nil {
		return "", fmt.Errorf("consume login token: %w", err)
	}
	var deactivated bool
	err = u.db.QueryRowContext(ctx, `SELECT is_deactivated FROM ua_accounts WHERE user_id = $1`, userID).Scan(&deactivated)
	if err != nil {
		return "", fmt.Errorf("look up account %s: %w", userID, err)
	}
	if deactivated {
		return "", errDeactivated()
	}
	return userID, nil
}
