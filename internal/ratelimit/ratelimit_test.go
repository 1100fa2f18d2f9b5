package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/config"
)

func newTestLimiter(t *testing.T, actions map[string]config.RateLimit) (*Limiter, *time.Time) {
	t.Helper()
	l, err := New(config.RateLimits{Enabled: true, Actions: actions})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	return l, &now
}

func TestBucketBurstThenRefill(t *testing.T) {
	l, now := newTestLimiter(t, map[string]config.RateLimit{"login": {PerSecond: 2, Burst: 3}})
	for i := range 3 {
		if ok, _ := l.Allow("login", "1.2.3.4"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("login", "1.2.3.4")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: got ok=%v wait=%v, want refused for 500ms", ok, wait)
	}
	// Others and other actions have their own buckets.
	if ok, _ := l.Allow("login", "5.6.7.8"); !ok {
		t.Fatal("another client was limited")
	}
	if ok, _ := l.Allow("message", "1.2.3.4"); !ok {
		t.Fatal("an unconfigured action was limited")
	}
	*now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("login", "1.2.3.4"); !ok {
		t.Fatal("no token after the refill time")
	}
	if ok, _ := l.Allow("login", "1.2.3.4"); ok {
		t.Fatal("refill gave more than one token")
	}
	// A long pause refills up to the burst, not beyond.
	*now = now.Add(time.Hour)
	for i := range 3 {
		if ok, _ := l.Allow("login", "1.2.3.4"); !ok {
			t.Fatalf("request %d after a pause refused", i+1)
		}
	}
	if ok, _ := l.Allow("login", "1.2.3.4"); ok {
		t.Fatal("bucket grew past its burst")
	}
}

func TestIdleBucketsAreForgotten(t *testing.T) {
	l, now := newTestLimiter(t, map[string]config.RateLimit{
		"join": {PerSecond: 1, Burst: 2},
		"slow": {PerSecond: 0.001, Burst: 2}, // a token every 1000s
	})
	// Many clients, each acting once, 1ms apart: each bucket refills a
	// second after its only use.
	for i := range 5000 {
		*now = now.Add(time.Millisecond)
		l.Allow("join", fmt.Sprint("user", i))
	}
	if l.Len() >= 5000 {
		t.Fatalf("%d buckets held: the doubling sweep did not run", l.Len())
	}
	*now = now.Add(2 * sweepEvery)
	l.Allow("join", "last")
	if l.Len() != 1 {
		t.Fatalf("%d buckets held after every one refilled, want 1", l.Len())
	}
	// A bucket still draining is kept: forgetting it would hand out a
	// fresh burst.
	l.Allow("slow", "busy")
	*now = now.Add(2 * sweepEvery)
	l.Allow("join", "other")
	if _, ok := l.buckets[key{"slow", "busy"}]; !ok {
		t.Fatal("a draining bucket was forgotten")
	}
}

func TestInvalidLimits(t *testing.T) {
	for _, rl := range []config.RateLimit{{PerSecond: 0, Burst: 1}, {PerSecond: 1, Burst: 0}} {
		if _, err := New(config.RateLimits{Actions: map[string]config.RateLimit{"x": rl}}); err == nil {
			t.Errorf("%+v accepted", rl)
		}
	}
}
