package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// nonceTTL is how long a shared-secret registration nonce stays usable.
const nonceTTL = 5 * time.Minute

func (u *UserAPI) createNonce(ctx context.Context, _ *CreateNonceRequest) (*CreateNonceResponse, error) {
	nowMS := u.now().UnixMilli()
	// Expired nonces are swept here rather than by a timer: the table only
	// grows when nonces are created.
	if _, err := u.db.ExecContext(ctx, `DELETE FROM ua_nonces WHERE expires_ms <= $1`, nowMS); err != nil {
		return nil, fmt.Errorf("sweep expired nonces: %w", err)
	}
	nonce := newNonce()
	if _, err := u.db.ExecContext(ctx, `INSERT INTO ua_nonces (nonce, expires_ms) VALUES ($1, $2)`,
		nonce, nowMS+nonceTTL.Milliseconds()); err != nil {
		return nil, fmt.Errorf("store nonce: %w", err)
	}
	return &CreateNonceResponse{Nonce: nonce}, nil
}

// consumeNonce deletes the nonce and says whether it was valid; the delete
// is what makes it single-use, even with several processes racing.
func (u *UserAPI) consumeNonce(ctx context.Context, req *ConsumeNonceRequest) (*ConsumeNonceResponse, error) {
	if req.Nonce == "" {
		return &ConsumeNonceResponse{}, nil
	}
	var expiresMS int64
	err := u.db.QueryRowContext(ctx, `DELETE FROM ua_nonces WHERE nonce = $1 RETURNING expires_ms`, req.Nonce).Scan(&expiresMS)
	if errors.Is(err, sql.ErrNoRows) {
		return &ConsumeNonceResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consume nonce: %w", err)
	}
	return &ConsumeNonceResponse{Valid: u.now().UnixMilli() < expiresMS}, nil
}
