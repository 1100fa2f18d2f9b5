package sender

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

const (
	us     = "ministere-a.test"
	remote = "ministere-b.test"
	third  = "ministere-c.test"
	late   = "ministere-e.test"
	roomA  = "!a:" + us
	roomB  = "!b:" + us
)

// env is a sender on a fresh database (and bus), with a recording
// transport and a fake room reader.
type env struct {
	t     testing.TB
	ctx   context.Context
	db    *sqlutil.DB
	bus   *bus.Bus
	tr    *fakeTransport
	rooms *fakeRooms
	reg   *prometheus.Registry
	opts  Options
	s     *Sender
}

func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, backend := range sqltest.Backends() {
		t.Run(backend, func(t *testing.T) { fn(t, newEnv(t, backend)) })
	}
}

func newEnv(t testing.TB, backend string) *env {
	e := &env{
		t:     t,
		ctx:   context.Background(),
		db:    sqltest.Open(t, backend),
		tr:    &fakeTransport{},
		rooms: &fakeRooms{servers: map[string][]string{}, extremities: map[string][]string{}, joinedAt: map[string]int64{}},
		reg:   prometheus.NewRegistry(),
	}
	e.opts = Options{
		DB:         e.db,
		ServerName: us,
		Transport:  e.tr,
		Rooms:      e.rooms,
		Log:        quietLogger(),
		Metrics:    e.reg,
		Backoff:    func(int) time.Duration { return time.Millisecond },
		WakeGap:    -1,
	}
	return e
}

// withBus gives the environment a bus: embedded, or the NATS of
// CHAPPE_TEST_NATS under a prefix of its own.
func (e *env) withBus() *env {
	e.t.Helper()
	opts := bus.Options{StoreDir: e.t.TempDir(), Logger: quietLogger()}
	if u := os.Getenv("CHAPPE_TEST_NATS"); u != "" {
		var r [5]byte
		_, _ = rand.Read(r[:])
		opts.URLs = strings.Split(u, ",")
		opts.Prefix = "fs" + hex.EncodeToString(r[:])
	}
	b, err := bus.Open(e.ctx, opts)
	if err != nil {
		e.t.Fatalf("open bus: %v", err)
	}
	e.t.Cleanup(func() {
		if len(opts.URLs) > 0 {
			for _, name := range []string{"ROOM_OUTPUT", "SYNC_OUTPUT", "KEY_CHANGES"} {
				_ = b.JS.DeleteStream(context.Background(), b.StreamName(name))
			}
		}
		b.Close()
	})
	e.bus = b
	e.opts.Bus = b
	return e
}

// start starts a sender with the environment's options (changed by mod),
// stopping the previous one; it is stopped when the test ends.
func (e *env) start(mod ...func(*Options)) *Sender {
	e.t.Helper()
	if e.s != nil {
		e.s.Stop()
	}
	opts := e.opts
	for _, m := range mod {
		m(&opts)
	}
	s, err := New(e.ctx, opts)
	if err != nil {
		e.t.Fatalf("start sender: %v", err)
	}
	if opts.Bus != nil {
		if err := s.StartInputs(e.ctx); err != nil {
			e.t.Fatalf("start sender inputs: %v", err)
		}
	}
	e.t.Cleanup(s.Stop)
	e.s = s
	return s
}

// queueQuietly queues n PDUs of room for dest in one database
// transaction, then wakes the destination: the batches are then cut from
// the whole queue, not from what arrived before the first send.
func (e *env) queueQuietly(room, dest string, from, n int) []string {
	e.t.Helper()
	var ids []string
	err := e.db.WithTx(e.ctx, func(tx *sqlutil.Tx) error {
		for i := from; i < from+n; i++ {
			id := eventID(room, i)
			if _, err := e.s.store.queuePDU(e.ctx, tx, room, id, pdu(room, id), []string{dest}); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.s.metrics.addDepth(dest, n, 0)
	e.s.notify(dest)
	return ids
}

func (e *env) queuePDUs(room string, from, n int) []string {
	e.t.Helper()
	var ids []string
	for i := from; i < from+n; i++ {
		id := eventID(room, i)
		if err := e.s.QueuePDU(e.ctx, room, id, pdu(room, id), e.rooms.serversOf(room)); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func eventID(room string, i int) string {
	return fmt.Sprintf("$%s-%03d", strings.Trim(strings.SplitN(room, ":", 2)[0], "!"), i)
}

func pdu(room, id string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"event_id": id, "room_id": room, "type": "m.room.message", "sender": "@alice:" + us,
		"content": map[string]string{"body": id}})
	return b
}

// fakeTransport records every transaction. While down it fails them;
// with lostReplies it takes them and fails anyway (the reply was lost).
type fakeTransport struct {
	mu          sync.Mutex
	attempts    []gomatrixserverlib.Transaction
	accepted    []gomatrixserverlib.Transaction
	down        bool
	lostReplies int
}

func (f *fakeTransport) SendTransaction(_ context.Context, t gomatrixserverlib.Transaction) (fclient.RespSend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, t)
	if f.down {
		return fclient.RespSend{}, errors.New("connection refused")
	}
	resp := fclient.RespSend{PDUs: map[string]fclient.PDUResult{}}
	seen := false
	for _, a := range f.accepted {
		seen = seen || (a.Destination == t.Destination && a.TransactionID == t.TransactionID)
	}
	if !seen { // a server processes a transaction ID once
		f.accepted = append(f.accepted, t)
	}
	if f.lostReplies > 0 {
		f.lostReplies--
		return fclient.RespSend{}, errors.New("timeout awaiting response headers")
	}
	return resp, nil
}

func (f *fakeTransport) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeTransport) attemptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.attempts)
}

// txns are the transactions dest accepted.
func (f *fakeTransport) txns(dest string) []gomatrixserverlib.Transaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []gomatrixserverlib.Transaction
	for _, t := range f.accepted {
		if string(t.Destination) == dest {
			out = append(out, t)
		}
	}
	return out
}

// pduIDs are the event IDs dest received, in order.
func (f *fakeTransport) pduIDs(dest string) []string {
	var out []string
	for _, t := range f.txns(dest) {
		for _, p := range t.PDUs {
			var ev struct {
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(p, &ev)
			out = append(out, ev.EventID)
		}
	}
	return out
}

// edus are the EDUs of a type dest received, in order.
func (f *fakeTransport) edus(dest, eduType string) []gomatrixserverlib.EDU {
	var out []gomatrixserverlib.EDU
	for _, t := range f.txns(dest) {
		for _, e := range t.EDUs {
			if e.Type == eduType {
				out = append(out, e)
			}
		}
	}
	return out
}

// destinationsContacted lists every destination of an attempt.
func (f *fakeTransport) destinationsContacted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, t := range f.attempts {
		if !slices.Contains(out, string(t.Destination)) {
			out = append(out, string(t.Destination))
		}
	}
	return out
}

type fakeRooms struct {
	mu          sync.Mutex
	servers     map[string][]string
	extremities map[string][]string
	joinedAt    map[string]int64 // room + " " + server -> the position it joined at (none: always in)
}

func (r *fakeRooms) JoinedServers(_ context.Context, roomID string) ([]string, error) {
	return r.serversOf(roomID), nil
}

func (r *fakeRooms) JoinedServersBefore(_ context.Context, roomID string, pos int64) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, server := range r.servers[roomID] {
		if at, ok := r.joinedAt[roomID+" "+server]; !ok || at < pos {
			out = append(out, server)
		}
	}
	return out, nil
}

func (r *fakeRooms) Extremities(_ context.Context, roomID string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.extremities[roomID]), nil
}

func (r *fakeRooms) serversOf(roomID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.servers[roomID])
}

func (r *fakeRooms) set(roomID string, servers ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers[roomID] = servers
}

// join adds a server to the room at a position.
func (r *fakeRooms) join(roomID, server string, pos int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers[roomID] = append(r.servers[roomID], server)
	r.joinedAt[roomID+" "+server] = pos
}

func (r *fakeRooms) setExtremities(roomID string, ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.extremities[roomID] = ids
}

// eventually polls cond until it holds (the destinations run on their own
// goroutines).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger {
	if os.Getenv("CHAPPE_TEST_LOG") != "" {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		return -1
	}
	if out.Gauge != nil {
		return out.Gauge.GetValue()
	}
	return out.Counter.GetValue()
}
