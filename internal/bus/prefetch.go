package bus

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// prefetch keeps a pull subscription open on a durable consumer and queues
// what JetStream delivers, so that a batch consumer finds its next
// messages waiting when it comes back from a batch: asking for them then
// (a fetch that finds nothing, a pull request, its answer) cost half a
// millisecond of every message's latency.
//
// JetStream delivers at most the consumer's MaxAckPending messages that
// are not acknowledged, so the queue never holds more than a batch.
// Queued messages are kept alive like the batch being handled (touch),
// so that a long batch does not see them delivered a second time.
type prefetch struct {
	iter jetstream.MessagesContext

	mu    sync.Mutex
	queue []jetstream.Msg
	ready chan struct{} // holds a token while the queue is not empty
	done  chan struct{} // closed when the reader stops
}

func startPrefetch(cons jetstream.Consumer, size int, log *slog.Logger) (*prefetch, error) {
	iter, err := cons.Messages(jetstream.PullMaxMessages(size), jetstream.PullExpiry(fetchWait))
	if err != nil {
		return nil, err
	}
	p := &prefetch{iter: iter, ready: make(chan struct{}, 1), done: make(chan struct{})}
	go p.read(log)
	return p, nil
}

func (p *prefetch) read(log *slog.Logger) {
	defer close(p.done)
	for {
		msg, err := p.iter.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			log.Warn("pull subscription", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		p.queue = append(p.queue, msg)
		p.mu.Unlock()
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
}

// take removes up to n queued messages, oldest first.
func (p *prefetch) take(n int) []jetstream.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, len(p.queue))
	msgs := p.queue[:n:n]
	p.queue = p.queue[n:]
	if len(p.queue) > 0 {
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
	return msgs
}

// touch tells JetStream that the queued messages are still wanted.
func (p *prefetch) touch() {
	p.mu.Lock()
	queued := append([]jetstream.Msg(nil), p.queue...)
	p.mu.Unlock()
	for _, m := range queued {
		_ = m.InProgress()
	}
}

// stop closes the subscription and hands back what is queued, so that it
// is delivered again, in order, to whoever consumes next.
func (p *prefetch) stop() {
	p.iter.Stop()
	<-p.done
	handBack(p.take(len(p.queue)))
}
