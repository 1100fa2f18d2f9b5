package userapi

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chappe-matrix/chappe/internal/bus"
)

const (
	// serverCacheTTL and resolverCacheTTL bound how long a revoked token
	// can still be honoured if its revocation message is lost.
	serverCacheTTL   = 30 * time.Second
	resolverCacheTTL = 30 * time.Second
	// maxCachedTokens bounds memory; past it, expired entries are swept and,
	// if that is not enough, the cache starts over.
	maxCachedTokens = 100_000
)

// tokenCache maps token hashes to devices for a short time. It is
// invalidated by revocation messages; a generation counter keeps a lookup
// that raced with a revocation from caching a stale answer.
type tokenCache struct {
	ttl time.Duration
	max int
	nc  *nats.Conn // to notice reconnections (revocations may have been missed)

	mu         sync.RWMutex
	entries    map[[32]byte]cacheEntry
	gen        uint64 // bumped on every eviction
	reconnects uint64 // nc's reconnection count when the cache was last valid
}

type cacheEntry struct {
	dev      Device
	expires  time.Time
	tokenExp int64 // the token's own expiry, Unix ms (0: never)
}

func newTokenCache(ttl time.Duration, max int, nc *nats.Conn) *tokenCache {
	c := &tokenCache{ttl: ttl, max: max, nc: nc, entries: make(map[[32]byte]cacheEntry)}
	if nc != nil {
		c.reconnects = nc.Stats().Reconnects
	}
	return c
}

// get returns a copy of the cached device, so callers may not alter the
// cache through it, and the token's own expiry (Unix ms, 0: never), which
// callers check: the cache does not outlive the entry, but the token may
// expire before the entry does.
func (c *tokenCache) get(hash [32]byte) (*Device, int64, bool) {
	c.checkReconnect()
	c.mu.RLock()
	e, ok := c.entries[hash]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.expires) {
		return nil, 0, false
	}
	dev := e.dev
	return &dev, e.tokenExp, true
}

// generation is read before a lookup and given back to put.
func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches dev unless some revocation arrived since gen was read: the
// answer may then be about a token that was just revoked.
func (c *tokenCache) put(hash [32]byte, dev *Device, tokenExp int64, gen uint64) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.entries) >= c.max {
		for h, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, h)
			}
		}
		if len(c.entries) >= c.max {
			c.entries = make(map[[32]byte]cacheEntry)
		}
	}
	c.entries[hash] = cacheEntry{dev: *dev, expires: now.Add(c.ttl), tokenExp: tokenExp}
}

func (c *tokenCache) evict(hashes [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, h := range hashes {
		if len(h) == 32 {
			delete(c.entries, [32]byte(h))
		}
	}
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries = make(map[[32]byte]cacheEntry)
}

// checkReconnect drops everything after a NATS reconnection: core NATS
// does not replay the revocations published while this process was cut off.
func (c *tokenCache) checkReconnect() {
	if c.nc == nil {
		return
	}
	n := c.nc.Stats().Reconnects
	c.mu.RLock()
	same := n == c.reconnects
	c.mu.RUnlock()
	if same {
		return
	}
	c.mu.Lock()
	c.reconnects = n
	c.gen++
	c.entries = make(map[[32]byte]cacheEntry)
	c.mu.Unlock()
}

// subscribeRevocations evicts revoked tokens from c as the userapi
// announces them. A message that cannot be read clears the whole cache:
// serving a revoked token is worse than a few extra lookups.
func subscribeRevocations(b *bus.Bus, c *tokenCache) (*nats.Subscription, error) {
	subject := b.Subject(TokensRevokedSubject)
	sub, err := b.NC.Subscribe(subject, func(msg *nats.Msg) {
		var m TokensRevoked
		if err := json.Unmarshal(msg.Data, &m); err != nil {
			c.clear()
			return
		}
		c.evict(m.TokenHashes)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	return sub, nil
}
