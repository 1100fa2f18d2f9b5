package userapi

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Registration tokens follow Synapse's admin API: at most 64 characters
// from [A-Za-z0-9._~-]; generated ones are 16 long by default.
const (
	maxRegTokenChars     = 64
	defaultRegTokenChars = 16
	regTokenAlphabet     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
)

const regTokenColumns = `token, uses_allowed, pending, completed, expiry_ms`

// validToken is the SQL condition for a token that can still be used, with
// $2 the current time.
const validToken = `(uses_allowed IS NULL OR pending + completed < uses_allowed) AND (expiry_ms IS NULL OR expiry_ms > $2)`

func checkRegTokenSyntax(token string) error {
	if token == "" || len(token) > maxRegTokenChars {
		return mxerr.InvalidParam("token must be 1 to %d characters", maxRegTokenChars)
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return mxerr.InvalidParam("token may only contain A-Z, a-z, 0-9 and ._~-")
		}
	}
	return nil
}

func scanRegToken(row interface{ Scan(...any) error }) (RegistrationToken, error) {
	var t RegistrationToken
	var uses, expiry sql.NullInt64
	if err := row.Scan(&t.Token, &uses, &t.Pending, &t.Completed, &expiry); err != nil {
		return t, err
	}
	if uses.Valid {
		t.UsesAllowed = &uses.Int64
	}
	if expiry.Valid {
		t.ExpiryTime = &expiry.Int64
	}
	return t, nil
}

func (u *UserAPI) listRegistrationTokens(ctx context.Context, req *ListRegistrationTokensRequest) (*ListRegistrationTokensResponse, error) {
	query := `SELECT ` + regTokenColumns + ` FROM ua_registration_tokens WHERE $1 = 0 OR ($1 = 1) = (` + validToken + `) ORDER BY token`
	filter := 0
	if req.Valid != nil {
		filter = 2
		if *req.Valid {
			filter = 1
		}
	}
	rows, err := u.db.QueryContext(ctx, query, filter, u.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("list registration tokens: %w", err)
	}
	defer rows.Close()
	resp := &ListRegistrationTokensResponse{Tokens: []RegistrationToken{}}
	for rows.Next() {
		t, err := scanRegToken(rows)
		if err != nil {
			return nil, fmt.Errorf("scan registration token: %w", err)
		}
		resp.Tokens = append(resp.Tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list registration tokens: %w", err)
	}
	return resp, nil
}

func readRegToken(ctx context.Context, q sqlutil.Querier, token string) (*RegistrationToken, error) {
	t, err := scanRegToken(q.QueryRowContext(ctx, `SELECT `+regTokenColumns+` FROM ua_registration_tokens WHERE token = $1`, token))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mxerr.NotFound("no such registration token")
	}
	if err != nil {
		return nil, fmt.Errorf("read registration token: %w", err)
	}
	return &t, nil
}

func (u *UserAPI) queryRegistrationToken(ctx context.Context, req *QueryRegistrationTokenRequest) (*RegistrationToken, error) {
	if len(req.Token) > maxRegTokenChars {
		return nil, mxerr.NotFound("no such registration token")
	}
	return readRegToken(ctx, u.db, req.Token)
}

func (u *UserAPI) checkRegTokenLimits(uses, expiry *int64) error {
	if uses != nil && *uses < 0 {
		return mxerr.InvalidParam("uses_allowed must be a non-negative integer or null")
	}
	if expiry != nil && *expiry < u.now().UnixMilli() {
		return mxerr.InvalidParam("expiry_time must not be in the past")
	}
	return nil
}

func (u *UserAPI) createRegistrationToken(ctx context.Context, req *CreateRegistrationTokenRequest) (*RegistrationToken, error) {
	if err := u.checkRegTokenLimits(req.UsesAllowed, req.ExpiryTime); err != nil {
		return nil, err
	}
	token := req.Token
	if token == "" {
		n := req.Length
		if n == 0 {
			n = defaultRegTokenChars
		}
		if n < 1 || n > maxRegTokenChars {
			return nil, mxerr.InvalidParam("length must be between 1 and %d", maxRegTokenChars)
		}
		token = randomRegToken(n)
	} else if err := checkRegTokenSyntax(token); err != nil {
		return nil, err
	}
	_, err := u.db.ExecContext(ctx, `INSERT INTO ua_registration_tokens (token, uses_allowed, expiry_ms) VALUES ($1, $2, $3)`,
		token, req.UsesAllowed, req.ExpiryTime)
	if sqlutil.IsUniqueViolation(err) {
		return nil, mxerr.InvalidParam("registration token already exists")
	}
	if err != nil {
		return nil, fmt.Errorf("create registration token: %w", err)
	}
	u.log.Info("registration token created", "uses_allowed", req.UsesAllowed)
	return readRegToken(ctx, u.db, token)
}

func (u *UserAPI) updateRegistrationToken(ctx context.Context, req *UpdateRegistrationTokenRequest) (*RegistrationToken, error) {
	if len(req.Token) > maxRegTokenChars {
		return nil, mxerr.NotFound("no such registration token")
	}
	if err := u.checkRegTokenLimits(req.UsesAllowed, req.ExpiryTime); err != nil {
		return nil, err
	}
	var out *RegistrationToken
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		t, err := readRegToken(ctx, tx, req.Token)
		if err != nil {
			return err
		}
		if req.SetUsesAllowed {
			t.UsesAllowed = req.UsesAllowed
		}
		if req.SetExpiryTime {
			t.ExpiryTime = req.ExpiryTime
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ua_registration_tokens SET uses_allowed = $2, expiry_ms = $3 WHERE token = $1`,
			t.Token, t.UsesAllowed, t.ExpiryTime); err != nil {
			return fmt.Errorf("update registration token: %w", err)
		}
		out = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (u *UserAPI) deleteRegistrationToken(ctx context.Context, req *QueryRegistrationTokenRequest) (*DeleteRegistrationTokenResponse, error) {
	res, err := u.db.ExecContext(ctx, `DELETE FROM ua_registration_tokens WHERE token = $1`, req.Token)
	if err != nil {
		return nil, fmt.Errorf("delete registration token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("delete registration token: %w", err)
	} else if n == 0 {
		return nil, mxerr.NotFound("no such registration token")
	}
	return &DeleteRegistrationTokenResponse{}, nil
}

func (u *UserAPI) checkRegistrationToken(ctx context.Context, req *QueryRegistrationTokenRequest) (*CheckRegistrationTokenResponse, error) {
	if len(req.Token) > maxRegTokenChars {
		return &CheckRegistrationTokenResponse{}, nil
	}
	var one int
	err := u.db.QueryRowContext(ctx, `SELECT 1 FROM ua_registration_tokens WHERE token = $1 AND `+validToken, req.Token, u.now().UnixMilli()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return &CheckRegistrationTokenResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check registration token: %w", err)
	}
	return &CheckRegistrationTokenResponse{Valid: true}, nil
}

// reserveToken takes one use of a valid token (pending + 1); the
// condition in the UPDATE decides races.
func reserveToken(ctx context.Context, tx *sqlutil.Tx, token string, nowMS int64) (bool, error) {
	if len(token) > maxRegTokenChars {
		return false, nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE ua_registration_tokens SET pending = pending + 1 WHERE token = $1 AND `+validToken, token, nowMS)
	if err != nil {
		return false, fmt.Errorf("reserve registration token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("reserve registration token: %w", err)
	}
	return n == 1, nil
}

// releaseToken ends a reservation: counted as completed when used, given
// back otherwise. A token deleted meanwhile is no error.
func releaseToken(ctx context.Context, q sqlutil.Querier, token string, used bool) error {
	query := `UPDATE ua_registration_tokens SET pending = pending - 1 WHERE token = $1 AND pending > 0`
	if used {
		query = `UPDATE ua_registration_tokens SET pending = pending - 1, completed = completed + 1 WHERE token = $1 AND pending > 0`
	}
	if _, err := q.ExecContext(ctx, query, token); err != nil {
		return fmt.Errorf("release registration token: %w", err)
	}
	return nil
}

func (u *UserAPI) releaseRegistrationToken(ctx context.Context, req *ReleaseRegistrationTokenRequest) (*ReleaseRegistrationTokenResponse, error) {
	if err := releaseToken(ctx, u.db, req.Token, req.Used); err != nil {
		return nil, err
	}
	return &ReleaseRegistrationTokenResponse{}, nil
}

func randomRegToken(n int) string {
	out := make([]byte, n)
	var buf [1]byte
	for i := 0; i < n; {
		_, _ = rand.Read(buf[:])
		// 198 = 3*66: dropping larger bytes keeps every character equally likely.
		if buf[0] < 198 {
			out[i] = regTokenAlphabet[int(buf[0])%len(regTokenAlphabet)]
			i++
		}
	}
	return string(out)
}
