package syncapi

import (
	"context"
	"sync"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/roomserver"
)

// A syncapi running in the same process as the roomserver follows its
// commit feed (roomserver.CommitFeed): the notifier wakes syncs, and push
// rules are evaluated, as soon as an event is committed, instead of a
// JetStream round trip later. The notifier then does not read the Output
// stream at all (one roomserver serves a database, and it is here). The
// push consumer keeps reading it, durably: it does what the feed could
// not (events of a previous run, a failed evaluation, a full queue), and
// skips what the feed already did (pushGate).

// Option tunes New.
type Option func(*SyncAPI)

// WithCommitFeed makes the syncapi follow a roomserver of the same
// process (see above).
func WithCommitFeed(f roomserver.CommitFeed) Option {
	return func(s *SyncAPI) { s.feed = f }
}

// feedQueueMax bounds the events the push evaluation lets wait in memory;
// past it the durable consumer gets them instead.
const feedQueueMax = 4096

// followFeed starts the two queues fed by the roomserver's commits.
func (s *SyncAPI) followFeed() {
	wake := newFeedQueue(0, func(evs []roomserver.OutputEvent) {
		for i := range evs {
			s.notifyLocal(&evs[i])
		}
	})
	push := newFeedQueue(feedQueueMax, func(evs []roomserver.OutputEvent) {
		batch := make([]bus.Message[roomserver.OutputEvent], len(evs))
		for i := range evs {
			batch[i] = bus.Message[roomserver.OutputEvent]{Value: &evs[i]}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.pushOnce(ctx, batch); err != nil {
			// The durable consumer evaluates them in a moment.
			s.log.Warn("push: evaluation from the commit feed failed", "events", len(evs), "err", err)
		}
	})
	s.subs = append(s.subs, wake, push)
	s.feed.FollowCommits(func(evs []roomserver.OutputEvent) {
		wake.add(evs)
		push.add(evs)
	})
}

// notifyLocal hands one event to the notifier, retrying (as the stream
// would) while the room's members cannot be read.
func (s *SyncAPI) notifyLocal(ev *roomserver.OutputEvent) {
	for attempt := 0; ; attempt++ {
		err := s.notifier.onEvent(context.Background(), 0, ev)
		if err == nil {
			return
		}
		s.log.Warn("notify: event from the commit feed", "event", ev.EventID, "attempt", attempt, "err", err)
		select {
		case <-s.done:
			return
		case <-time.After(min(time.Duration(attempt+1)*50*time.Millisecond, 2*time.Second)):
		}
	}
}

// pushGate makes each event's push evaluation happen once in this
// process, by whichever of the feed and the durable consumer brings it
// first. seen holds the positions one path handled and the other has not
// brought yet; positions far behind the newest are forgotten (an event
// whose stream delivery went to another process, say).
type pushGate struct {
	mu     sync.Mutex
	seen   map[int64]struct{}
	newest int64
}

const pushGateWindow = 8192

// pushOnce evaluates the events of batch that neither path has handled.
// Without the feed every event comes once, from the stream, and goes
// straight through.
func (s *SyncAPI) pushOnce(ctx context.Context, batch []bus.Message[roomserver.OutputEvent]) error {
	if s.feed == nil {
		return s.onPushBatch(ctx, batch)
	}
	g := &s.push.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[int64]struct{}{}
	}
	fresh := batch[:0:0]
	for _, m := range batch {
		if _, done := g.seen[m.Value.Pos]; done {
			delete(g.seen, m.Value.Pos) // both paths have brought it now
			continue
		}
		fresh = append(fresh, m)
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := s.onPushBatch(ctx, fresh); err != nil {
		return err
	}
	for _, m := range fresh {
		g.seen[m.Value.Pos] = struct{}{}
		g.newest = max(g.newest, m.Value.Pos)
	}
	if len(g.seen) > pushGateWindow {
		for pos := range g.seen {
			if pos < g.newest-pushGateWindow {
				delete(g.seen, pos)
			}
		}
	}
	return nil
}

// feedQueue runs handle on the events added to it, in order, in its own
// goroutine, so that a commit never waits for the syncapi. What arrived
// while handle ran goes to it in one call (one transaction for the push
// evaluation under load). Past max waiting events (0: no bound), new ones
// are dropped.
type feedQueue struct {
	max    int
	handle func([]roomserver.OutputEvent)

	mu      sync.Mutex
	pending []roomserver.OutputEvent
	stopped bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newFeedQueue(max int, handle func([]roomserver.OutputEvent)) *feedQueue {
	q := &feedQueue{max: max, handle: handle, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *feedQueue) add(evs []roomserver.OutputEvent) {
	q.mu.Lock()
	if q.stopped || q.max > 0 && len(q.pending)+len(evs) > q.max {
		q.mu.Unlock()
		return
	}
	q.pending = append(q.pending, evs...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *feedQueue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.stop:
			return
		case <-q.wake:
		}
		q.mu.Lock()
		evs := q.pending
		q.pending = nil
		q.mu.Unlock()
		if len(evs) > 0 {
			q.handle(evs)
		}
	}
}

// Stop ends the queue; what waits in it is left to the stream.
func (q *feedQueue) Stop() {
	q.mu.Lock()
	q.stopped, q.pending = true, nil
	q.mu.Unlock()
	close(q.stop)
	<-q.done
}
