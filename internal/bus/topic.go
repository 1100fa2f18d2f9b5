package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Topic is a typed JetStream stream with one subject. Facts that must not be
// lost (new room events, to-device messages, device-list changes) travel on
// topics; consumers pick up where they stopped after any restart.
type Topic[T any] struct {
	Stream  string        // stream name without prefix, e.g. "ROOM_OUTPUT"
	Subject string        // subject without prefix, e.g. "roomserver.output"
	MaxAge  time.Duration // how long messages are kept; 0 = for ever
}

// Ensure creates or updates the stream; safe to call at every start-up.
func (t Topic[T]) Ensure(ctx context.Context, b *Bus) error {
	cfg := jetstream.StreamConfig{
		Name:      b.StreamName(t.Stream),
		Subjects:  []string{b.Subject(t.Subject)},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxAge:    t.MaxAge,
		Replicas:  b.replicas,
	}
	if b.server != nil {
		cfg.Replicas = 1
	}
	if _, err := b.JS.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return nil
}

// Publish appends v to the stream and returns its sequence number once
// JetStream has stored it.
func (t Topic[T]) Publish(ctx context.Context, b *Bus, v *T) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", t.Subject, err)
	}
	ack, err := b.JS.Publish(ctx, b.Subject(t.Subject), data)
	if err != nil {
		return 0, fmt.Errorf("publish %s: %w", t.Subject, err)
	}
	return ack.Sequence, nil
}

// Handler processes one message. Returning an error retries the same
// message (with back-off) before any later one: order is kept.
type Handler[T any] func(ctx context.Context, seq uint64, v *T) error

// Subscription stops a consumer.
type Subscription interface{ Stop() }

// ConsumeDurable delivers every message to h, in order, through a durable
// consumer named durable: after a restart of this process or of NATS it
// resumes after the last message h accepted.
func (t Topic[T]) ConsumeDurable(ctx context.Context, b *Bus, durable string, h Handler[T]) (Subscription, error) {
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, b.StreamName(t.Stream), jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// One message in flight keeps the order through crashes: a message
		// left unacknowledged by a dead process is redelivered (after
		// AckWait) before any later one, never overtaken by it. AckWait is
		// short so that a restart resumes quickly; a slow handler keeps its
		// message with InProgress heartbeats (deliver).
		AckWait:       ackWait,
		MaxAckPending: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", durable, t.Stream, err)
	}
	return t.consume(b, cons, durable, h, true)
}

// ConsumeNew delivers messages published from now on, in order, without
// keeping a position: for processes that read the facts from the database
// and only need to be woken (sync notifiers).
func (t Topic[T]) ConsumeNew(ctx context.Context, b *Bus, h Handler[T]) (Subscription, error) {
	cons, err := b.JS.OrderedConsumer(ctx, b.StreamName(t.Stream), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", t.Stream, err)
	}
	return t.consume(b, cons, "ordered-"+t.Stream, h, false)
}

// consume runs the delivery loop. Durable consumers fetch in bounded pull
// requests (fetchWait) that Stop cancels at once; what a delivery held is
// handed back (Nak). A message the server sent into a request just
// cancelled waits AckWait before it is delivered again, so a consumer
// restarted at that moment resumes a few seconds later. Ordered consumers
// have nothing to hand back.
func (t Topic[T]) consume(b *Bus, cons jetstream.Consumer, name string, h Handler[T], ack bool) (Subscription, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscription{cancel: cancel, done: make(chan struct{}), untrack: func() { b.lag.untrack(name) }}
	if ack {
		go func() {
			defer close(sub.done)
			for ctx.Err() == nil {
				// One message per pull request: a Nak while stopping
				// must not be redelivered into a request still open.
				batch, done, err := fetchOne(ctx, cons)
				if err != nil {
					if ctx.Err() == nil {
						b.log.Warn("fetch failed", "stream", t.Stream, "consumer", name, "err", err)
						sleepCtx(ctx, 250*time.Millisecond)
					}
					continue
				}
				for msg := range batch.Messages() {
					t.deliver(ctx, b, msg, h, true)
				}
				done()
			}
		}()
	} else {
		cc, err := cons.Consume(func(msg jetstream.Msg) { t.deliver(ctx, b, msg, h, false) })
		if err != nil {
			cancel()
			return nil, fmt.Errorf("consume %s: %w", t.Stream, err)
		}
		go func() {
			<-ctx.Done()
			cc.Stop()
			close(sub.done)
		}()
	}
	b.lag.track(name, t.Stream, cons)
	return sub, nil
}

// fetchOne opens a pull request for one message, ended by ctx or after
// fetchWait. The caller drains the batch's messages, then calls done.
func fetchOne(ctx context.Context, cons jetstream.Consumer) (batch jetstream.MessageBatch, done func(), err error) {
	fetchCtx, cancel := context.WithTimeout(ctx, fetchWait)
	batch, err = cons.Fetch(1, jetstream.FetchContext(fetchCtx))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return batch, cancel, nil
}

const (
	// fetchWait bounds a pull request.
	fetchWait = time.Second
	// ackWait is how long a delivered message may go unacknowledged
	// before JetStream gives it again.
	ackWait = 5 * time.Second
)

// heartbeat tells JetStream that msg is still being worked on, so that a
// long handler does not see its message delivered a second time.
func heartbeat(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// deliver hands one message to h, retrying h with back-off until it
// succeeds or the subscription stops (then the message is handed back).
func (t Topic[T]) deliver(ctx context.Context, b *Bus, msg jetstream.Msg, h Handler[T], ack bool) {
	nak := func() {
		if ack {
			_ = msg.Nak()
		}
	}
	if ctx.Err() != nil {
		nak()
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		b.log.Error("message without metadata", "stream", t.Stream, "err", err)
		nak()
		return
	}
	v := new(T)
	if err := json.Unmarshal(msg.Data(), v); err != nil {
		// A message that cannot be decoded never will be: skip it loudly.
		b.log.Error("undecodable message skipped", "stream", t.Stream, "seq", meta.Sequence.Stream, "err", err)
		if ack {
			_ = msg.Ack()
		}
		return
	}
	if ack {
		stopBeat := heartbeat(msg)
		defer stopBeat()
	}
	for attempt := 0; ; attempt++ {
		err = h(ctx, meta.Sequence.Stream, v)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			nak()
			return
		}
		wait := min(time.Duration(1<<min(attempt, 8))*50*time.Millisecond, 10*time.Second)
		b.log.Warn("stream handler failed, retrying", "stream", t.Stream, "seq", meta.Sequence.Stream, "attempt", attempt, "err", err)
		if !sleepCtx(ctx, wait) {
			nak()
			return
		}
	}
	if ack {
		if err := msg.Ack(); err != nil {
			b.log.Warn("ack failed", "stream", t.Stream, "err", err)
		}
	}
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

type subscription struct {
	cancel  context.CancelFunc
	done    chan struct{}
	untrack func()
}

// Stop ends delivery and returns once the loop has handed back what it
// held.
func (s *subscription) Stop() {
	s.cancel()
	<-s.done
	s.untrack()
}
