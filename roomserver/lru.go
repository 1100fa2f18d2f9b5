package roomserver

import (
	"container/list"
	"sync"
)

// lru is a small concurrency-safe least-recently-used cache. It caches
// immutable values (state maps, parsed events); callers never mutate what
// they get from it. It holds at most cap entries and, when it has a cost
// function, entries costing at most maxCost together, whatever comes
// first: a count alone bounds nothing when values range from a few bytes
// to megabytes (the state of a room of 10 members or of 10,000).
type lru[K comparable, V any] struct {
	mu      sync.Mutex
	cap     int
	maxCost int
	cost    func(V) int // nil: every entry costs 0
	used    int
	order   *list.List // front = most recent; elements hold *lruEntry
	items   map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key   K
	value V
	cost  int
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{cap: capacity, order: list.New(), items: make(map[K]*list.Element)}
}

// newCostLRU is an lru also bounded by the total cost of its entries. An
// entry that costs more than maxCost alone is not kept.
func newCostLRU[K comparable, V any](capacity, maxCost int, cost func(V) int) *lru[K, V] {
	c := newLRU[K, V](capacity)
	c.maxCost, c.cost = maxCost, cost
	return c
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruEntry[K, V]).value, true
	}
	var zero V
	return zero, false
}

func (c *lru[K, V]) put(k K, v V) {
	cost := 0
	if c.cost != nil {
		cost = c.cost(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cost != nil && cost > c.maxCost {
		// Not kept, and not let flush the cache either.
		if el, ok := c.items[k]; ok {
			c.removeElement(el)
		}
		return
	}
	if el, ok := c.items[k]; ok {
		e := el.Value.(*lruEntry[K, V])
		c.used += cost - e.cost
		e.value, e.cost = v, cost
		c.order.MoveToFront(el)
	} else {
		c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, value: v, cost: cost})
		c.used += cost
	}
	for c.order.Len() > c.cap || c.cost != nil && c.used > c.maxCost {
		c.removeElement(c.order.Back())
	}
}

func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.removeElement(el)
	}
}

// removeElement drops an entry; called with mu held.
func (c *lru[K, V]) removeElement(el *list.Element) {
	e := el.Value.(*lruEntry[K, V])
	c.order.Remove(el)
	delete(c.items, e.key)
	c.used -= e.cost
}

// len is the number of entries (for tests).
func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
