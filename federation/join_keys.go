package federation

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// keyBatch hands out the verify keys a batch of events needs (a send_join
// answer), each (server, key ID) looked up once for the whole batch however
// many events it signed: from the ring's database (its memory cache, then
// fs_server_keys), then its fetchers when missing or past its validity, as
// gomatrixserverlib.KeyRing.VerifyJSONs does for each call.
type keyBatch struct {
	ring *gomatrixserverlib.KeyRing

	mu   sync.Mutex
	keys map[gomatrixserverlib.PublicKeyLookupRequest]*batchKey
}

// batchKey is one key's lookup, done by the first event that needs it;
// the others wait on done.
type batchKey struct {
	done  chan struct{}
	res   gomatrixserverlib.PublicKeyLookupResult
	found bool
	err   error // the database failed
}

func newKeyBatch(ring *gomatrixserverlib.KeyRing) *keyBatch {
	return &keyBatch{ring: ring, keys: map[gomatrixserverlib.PublicKeyLookupRequest]*batchKey{}}
}

// key returns a server's key; found is false when nobody could give it.
// atTS (the first asking event's origin_server_ts) is what a notary is
// asked the key to be valid until.
func (b *keyBatch) key(ctx context.Context, req gomatrixserverlib.PublicKeyLookupRequest, atTS spec.Timestamp) (gomatrixserverlib.PublicKeyLookupResult, bool, error) {
	b.mu.Lock()
	k, ok := b.keys[req]
	if !ok {
		k = &batchKey{done: make(chan struct{})}
		b.keys[req] = k
	}
	b.mu.Unlock()
	if !ok {
		k.res, k.found, k.err = b.lookup(ctx, req, atTS)
		close(k.done)
	}
	select {
	case <-k.done:
		return k.res, k.found, k.err
	case <-ctx.Done():
		return gomatrixserverlib.PublicKeyLookupResult{}, false, ctx.Err()
	}
}

func (b *keyBatch) lookup(ctx context.Context, req gomatrixserverlib.PublicKeyLookupRequest, atTS spec.Timestamp) (gomatrixserverlib.PublicKeyLookupResult, bool, error) {
	reqs := map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp{req: atTS}
	stored, err := b.ring.KeyDatabase.FetchKeys(ctx, reqs)
	if err != nil {
		return gomatrixserverlib.PublicKeyLookupResult{}, false, fmt.Errorf("read key %s of %s: %w", req.KeyID, req.ServerName, err)
	}
	res, found := stored[req]
	// An old key never changes; a current one is asked again once past
	// its valid_until_ts (the ring's rule).
	if found && (res.ExpiredTS != gomatrixserverlib.PublicKeyNotExpired || spec.AsTimestamp(time.Now()) < res.ValidUntilTS) {
		return res, true, nil
	}
	for _, fetcher := range b.ring.KeyFetchers {
		fetched, err := fetcher.FetchKeys(ctx, reqs)
		if err != nil {
			continue // the next fetcher may answer
		}
		if r, ok := fetched[req]; ok {
			if err := b.ring.KeyDatabase.StoreKeys(ctx, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{req: r}); err != nil {
				return gomatrixserverlib.PublicKeyLookupResult{}, false, err
			}
			return r, true, nil
		}
	}
	return res, found, nil // a stale stored key is still better than none
}
