package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Keys: this server's signing key as others fetch it
// (/_matrix/key/v2/server, keys_routes.go), and the ring that verifies
// what others signed. The ring asks keyDB first (our own keys, pinned
// keys, the fs_server_keys cache), then fetches: from the server itself,
// then from the trusted notaries (keys_fetch.go).

// farFuture is the validity given to keys that never need fetching (ours,
// pinned ones); the signature check caps it at seven days from now anyway.
var farFuture = spec.AsTimestamp(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))

// keyService holds the key ring and what the key endpoints serve.
type keyService struct {
	f    *Federation
	ring *gomatrixserverlib.KeyRing
	db   *keyDB

	flightMu sync.Mutex
	flights  map[string]*keyFlight // keys_fetch.go
}

func (f *Federation) startKeys(ctx context.Context) error {
	if err := f.db.Migrate(ctx, "federation_keys", keyMigrations); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	static, err := f.staticKeys()
	if err != nil {
		return err
	}
	ks := &keyService{
		f:       f,
		db:      &keyDB{db: f.db, static: static, cache: map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}},
		flights: map[string]*keyFlight{},
	}
	fetchers := []gomatrixserverlib.KeyFetcher{&directFetcher{ks}}
	for _, notary := range f.cfg.Federation.TrustedKeyServers {
		keys := map[gomatrixserverlib.KeyID][]byte{}
		for id, b64 := range notary.VerifyKeys {
			if keys[gomatrixserverlib.KeyID(id)], err = decodeKey(b64); err != nil {
				return fmt.Errorf("trusted_key_servers %s: %w", notary.ServerName, err)
			}
		}
		fetchers = append(fetchers, &notaryFetcher{ks: ks, notary: notary.ServerName, keys: keys})
	}
	ks.ring = &gomatrixserverlib.KeyRing{KeyDatabase: ks.db, KeyFetchers: fetchers}
	f.keys = ks
	return nil
}

// staticKeys are the keys known without asking anyone: this server's
// current and old keys, and the pinned_keys of others.
func (f *Federation) staticKeys() (map[spec.ServerName]map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	static := map[spec.ServerName]map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	own := f.ownKeys(time.Now())
	static[own.ServerName] = map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	addServerKeys(static[own.ServerName], own)
	for id := range own.VerifyKeys {
		req := gomatrixserverlib.PublicKeyLookupRequest{ServerName: own.ServerName, KeyID: id}
		res := static[own.ServerName][req]
		res.ValidUntilTS = farFuture
		static[own.ServerName][req] = res
	}
	for server, keys := range f.cfg.Federation.PinnedKeys {
		name := spec.ServerName(server)
		if name == own.ServerName {
			return nil, fmt.Errorf("federation.pinned_keys: %s is this server", server)
		}
		static[name] = map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
		for id, b64 := range keys {
			key, err := decodeKey(b64)
			if err != nil {
				return nil, fmt.Errorf("federation.pinned_keys.%s: %w", server, err)
			}
			static[name][gomatrixserverlib.PublicKeyLookupRequest{ServerName: name, KeyID: gomatrixserverlib.KeyID(id)}] = gomatrixserverlib.PublicKeyLookupResult{
				VerifyKey: gomatrixserverlib.VerifyKey{Key: key}, ValidUntilTS: farFuture, ExpiredTS: gomatrixserverlib.PublicKeyNotExpired,
			}
		}
	}
	return static, nil
}

func decodeKey(b64 string) (spec.Base64Bytes, error) {
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil {
		return nil, fmt.Errorf("key is not unpadded base64: %w", err)
	}
	return key, nil
}

// ownKeys is this server's key response, unsigned: the current key, the
// retired ones (old_verify_keys) and valid_until_ts = now + key_validity.
func (f *Federation) ownKeys(now time.Time) gomatrixserverlib.ServerKeys {
	keys := gomatrixserverlib.ServerKeys{ServerKeyFields: gomatrixserverlib.ServerKeyFields{
		ServerName:    spec.ServerName(f.serverName),
		VerifyKeys:    map[gomatrixserverlib.KeyID]gomatrixserverlib.VerifyKey{gomatrixserverlib.KeyID(f.key.ID): {Key: spec.Base64Bytes(f.key.Public())}},
		ValidUntilTS:  spec.AsTimestamp(now.Add(f.cfg.Federation.KeyValidity)),
		OldVerifyKeys: map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey{},
	}}
	for _, old := range f.cfg.Federation.OldVerifyKeys {
		key, err := decodeKey(old.PublicKey)
		if err != nil {
			continue // validated with the configuration
		}
		keys.OldVerifyKeys[gomatrixserverlib.KeyID(old.KeyID)] = gomatrixserverlib.OldVerifyKey{
			VerifyKey: gomatrixserverlib.VerifyKey{Key: key}, ExpiredTS: spec.AsTimestamp(old.ExpiredAt),
		}
	}
	return keys
}

// signedOwnKeys is /_matrix/key/v2/server's answer.
func (f *Federation) signedOwnKeys(now time.Time) ([]byte, error) {
	data, err := json.Marshal(f.ownKeys(now).ServerKeyFields)
	if err != nil {
		return nil, err
	}
	return f.sign(data)
}

// sign adds this server's signature to a JSON object (keeping others').
func (f *Federation) sign(data []byte) ([]byte, error) {
	signed, err := gomatrixserverlib.SignJSON(f.serverName, gomatrixserverlib.KeyID(f.key.ID), f.key.Private, data)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return signed, nil
}
