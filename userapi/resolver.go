package userapi

import (
	"context"
	"log/slog"

	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// NewTokenResolver returns the function other processes (clientapi)
// authenticate requests with: it asks the userapi (QueryAccessToken over
// the bus) and keeps answers for a short while, evicting them as soon as
// the userapi announces a revocation. An unknown token gives a nil device
// and no error; an expired one gives the M_UNKNOWN_TOKEN error with
// soft_logout, which the router sends as it is. The cache lives as long as
// the bus connection.
func NewTokenResolver(b *bus.Bus) func(ctx context.Context, token string) (*Device, error) {
	cache := newTokenCache(resolverCacheTTL, maxCachedTokens, b.NC)
	if _, err := subscribeRevocations(b, cache); err != nil {
		// Without revocations a cached token could outlive its logout:
		// better ask the userapi every time.
		slog.Warn("token resolver runs without a cache", "err", err)
		cache = nil
	}
	return func(ctx context.Context, token string) (*Device, error) {
		if !plausibleToken(token) {
			return nil, nil
		}
		if resp, handled, err := remoteAppServiceToken(ctx, b, token); handled {
			if err != nil {
				return nil, err
			}
			return resolved(resp)
		}
		if cache == nil {
			resp, err := QueryAccessToken.Call(ctx, b, &QueryAccessTokenRequest{AccessToken: token})
			if err != nil {
				return nil, err
			}
			return resolved(resp)
		}
		hash := hashToken(token)
		if dev, expiresMS, ok := cache.get(hash); ok && (expiresMS == 0 || time.Now().UnixMilli() < expiresMS) {
			return dev, nil
		}
		gen := cache.generation()
		resp, err := QueryAccessToken.Call(ctx, b, &QueryAccessTokenRequest{AccessToken: token})
		if err != nil {
			return nil, err
		}
		if resp.Device != nil {
			cache.put(hash, resp.Device, resp.ExpiresMS, gen)
		}
		return resolved(resp)
	}
}

func resolved(resp *QueryAccessTokenResponse) (*Device, error) {
	if resp.Expired {
		return nil, mxerr.UnknownToken(true)
	}
	return resp.Device, nil
}

// ResolveToken is the token check of a process that runs the userapi
// itself: it reads the userapi's own cache, which a logout or refresh
// evicts before answering, so the client that logged out is refused at
// once (other processes learn of it from the revocation announcement).
func (u *UserAPI) ResolveToken(ctx context.Context, token string) (*Device, error) {
	if dev, handled, err := u.resolveAppService(ctx, token); handled {
		return dev, err
	}
	resp, err := u.lookupToken(ctx, token)
	if err != nil {
		return nil, err
	}
	return resolved(resp)
}
