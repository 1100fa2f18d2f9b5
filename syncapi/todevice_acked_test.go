package syncapi

import (
	"strconv"
	"testing"
)

func TestAckedPositionsAreBounded(t *testing.T) {
	var a ackedPositions
	a.store("@u:test\x00D", 7)
	a.store("@u:test\x00D", 9) // the same device again: still one key
	if got := a.through("@u:test\x00D"); got != 9 {
		t.Fatalf("through = %d, want 9", got)
	}
	if got := a.through("@v:test\x00D"); got != 0 {
		t.Fatalf("a device never acknowledged: %d", got)
	}
	for i := 2; i <= maxAckedPositions; i++ {
		a.store(strconv.Itoa(i), int64(i))
	}
	if got := a.through("@u:test\x00D"); got != 9 {
		t.Fatalf("at the bound, the first device is forgotten already: %d", got)
	}
	a.store("one too many", 1)
	if got := a.through("@u:test\x00D"); got != 0 {
		t.Fatalf("past the bound, the first device is still remembered: %d", got)
	}
	if n := a.n.Load(); n != 0 {
		t.Fatalf("%d keys counted after the reset", n)
	}
}
