package federation

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Fetching other servers' keys. A response is only used once it passes
// gomatrixserverlib.CheckKeys (the server name asked, signed by every key
// it lists) and, from a notary, carries the notary's signature by one of
// its configured keys. What is used is stored with the response.

// minRefetch is how long a server's direct answer (or failure) is reused
// before asking it again: concurrent verifications share one request,
// and a flood of requests naming unknown key IDs costs the origin one
// request per interval, not one each.
const minRefetch = 10 * time.Second

// keyFetchTimeout bounds one key request, whoever waits for it.
const keyFetchTimeout = 15 * time.Second

// keyFlight is one direct fetch of a server's keys.
type keyFlight struct {
	done chan struct{}
	keys gomatrixserverlib.ServerKeys
	err  error
	at   time.Time
}

// fetchDirect returns the server's own key response, verified and stored,
// sharing a fetch in flight or done less than minRefetch ago.
func (ks *keyService) fetchDirect(ctx context.Context, server spec.ServerName) (gomatrixserverlib.ServerKeys, error) {
	ks.flightMu.Lock()
	fl, ok := ks.flights[string(server)]
	if ok {
		select {
		case <-fl.done:
			if time.Since(fl.at) >= minRefetch {
				ok = false
			}
		default: // in flight: wait for it
		}
	}
	if !ok {
		fl = &keyFlight{done: make(chan struct{})}
		ks.flights[string(server)] = fl
		// Detached from the first caller: the others wait for the result.
		go ks.runDirect(context.WithoutCancel(ctx), server, fl)
	}
	ks.flightMu.Unlock()
	select {
	case <-fl.done:
		return fl.keys, fl.err
	case <-ctx.Done():
		return gomatrixserverlib.ServerKeys{}, ctx.Err()
	}
}

func (ks *keyService) runDirect(ctx context.Context, server spec.ServerName, fl *keyFlight) {
	defer close(fl.done)
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	keys, err := ks.f.client.GetServerKeys(ctx, server)
	if err == nil {
		err = ks.accept(ctx, server, keys)
	}
	fl.keys, fl.err, fl.at = keys, err, time.Now()
	if err != nil {
		ks.f.log.Warn("fetch server keys", "server", server, "err", err)
	}
}

// accept checks a key response for server and stores it.
func (ks *keyService) accept(ctx context.Context, server spec.ServerName, keys gomatrixserverlib.ServerKeys) error {
	// Time zero: an expired response (a notary's cached copy) still
	// proves old keys; whether a key is valid when used is the ring's
	// check.
	if checks, _ := gomatrixserverlib.CheckKeys(server, time.Unix(0, 0), keys); !checks.AllChecksOK {
		return fmt.Errorf("key response for %s fails the checks (name, self-signatures)", server)
	}
	return ks.db.storeResponse(ctx, keys)
}

// fetchable tells whether a server's keys may be fetched at all: not our
// own nor pinned ones.
func (ks *keyService) fetchable(server spec.ServerName) bool {
	return !ks.db.isStatic(server)
}

// directFetcher asks each server for its own keys.
type directFetcher struct{ ks *keyService }

func (d *directFetcher) FetcherName() string { return "direct" }

func (d *directFetcher) FetchKeys(ctx context.Context, requests map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	servers := map[spec.ServerName]bool{}
	for req := range requests {
		// Servers outside allowed_servers are never contacted (a notary
		// may still vouch for their keys).
		if d.ks.fetchable(req.ServerName) && d.ks.f.cfg.FederationAllows(string(req.ServerName)) {
			servers[req.ServerName] = true
		}
	}
	results := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server := range servers {
		wg.Go(func() {
			keys, err := d.ks.fetchDirect(ctx, server)
			if err != nil {
				return
			}
			mu.Lock()
			addServerKeys(results, keys)
			mu.Unlock()
		})
	}
	wg.Wait()
	return results, nil
}

// notaryFetcher asks a trusted key server (trusted_key_servers).
type notaryFetcher struct {
	ks     *keyService
	notary string
	keys   map[gomatrixserverlib.KeyID][]byte
}

func (n *notaryFetcher) FetcherName() string { return "notary " + n.notary }

func (n *notaryFetcher) FetchKeys(ctx context.Context, requests map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	asked := map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp{}
	for req, ts := range requests {
		if n.ks.fetchable(req.ServerName) {
			asked[req] = ts
		}
	}
	if len(asked) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	answers, err := n.ks.f.client.LookupServerKeys(ctx, spec.ServerName(n.notary), asked)
	if err != nil {
		return nil, fmt.Errorf("notary %s: %w", n.notary, err)
	}
	wanted := map[spec.ServerName]bool{}
	for req := range asked {
		wanted[req.ServerName] = true
	}
	results := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	for _, keys := range answers {
		// A notary only vouches for what it was asked.
		if !wanted[keys.ServerName] {
			continue
		}
		if !n.signedByNotary(keys.Raw) {
			return nil, fmt.Errorf("notary %s: answer for %s not signed with its configured keys", n.notary, keys.ServerName)
		}
		if err := n.ks.accept(ctx, keys.ServerName, keys); err != nil {
			n.ks.f.log.Warn("notary key answer refused", "notary", n.notary, "err", err)
			continue
		}
		addServerKeys(results, keys)
	}
	return results, nil
}

func (n *notaryFetcher) signedByNotary(raw []byte) bool {
	for id, key := range n.keys {
		if gomatrixserverlib.VerifyJSON(n.notary, id, key, raw) == nil {
			return true
		}
	}
	return false
}
