// Package sender delivers this server's PDUs and EDUs to other servers.
//
// Everything to send is first written to per-destination queues in the
// database (fs_queue_pdus, fs_queue_edus; store.go), so nothing is lost
// across restarts. One goroutine per destination with something queued
// (destination.go) sends it in transactions of at most 50 PDUs and 100
// EDUs, in queue order; a failure backs the destination off exponentially
// with jitter (backoff.go), an inbound request from that server (Wake)
// ends the wait. After an outage a room's long backlog is cut to its
// newest events (catchup.go): the destination fetches the gap itself
// with get_missing_events.
//
// What is queued (queue.go) comes from the other components' streams
// (inputs.go): room events of local users from the roomserver (rooms.go);
// typing, receipts and presence from syncapi (ephemeral.go); device-list
// and cross-signing key changes from the userapi (devicelists.go); and
// to-device messages for remote users, which clientapi hands over through
// the federation's fedapi.SendToDevice (todevice.go).
//
// Nothing is ever queued for this server or for a server outside the
// federation's allow-list.
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Limits of one transaction (server-server API, Transactions).
const (
	maxPDUsPerTxn = 50
	maxEDUsPerTxn = 100
)

const (
	// defaultCatchUpAfter: a room with more PDUs than this waiting for a
	// destination that was down is cut to its newest events.
	defaultCatchUpAfter = 50
	// defaultWakeGap: an inbound request from a server backed off retries
	// at once, but not more often than this (a server whose requests come
	// in while ours fail must not make us hammer it).
	defaultWakeGap = 10 * time.Second
	// sendTimeout bounds one transaction, whatever the transport does.
	sendTimeout = 2 * time.Minute
)

// Transport sends one transaction; the federation client satisfies it.
type Transport interface {
	SendTransaction(ctx context.Context, t gomatrixserverlib.Transaction) (fclient.RespSend, error)
}

// RoomReader is what the sender reads of rooms; the roomserver's
// FederationReader satisfies it.
type RoomReader interface {
	// JoinedServers lists the servers with a member joined to the room.
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	// JoinedServersBefore lists those that were in the room before the
	// event at stream position pos.
	JoinedServersBefore(ctx context.Context, roomID string, pos int64) ([]string, error)
	// Extremities are the room's forward extremities (event IDs).
	Extremities(ctx context.Context, roomID string) ([]string, error)
}

// Options configure a Sender.
type Options struct {
	DB         *sqlutil.DB
	Bus        *bus.Bus // for the inputs and the userapi/roomserver queries
	ServerName string
	// Allowed tells whether a server may be talked to (the allow-list).
	Allowed   func(server string) bool
	Transport Transport
	Rooms     RoomReader
	// Sync reads receipts and presence; nil reads syncapi's tables.
	Sync SyncReader
	// Presence sends m.presence (presence.enabled).
	Presence bool
	Log      *slog.Logger
	Metrics  *prometheus.Registry // nil: no metrics

	// Backoff is the wait after the n-th failure in a row (n >= 1); nil:
	// DefaultBackoff. Tests shorten it.
	Backoff func(failures int) time.Duration
	// WakeGap is the least time between two attempts that Wake starts;
	// 0: 10 s, negative: none.
	WakeGap time.Duration
	// CatchUpAfter: see defaultCatchUpAfter; 0: 50.
	CatchUpAfter int
}

// Sender owns the queues and their destination goroutines.
type Sender struct {
	opts    Options
	log     *slog.Logger
	store   *store
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	dests map[string]*destination

	inputs []bus.Subscription
}

// New migrates the sender's tables and resumes every queue left in the
// database.
func New(ctx context.Context, opts Options) (*Sender, error) {
	if opts.DB == nil || opts.Transport == nil || opts.Rooms == nil || opts.ServerName == "" {
		return nil, errors.New("sender: database, transport, room reader and server name are required")
	}
	if opts.Allowed == nil {
		opts.Allowed = func(string) bool { return true }
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.WakeGap == 0 {
		opts.WakeGap = defaultWakeGap
	}
	if opts.CatchUpAfter <= 0 {
		opts.CatchUpAfter = defaultCatchUpAfter
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Sync == nil {
		opts.Sync = sqlSyncReader{db: opts.DB}
	}
	if err := opts.DB.Migrate(ctx, migrationList, migrations); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	s := &Sender{
		opts:    opts,
		log:     opts.Log,
		store:   &store{db: opts.DB},
		metrics: newMetrics(opts.Metrics),
		dests:   map[string]*destination{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.resume(ctx); err != nil {
		s.cancel()
		s.wg.Wait()
		return nil, err
	}
	return s, nil
}

// resume loads the destinations' states and starts a goroutine for each
// one with something queued.
func (s *Sender) resume(ctx context.Context) error {
	states, err := s.store.destinations(ctx)
	if err != nil {
		return err
	}
	depths, err := s.store.depths(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for name, st := range states {
		d := s.destLocked(name)
		d.failures, d.retryAt = st.failures, st.retryAt
		s.metrics.failures(name, st.failures)
	}
	s.mu.Unlock()
	for name, dp := range depths {
		if !s.sendable(name) {
			n, err := s.store.dropDestination(ctx, name)
			if err != nil {
				return err
			}
			s.log.Warn("queue of a server outside the federation dropped", "destination", name, "items", n)
			continue
		}
		s.metrics.depth(name, dp.pdus, dp.edus)
		s.notify(name)
	}
	return nil
}

// Stop ends the inputs and the destination goroutines; what is queued
// stays in the database for the next start.
func (s *Sender) Stop() {
	// Each consumer takes up to a pull's wait to stop: stop them together.
	var stopping sync.WaitGroup
	for _, sub := range s.inputs {
		stopping.Go(sub.Stop)
	}
	stopping.Wait()
	s.inputs = nil
	s.cancel()
	s.wg.Wait()
}

// sendable tells whether anything may be sent to server.
func (s *Sender) sendable(server string) bool {
	return server != "" && !strings.EqualFold(server, s.opts.ServerName) && s.opts.Allowed(server)
}

// destinations keeps the servers that may be sent to, once each, in a
// stable order.
func (s *Sender) destinations(servers []string) []string {
	out := make([]string, 0, len(servers))
	for _, srv := range servers {
		if s.sendable(srv) && !slices.Contains(out, srv) {
			out = append(out, srv)
		}
	}
	slices.Sort(out)
	return out
}

// Wake tells the sender that server just contacted us: if it is backed
// off, its queue is retried now.
func (s *Sender) Wake(server string) {
	if !s.sendable(server) {
		return
	}
	s.mu.Lock()
	d, ok := s.dests[server]
	s.mu.Unlock()
	if !ok || !d.wake(time.Now(), s.opts.WakeGap) {
		return
	}
	s.notify(server)
}

// destLocked returns the destination, created if new; s.mu is held.
func (s *Sender) destLocked(name string) *destination {
	d, ok := s.dests[name]
	if !ok {
		d = &destination{name: name, s: s, poke: make(chan struct{}, 1)}
		s.dests[name] = d
	}
	return d
}

// notify makes sure the destination's goroutine runs and looks at its
// queue again.
func (s *Sender) notify(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.destLocked(name)
	if d.running {
		select {
		case d.poke <- struct{}{}:
		default:
		}
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	d.running = true
	s.wg.Add(1)
	go d.run()
}

// idle ends the destination's goroutine unless something was queued since
// it last looked (a poke): then it goes on.
func (s *Sender) idle(d *destination) (stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-d.poke:
		return false
	default:
	}
	d.running = false
	return true
}
