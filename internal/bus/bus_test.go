package bus

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

type ping struct{ N int }
type pong struct{ N int }

// openTestBus opens the embedded server in dir, or the external NATS of
// CHAPPE_TEST_NATS with the given prefix.
func openTestBus(t *testing.T, dir, prefix string) *Bus {
	t.Helper()
	opts := Options{StoreDir: dir, Prefix: prefix}
	if u := os.Getenv("CHAPPE_TEST_NATS"); u != "" {
		opts.URLs = strings.Split(u, ",")
	}
	b, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.URLs) > 0 {
		t.Cleanup(func() { deleteStreams(opts, prefix) })
	}
	return b
}

// deleteStreams removes a test's streams from a shared NATS.
func deleteStreams(opts Options, prefix string) {
	b, err := Open(context.Background(), opts)
	if err != nil {
		return
	}
	defer b.Close()
	for _, name := range []string{"TEST_RESUME", "TEST_ORDER"} {
		_ = b.JS.DeleteStream(context.Background(), b.StreamName(name))
	}
}

func testPrefix(t *testing.T) string {
	return "bt" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_") + time.Now().Format("150405.000000")
}

func TestEndpointCarriesMatrixErrors(t *testing.T) {
	b := openTestBus(t, t.TempDir(), testPrefix(t))
	defer b.Close()
	ep := Endpoint[ping, pong]{Subject: "test.double"}
	err := ep.Serve(b, func(_ context.Context, p *ping) (*pong, error) {
		switch p.N {
		case -1:
			return nil, mxerr.Forbidden("negative")
		case -2:
			panic("boom")
		}
		return &pong{N: p.N * 2}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := ep.Call(ctx, b, &ping{N: 21})
	if err != nil || got.N != 42 {
		t.Fatalf("got %+v, %v", got, err)
	}
	_, err = ep.Call(ctx, b, &ping{N: -1})
	if me, ok := mxerr.As(err); !ok || me.Code != "M_FORBIDDEN" || me.Status != 403 {
		t.Fatalf("want M_FORBIDDEN, got %v", err)
	}
	// A panicking handler answers M_UNKNOWN and the endpoint keeps serving.
	_, err = ep.Call(ctx, b, &ping{N: -2})
	if me, ok := mxerr.As(err); !ok || me.Status != 500 {
		t.Fatalf("want a 500 Matrix error, got %v", err)
	}
	if got, err := ep.Call(ctx, b, &ping{N: 1}); err != nil || got.N != 2 {
		t.Fatalf("after panic: %+v, %v", got, err)
	}
	// Nobody serves this one.
	_, err = Endpoint[ping, pong]{Subject: "test.nobody"}.Call(ctx, b, &ping{})
	if me, ok := mxerr.As(err); !ok || me.Status != 503 {
		t.Fatalf("want 503 for an unserved endpoint, got %v", err)
	}
}

// A durable consumer resumes after the last acknowledged message when the
// process (and, embedded, NATS with it) restarts.
func TestDurableConsumerResumesAfterRestart(t *testing.T) {
	dir, prefix := t.TempDir(), testPrefix(t)
	topic := Topic[ping]{Stream: "TEST_RESUME", Subject: "test.resume"}
	ctx := context.Background()

	b := openTestBus(t, dir, prefix)
	if err := topic.Ensure(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := topic.Ensure(ctx, b); err != nil { // idempotent
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := topic.Publish(ctx, b, &ping{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var seen []int
	three := make(chan struct{})
	sub, err := topic.ConsumeDurable(ctx, b, "resumer", func(_ context.Context, _ uint64, p *ping) error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 3 {
			return context.Canceled // refuse the 4th: it must come again later
		}
		seen = append(seen, p.N)
		if len(seen) == 3 {
			close(three)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-three
	sub.Stop()
	time.Sleep(100 * time.Millisecond) // let the last acks land
	b.Close()

	b = openTestBus(t, dir, prefix)
	defer b.Close()
	if err := topic.Ensure(ctx, b); err != nil {
		t.Fatal(err)
	}
	rest := make(chan int, 10)
	sub, err = topic.ConsumeDurable(ctx, b, "resumer", func(_ context.Context, _ uint64, p *ping) error {
		rest <- p.N
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	restarted := time.Now()
	defer func() { t.Logf("resumed %v after the restart", time.Since(restarted)) }()
	for _, want := range []int{4, 5} {
		select {
		case got := <-rest:
			if got != want {
				t.Fatalf("after restart got %d, want %d (seen before: %v)", got, want, seen)
			}
		case <-time.After(ackWait + 10*time.Second):
			t.Fatalf("no message %d after restart", want)
		}
	}
}

// A failing handler is retried on the same message: later ones wait.
func TestConsumerKeepsOrderOnFailure(t *testing.T) {
	b := openTestBus(t, t.TempDir(), testPrefix(t))
	defer b.Close()
	ctx := context.Background()
	topic := Topic[ping]{Stream: "TEST_ORDER", Subject: "test.order"}
	if err := topic.Ensure(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := topic.Publish(ctx, b, &ping{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan int, 10)
	failures := 0
	sub, err := topic.ConsumeDurable(ctx, b, "orderly", func(_ context.Context, _ uint64, p *ping) error {
		if p.N == 2 && failures < 2 {
			failures++
			return context.DeadlineExceeded
		}
		got <- p.N
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	for _, want := range []int{1, 2, 3} {
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("got %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %d", want)
		}
	}
}
