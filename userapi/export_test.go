package userapi

import (
	"context"
	"time"
)

// Test hooks, compiled into the test binary only.

// SetClock replaces the clock used for nonces and last-seen times.
func SetClock(u *UserAPI, now func() time.Time) { u.now = now }

// LookupToken resolves a token on this very instance, bypassing the bus
// (which balances between instances).
func LookupToken(ctx context.Context, u *UserAPI, token string) (*Device, error) {
	resp, err := u.lookupToken(ctx, token)
	if err != nil {
		return nil, err
	}
	return resp.Device, nil
}

// DisableTokenCache makes every lookup go to the database.
func DisableTokenCache(u *UserAPI) { u.tokens = newTokenCache(-time.Second, 1, nil) }

// FlushLastSeen writes the pending last-seen times now.
func FlushLastSeen(u *UserAPI) { u.flushLastSeen() }
