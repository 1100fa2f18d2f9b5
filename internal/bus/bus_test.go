package bus

import (
	"context"
	"errors"
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
	return openTestBusWith(t, Options{StoreDir: dir, Prefix: prefix})
}

func openTestBusWith(t *testing.T, opts Options) *Bus {
	t.Helper()
	prefix := opts.Prefix
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

// Both paths of a call give the same answers: through NATS, and directly
// to a handler of the same process.
func TestEndpointCarriesMatrixErrors(t *testing.T) {
	for _, wire := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "nats"}[wire], func(t *testing.T) {
			b := openTestBusWith(t, Options{StoreDir: t.TempDir(), Prefix: testPrefix(t), NoLocalCalls: wire})
			defer b.Close()
			testEndpointAnswers(t, b)
		})
	}
}

func testEndpointAnswers(t *testing.T, b *Bus) {
	ep := Endpoint[ping, pong]{Subject: "test.double"}
	err := ep.Serve(b, func(_ context.Context, p *ping) (*pong, error) {
		switch p.N {
		case -1:
			return nil, mxerr.Forbidden("negative")
		case -2:
			panic("boom")
		case -3:
			return nil, errors.New("not a Matrix error")
		case -4:
			return nil, nil
		}
		p.N++ // the caller's request is the caller's: this must not reach it
		return &pong{N: (p.N - 1) * 2}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := &ping{N: 21}
	got, err := ep.Call(ctx, b, req)
	if err != nil || got.N != 42 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if req.N != 21 {
		t.Fatalf("the handler changed the caller's request: %d", req.N)
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
	// Other errors are not shown to the caller.
	_, err = ep.Call(ctx, b, &ping{N: -3})
	if me, ok := mxerr.As(err); !ok || me.Status != 500 || me.Message != "internal error" {
		t.Fatalf("want a bare internal error, got %v", err)
	}
	// No reply and no error: an empty reply.
	if got, err := ep.Call(ctx, b, &ping{N: -4}); err != nil || got == nil || got.N != 0 {
		t.Fatalf("empty reply: %+v, %v", got, err)
	}
	// Nobody serves this one.
	_, err = Endpoint[ping, pong]{Subject: "test.nobody"}.Call(ctx, b, &ping{})
	if me, ok := mxerr.As(err); !ok || me.Status != 503 {
		t.Fatalf("want 503 for an unserved endpoint, got %v", err)
	}
}

// A caller that gives up gets its context's error at once, on both paths,
// while the handler carries on.
func TestEndpointCallerGivesUp(t *testing.T) {
	for _, wire := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "nats"}[wire], func(t *testing.T) {
			b := openTestBusWith(t, Options{StoreDir: t.TempDir(), Prefix: testPrefix(t), NoLocalCalls: wire})
			defer b.Close()
			started, release, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
			ep := Endpoint[ping, pong]{Subject: "test.slow"}
			if err := ep.Serve(b, func(ctx context.Context, p *ping) (*pong, error) {
				close(started)
				<-release
				close(finished)
				return &pong{N: p.N}, ctx.Err()
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := ep.Call(ctx, b, &ping{N: 1})
				errc <- err
			}()
			<-started
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("want context.Canceled, got %v", err)
			}
			close(release)
			<-finished // the handler ran to its end with a live context
		})
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
