package userapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

const (
	// tokenPrefix marks Chappe access tokens, so that a leaked one is easy
	// to recognise (secret scanners, logs).
	tokenPrefix = "cht_"
	// refreshPrefix and loginTokenPrefix mark the other secrets we issue.
	refreshPrefix    = "chr_"
	loginTokenPrefix = "chl_"
	// maxTokenBytes: anything longer is not a token we issued; refusing it
	// early keeps junk off the database and the bus.
	maxTokenBytes = 512
	// revocationChunk bounds the hashes per revocation message, well under
	// NATS's default 1 MB payload limit.
	revocationChunk = 1000
)

// newAccessToken returns a token and the SHA-256 under which it is stored.
func newAccessToken() (string, [32]byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

// newRefreshToken returns a refresh token and the SHA-256 it is stored under.
func newRefreshToken() (string, [32]byte) { return newSecret(refreshPrefix) }

// newLoginToken returns an m.login.token token and its SHA-256.
func newLoginToken() (string, [32]byte) { return newSecret(loginTokenPrefix) }

func newSecret(prefix string) (string, [32]byte) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

func hashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// plausibleToken filters out what cannot be a token before any lookup.
func plausibleToken(token string) bool { return token != "" && len(token) <= maxTokenBytes }

// newDeviceID returns 10 random uppercase letters, as Synapse does.
func newDeviceID() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	out := make([]byte, 0, 10)
	var buf [16]byte
	for len(out) < cap(out) {
		_, _ = rand.Read(buf[:])
		for _, c := range buf {
			// 234 = 9*26: dropping larger bytes keeps every letter equally likely.
			if c < 234 && len(out) < cap(out) {
				out = append(out, letters[c%26])
			}
		}
	}
	return string(out)
}

// newNonce returns 128 random bits, URL-safe.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (u *UserAPI) queryAccessToken(ctx context.Context, req *QueryAccessTokenRequest) (*QueryAccessTokenResponse, error) {
	return u.lookupToken(ctx, req.AccessToken)
}

// lookupToken resolves a token through the cache, then the database. An
// unknown token gives a nil device, not an error; an expired one says so.
func (u *UserAPI) lookupToken(ctx context.Context, token string) (*QueryAccessTokenResponse, error) {
	if !plausibleToken(token) {
		return &QueryAccessTokenResponse{}, nil
	}
	hash := hashToken(token)
	nowMS := u.now().UnixMilli()
	if dev, expiresMS, ok := u.tokens.get(hash); ok && (expiresMS == 0 || nowMS < expiresMS) {
		u.seen.mark(dev.UserID, dev.DeviceID, nowMS)
		return &QueryAccessTokenResponse{Device: dev, ExpiresMS: expiresMS}, nil
	}
	gen := u.tokens.generation()
	var dev Device
	var expiresMS int64
	err := u.db.QueryRowContext(ctx, `SELECT d.user_id, d.device_id, d.display_name, a.is_admin, a.is_suspended, a.is_locked, t.expires_ms
		FROM ua_access_tokens t
		JOIN ua_devices d ON d.user_id = t.user_id AND d.device_id = t.device_id
		JOIN ua_accounts a ON a.user_id = t.user_id
		WHERE t.token_hash = $1 AND NOT a.is_deactivated`, hash[:]).
		Scan(&dev.UserID, &dev.DeviceID, &dev.DisplayName, &dev.IsAdmin, &dev.Suspended, &dev.Locked, &expiresMS)
	if errors.Is(err, sql.ErrNoRows) {
		return &QueryAccessTokenResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up access token: %w", err)
	}
	if expiresMS != 0 && nowMS >= expiresMS {
		return &QueryAccessTokenResponse{Expired: true}, nil
	}
	u.tokens.put(hash, &dev, expiresMS, gen)
	u.seen.mark(dev.UserID, dev.DeviceID, nowMS)
	return &QueryAccessTokenResponse{Device: &dev, ExpiresMS: expiresMS}, nil
}

// revoke announces that tokens are no longer valid: evicted here at once,
// and in every other process through core NATS. The publish is
// fire-and-forget; a process that misses it (NATS reconnecting) drops its
// whole cache on reconnection, and entries expire within the cache TTL
// anyway. Published on the same connection as the handler's reply, the
// message reaches the NATS server before the reply does.
func (u *UserAPI) revoke(hashes [][]byte) {
	if len(hashes) == 0 {
		return
	}
	u.tokens.evict(hashes)
	subject := u.bus.Subject(TokensRevokedSubject)
	for start := 0; start < len(hashes); start += revocationChunk {
		end := min(start+revocationChunk, len(hashes))
		data, err := json.Marshal(&TokensRevoked{TokenHashes: hashes[start:end]})
		if err == nil {
			err = u.bus.NC.Publish(subject, data)
		}
		if err != nil {
			u.log.Warn("announce token revocation failed; other processes rely on their cache TTL", "err", err, "tokens", end-start)
		}
	}
}
