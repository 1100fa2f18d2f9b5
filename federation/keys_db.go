package federation

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// fs_server_keys caches other servers' verify keys, one row per (server,
// key ID): the key, until when it may be used (valid_until_ms for a
// current key, expired_ms for an old one) and the signed key response
// that carried it, which the notary endpoints serve again ("" when the
// key came from the ring without one).
var keyMigrations = []sqlutil.Migration{
	{Version: 1, SQL: `
CREATE TABLE IF NOT EXISTS fs_server_keys (
	server_name    TEXT NOT NULL,
	key_id         TEXT NOT NULL,
	public_key     TEXT NOT NULL,
	valid_until_ms BIGINT NOT NULL,
	expired_ms     BIGINT NOT NULL,
	response       TEXT NOT NULL,
	fetched_ms     BIGINT NOT NULL,
	PRIMARY KEY (server_name, key_id)
)`},
}

// A newer answer replaces a row; an older one (a notary's cached copy)
// does not, unless it retires the key.
const upsertServerKeySQL = `
INSERT INTO fs_server_keys (server_name, key_id, public_key, valid_until_ms, expired_ms, response, fetched_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (server_name, key_id) DO UPDATE SET
	public_key = excluded.public_key, valid_until_ms = excluded.valid_until_ms,
	expired_ms = excluded.expired_ms, fetched_ms = excluded.fetched_ms,
	response = CASE WHEN excluded.response = '' THEN fs_server_keys.response ELSE excluded.response END
WHERE excluded.valid_until_ms >= fs_server_keys.valid_until_ms OR excluded.expired_ms <> 0`

// keyDB is the ring's KeyDatabase: this server's own keys and the pinned
// ones from the configuration (never stored, never fetched), then the
// table, read through a small memory cache (keys change rarely and every
// inbound request is verified).
type keyDB struct {
	db     *sqlutil.DB
	static map[spec.ServerName]map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult

	mu    sync.RWMutex
	cache map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult
}

var _ gomatrixserverlib.KeyDatabase = (*keyDB)(nil)

func (k *keyDB) FetcherName() string { return "fs_server_keys" }

// isStatic tells whether a server's keys come from the configuration.
func (k *keyDB) isStatic(server spec.ServerName) bool {
	_, ok := k.static[server]
	return ok
}

// FetchKeys returns the keys it has among those requested.
func (k *keyDB) FetchKeys(ctx context.Context, requests map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	for req := range requests {
		if static, ok := k.static[req.ServerName]; ok {
			if res, ok := static[req]; ok {
				out[req] = res
			}
			continue
		}
		k.mu.RLock()
		res, ok := k.cache[req]
		k.mu.RUnlock()
		if ok {
			out[req] = res
			continue
		}
		var b64 string
		err := k.db.QueryRowContext(ctx, `SELECT public_key, valid_until_ms, expired_ms FROM fs_server_keys
WHERE server_name = $1 AND key_id = $2`, string(req.ServerName), string(req.KeyID)).Scan(&b64, &res.ValidUntilTS, &res.ExpiredTS)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read key %s of %s: %w", req.KeyID, req.ServerName, err)
		}
		if res.Key, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return nil, fmt.Errorf("stored key %s of %s: %w", req.KeyID, req.ServerName, err)
		}
		k.remember(req, res)
		out[req] = res
	}
	return out, nil
}

// StoreKeys records what the ring fetched (the fetchers have already
// stored their responses; this keeps keys that came without one).
func (k *keyDB) StoreKeys(ctx context.Context, results map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	for req, res := range results {
		if k.isStatic(req.ServerName) {
			continue
		}
		if err := k.store(ctx, req, res, ""); err != nil {
			return err
		}
	}
	return nil
}

// storeResponse records every key of a verified key response with it.
func (k *keyDB) storeResponse(ctx context.Context, keys gomatrixserverlib.ServerKeys) error {
	if k.isStatic(keys.ServerName) {
		return nil
	}
	results := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	addServerKeys(results, keys)
	for req, res := range results {
		if err := k.store(ctx, req, res, string(keys.Raw)); err != nil {
			return err
		}
	}
	return nil
}

func (k *keyDB) store(ctx context.Context, req gomatrixserverlib.PublicKeyLookupRequest, res gomatrixserverlib.PublicKeyLookupResult, response string) error {
	_, err := k.db.ExecContext(ctx, upsertServerKeySQL, string(req.ServerName), string(req.KeyID),
		base64.RawStdEncoding.EncodeToString(res.Key), int64(res.ValidUntilTS), int64(res.ExpiredTS), response, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("store key %s of %s: %w", req.KeyID, req.ServerName, err)
	}
	// Forget rather than overwrite: the upsert may have kept a newer row.
	k.mu.Lock()
	delete(k.cache, req)
	k.mu.Unlock()
	return nil
}

func (k *keyDB) remember(req gomatrixserverlib.PublicKeyLookupRequest, res gomatrixserverlib.PublicKeyLookupResult) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) > 10000 {
		clear(k.cache) // far more keys than a federation has: start over
	}
	k.cache[req] = res
}

// responses are the distinct key responses stored for a server.
func (k *keyDB) responses(ctx context.Context, server string) ([]gomatrixserverlib.ServerKeys, error) {
	rows, err := k.db.QueryContext(ctx, `SELECT DISTINCT response FROM fs_server_keys
WHERE server_name = $1 AND response <> ''`, server)
	if err != nil {
		return nil, fmt.Errorf("read key responses of %s: %w", server, err)
	}
	defer func() { _ = rows.Close() }()
	var out []gomatrixserverlib.ServerKeys
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var keys gomatrixserverlib.ServerKeys
		if err := keys.UnmarshalJSON([]byte(raw)); err != nil {
			continue // cannot happen: only verified responses are stored
		}
		out = append(out, keys)
	}
	return out, rows.Err()
}

// addServerKeys adds a key response's current and old keys to results.
func addServerKeys(results map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, keys gomatrixserverlib.ServerKeys) {
	for id, vk := range keys.VerifyKeys {
		results[gomatrixserverlib.PublicKeyLookupRequest{ServerName: keys.ServerName, KeyID: id}] = gomatrixserverlib.PublicKeyLookupResult{
			VerifyKey: vk, ValidUntilTS: keys.ValidUntilTS, ExpiredTS: gomatrixserverlib.PublicKeyNotExpired,
		}
	}
	for id, old := range keys.OldVerifyKeys {
		results[gomatrixserverlib.PublicKeyLookupRequest{ServerName: keys.ServerName, KeyID: id}] = gomatrixserverlib.PublicKeyLookupResult{
			VerifyKey: old.VerifyKey, ValidUntilTS: gomatrixserverlib.PublicKeyNotValid, ExpiredTS: old.ExpiredTS,
		}
	}
}
