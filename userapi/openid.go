package userapi

import (
	"context"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

const (
	// openIDLifetime is Synapse's: an hour is plenty for the third party
	// to call openid/userinfo right away.
	openIDLifetime = time.Hour
	openIDPrefix   = "cho_"
)

func (u *UserAPI) createOpenIDToken(ctx context.Context, req *CreateOpenIDTokenRequest) (*CreateOpenIDTokenResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.Forbidden("%s is not a user of this server", req.UserID)
	}
	token, hash := newSecret(openIDPrefix)
	now := u.now().UnixMilli()
	// Expired tokens are swept here: tokens are rare enough that this
	// costs nothing and needs no background job.
	if _, err := u.db.ExecContext(ctx, `DELETE FROM ua_openid_tokens WHERE expires_ms <= $1`, now); err != nil {
		return nil, fmt.Errorf("sweep openid tokens: %w", err)
	}
	if _, err := u.db.ExecContext(ctx, `INSERT INTO ua_openid_tokens (token_hash, user_id, expires_ms) VALUES ($1, $2, $3)`,
		hash[:], userID, now+openIDLifetime.Milliseconds()); err != nil {
		return nil, fmt.Errorf("store openid token: %w", err)
	}
	return &CreateOpenIDTokenResponse{AccessToken: token, ExpiresInMS: openIDLifetime.Milliseconds()}, nil
}

// queryOpenIDToken resolves a token; the account must still be active.
func (u *UserAPI) queryOpenIDToken(ctx context.Context, req *QueryOpenIDTokenRequest) (*QueryOpenIDTokenResponse, error) {
	if !plausibleToken(req.AccessToken) {
		return &QueryOpenIDTokenResponse{}, nil
	}
	hash := hashToken(req.AccessToken)
	rows, err := u.db.QueryContext(ctx, `SELECT t.user_id FROM ua_openid_tokens t
		JOIN ua_accounts a ON a.user_id = t.user_id
		WHERE t.token_hash = $1 AND t.expires_ms > $2 AND NOT a.is_deactivated`, hash[:], u.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("look up openid token: %w", err)
	}
	defer rows.Close()
	var resp QueryOpenIDTokenResponse
	if rows.Next() {
		if err := rows.Scan(&resp.UserID); err != nil {
			return nil, fmt.Errorf("scan openid token: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up openid token: %w", err)
	}
	return &resp, nil
}
