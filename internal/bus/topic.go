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
		// AckWait) before any later one, never overtaken by it.
		AckWait:       30 * time.Second,
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

func (t Topic[T]) consume(b *Bus, cons jetstream.Consumer, name string, h Handler[T], ack bool) (Subscription, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			b.log.Error("message without metadata", "stream", t.Stream, "err", err)
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
		for attempt := 0; ; attempt++ {
			err = h(ctx, meta.Sequence.Stream, v)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				if ack {
					_ = msg.Nak()
				}
				return
			}
			wait := min(time.Duration(1<<min(attempt, 8))*50*time.Millisecond, 10*time.Second)
			b.log.Warn("stream handler failed, retrying", "stream", t.Stream, "seq", meta.Sequence.Stream, "attempt", attempt, "err", err)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				if ack {
					_ = msg.Nak() // redeliver at once to the next consumer
				}
				return
			}
			if ack {
				_ = msg.InProgress()
			}
		}
		if ack && err == nil {
			if err := msg.Ack(); err != nil {
				b.log.Warn("ack failed", "stream", t.Stream, "err", err)
			}
		}
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("consume %s: %w", t.Stream, err)
	}
	b.lag.track(name, t.Stream, cons)
	return &subscription{cc: cc, cancel: cancel, stop: func() { b.lag.untrack(name) }}, nil
}

type subscription struct {
	cc     jetstream.ConsumeContext
	cancel context.CancelFunc
	stop   func()
}

func (s *subscription) Stop() {
	s.cancel()
	s.cc.Stop()
	s.stop()
}
