package roomserver

import "testing"

func TestLRUEvictsOldestByCount(t *testing.T) {
	c := newLRU[int, string](2)
	c.put(1, "a")
	c.put(2, "b")
	c.get(1) // 2 is now the oldest
	c.put(3, "c")
	if _, ok := c.get(2); ok {
		t.Fatal("2 should have been evicted")
	}
	for _, k := range []int{1, 3} {
		if _, ok := c.get(k); !ok {
			t.Fatalf("%d should be cached", k)
		}
	}
}

func TestCostLRUBoundsTotalCost(t *testing.T) {
	c := newCostLRU[int](100, 10, func(s string) int { return len(s) })
	c.put(1, "aaaa")
	c.put(2, "bbbb")
	c.put(3, "cccc") // 12 > 10: 1 goes
	if _, ok := c.get(1); ok {
		t.Fatal("1 should have been evicted by cost")
	}
	if c.len() != 2 || c.used != 8 {
		t.Fatalf("len %d, used %d; want 2, 8", c.len(), c.used)
	}
	c.put(2, "bbbbbb") // replacing updates the cost: 10
	if c.len() != 2 || c.used != 10 {
		t.Fatalf("len %d, used %d; want 2, 10", c.len(), c.used)
	}
	c.put(4, "this is too big alone")
	if _, ok := c.get(4); ok || c.len() != 2 || c.used != 10 {
		t.Fatalf("an entry costing more than the bound is neither kept nor flushes the rest (len %d, used %d)", c.len(), c.used)
	}
	c.remove(2)
	c.remove(3)
	if c.len() != 0 || c.used != 0 {
		t.Fatalf("after remove: len %d, used %d", c.len(), c.used)
	}
}
