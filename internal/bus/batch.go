package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Message is one message of a batch: its stream sequence and its payload.
type Message[T any] struct {
	Seq   uint64
	Value *T
}

// BatchHandler processes a batch, oldest message first. Returning an error
// retries the same batch (with back-off) before any later message.
type BatchHandler[T any] func(ctx context.Context, batch []Message[T]) error

// ConsumeDurableBatch is ConsumeDurable for handlers that do better with
// several messages at once (one transaction for many events): it hands h
// up to size messages, every one that is pending when it asks and none
// that is not yet published (a lone message is not held back to fill a
// batch), and acknowledges them once h succeeds.
//
// Order and crash safety are ConsumeDurable's within a process: batches
// follow each other, and the messages of a batch that was not
// acknowledged (a crash, a stop) come again, in order, before any later
// one. Processes that share the durable consumer share its stream: each
// gets whole batches, but two processes may work on consecutive batches
// at the same time, so handlers that need a strict order across processes
// must use ConsumeDurable. A consumer first created by ConsumeDurable may
// be consumed in batches under the same name: only its bound on pending
// messages changes.
func (t Topic[T]) ConsumeDurableBatch(ctx context.Context, b *Bus, durable string, size int, h BatchHandler[T]) (Subscription, error) {
	size = min(max(size, 1), maxBatch)
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, b.StreamName(t.Stream), jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       ackWait,
		// At most one batch is out: messages left unacknowledged by a dead
		// process are given again (after AckWait) before any later one.
		MaxAckPending: size,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", durable, t.Stream, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	sub := &subscription{cancel: cancel, done: make(chan struct{}), untrack: func() { b.lag.untrack(durable) }}
	go func() {
		defer close(sub.done)
		for runCtx.Err() == nil {
			msgs, err := nextBatch(runCtx, cons, size)
			if err != nil {
				if runCtx.Err() == nil {
					b.log.Warn("fetch failed", "stream", t.Stream, "consumer", durable, "err", err)
					sleepCtx(runCtx, 250*time.Millisecond)
				}
				continue
			}
			if len(msgs) == 0 {
				continue
			}
			t.deliverBatch(runCtx, b, msgs, h)
		}
	}()
	b.lag.track(durable, t.Stream, cons)
	return sub, nil
}

// maxBatch bounds a batch whatever the caller asks: JetStream keeps that
// many messages pending for the consumer.
const maxBatch = 10_000

// nextBatch takes what is pending, up to size, at once; when nothing is, it
// waits up to fetchWait (or until ctx ends) for one message and then takes
// what else arrived meanwhile. Each pull request is complete when this
// returns.
func nextBatch(ctx context.Context, cons jetstream.Consumer, size int) ([]jetstream.Msg, error) {
	msgs, err := collect(cons.FetchNoWait(size))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	batch, done, err := fetchOne(ctx, cons)
	msgs, err = collect(batch, err)
	if done != nil {
		done()
	}
	if err != nil || len(msgs) == 0 || size == 1 {
		return msgs, err
	}
	// Failing to take more is no reason to hold back the one taken.
	more, _ := collect(cons.FetchNoWait(size - 1))
	return append(msgs, more...), nil
}

// collect drains one pull request. A request that ends without messages
// (nothing pending, or the wait ran out) is not an error.
func collect(batch jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for msg := range batch.Messages() {
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// handBack gives messages back to JetStream, oldest first, so that they
// are redelivered in order.
func handBack(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// deliverBatch decodes msgs and hands them to h, retrying h with back-off
// until it succeeds (then every message is acknowledged) or the
// subscription stops (then they are handed back).
func (t Topic[T]) deliverBatch(ctx context.Context, b *Bus, msgs []jetstream.Msg, h BatchHandler[T]) {
	if ctx.Err() != nil {
		handBack(msgs)
		return
	}
	batch := make([]Message[T], 0, len(msgs))
	for _, msg := range msgs {
		meta, err := msg.Metadata()
		if err != nil {
			// Not a JetStream message: nothing to hand to h, ever.
			b.log.Error("message without metadata skipped", "stream", t.Stream, "err", err)
			continue
		}
		v := new(T)
		if err := json.Unmarshal(msg.Data(), v); err != nil {
			// A message that cannot be decoded never will be: skip it loudly.
			b.log.Error("undecodable message skipped", "stream", t.Stream, "seq", meta.Sequence.Stream, "err", err)
			continue
		}
		batch = append(batch, Message[T]{Seq: meta.Sequence.Stream, Value: v})
	}
	if len(batch) > 0 {
		stopBeat := heartbeatAll(msgs)
		ok := t.runBatch(ctx, b, batch, h)
		stopBeat()
		if !ok {
			handBack(msgs)
			return
		}
	}
	// The last acknowledgement waits for JetStream's answer: once it has
	// come, every earlier one has been applied too (they travel in order),
	// so the next fetch is not refused for messages still counted pending.
	for i, msg := range msgs {
		var err error
		if i < len(msgs)-1 {
			err = msg.Ack()
		} else {
			actx, cancel := context.WithTimeout(context.Background(), ackWait)
			err = msg.DoubleAck(actx)
			cancel()
		}
		if err != nil {
			b.log.Warn("ack failed", "stream", t.Stream, "err", err)
		}
	}
}

// runBatch calls h until it succeeds (true) or ctx ends (false).
func (t Topic[T]) runBatch(ctx context.Context, b *Bus, batch []Message[T], h BatchHandler[T]) bool {
	for attempt := 0; ; attempt++ {
		err := h(ctx, batch)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := min(time.Duration(1<<min(attempt, 8))*50*time.Millisecond, 10*time.Second)
		b.log.Warn("stream batch handler failed, retrying", "stream", t.Stream,
			"first_seq", batch[0].Seq, "messages", len(batch), "attempt", attempt, "err", err)
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
}

// heartbeatAll is heartbeat for every message of a batch.
func heartbeatAll(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
