package sender

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/syncapi"
	"github.com/chappe-matrix/chappe/userapi"
)

// Durable consumers of the sender. Each handler queues in the database
// before it returns, and the message is acknowledged after: a crash
// between the two sends the message again, which queues nothing twice
// for PDUs (unique per destination) and at worst repeats an EDU.
const (
	roomConsumer = "federation-sender"
	syncConsumer = "federation-sender-sync"
	keysConsumer = "federation-sender-keys"
)

// StartInputs starts the consumers of the roomserver's output, syncapi's
// output and the userapi's key changes; Stop ends them.
func (s *Sender) StartInputs(ctx context.Context) error {
	if s.opts.Bus == nil {
		return errors.New("sender inputs: no bus")
	}
	if err := roomserver.Output.Ensure(ctx, s.opts.Bus); err != nil {
		return err
	}
	if err := syncapi.Output.Ensure(ctx, s.opts.Bus); err != nil {
		return err
	}
	if err := userapi.KeyChanges.Ensure(ctx, s.opts.Bus); err != nil {
		return err
	}
	starts := []func() (bus.Subscription, error){
		func() (bus.Subscription, error) {
			stream, err := s.opts.Bus.JS.Stream(ctx, s.opts.Bus.StreamName(roomserver.Output.Stream))
			if err != nil {
				return nil, fmt.Errorf("room output stream: %w", err)
			}
			return consume(ctx, s, roomserver.Output, roomConsumer, (&roomInput{s: s, stream: stream}).handle)
		},
		func() (bus.Subscription, error) { return consume(ctx, s, syncapi.Output, syncConsumer, s.onSyncOutput) },
		func() (bus.Subscription, error) {
			return consume(ctx, s, userapi.KeyChanges, keysConsumer, s.onKeyChange)
		},
	}
	for _, start := range starts {
		sub, err := start()
		if err != nil {
			return err
		}
		s.inputs = append(s.inputs, sub)
	}
	return nil
}

// consume runs h on t through a durable consumer, skipping the messages
// that were already in the stream when the sender first ran: turning the
// federation on for an existing server must not send years of history.
func consume[T any](ctx context.Context, s *Sender, t bus.Topic[T], durable string, h bus.Handler[T]) (bus.Subscription, error) {
	skip, err := s.streamStart(ctx, t.Stream)
	if err != nil {
		return nil, err
	}
	return t.ConsumeDurable(ctx, s.opts.Bus, durable, func(ctx context.Context, seq uint64, v *T) error {
		if seq <= skip {
			return nil
		}
		return h(ctx, seq, v)
	})
}

// streamStart is the last sequence of stream when the sender first
// consumed it (recorded then). A stream created since (NATS lost its
// store) holds only news: nothing is skipped.
func (s *Sender) streamStart(ctx context.Context, stream string) (uint64, error) {
	b := s.opts.Bus
	st, err := b.JS.Stream(ctx, b.StreamName(stream))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info := st.CachedInfo()
	created, last := info.Created.UnixNano(), int64(info.State.LastSeq)
	db := s.opts.DB
	if _, err := db.ExecContext(ctx, `INSERT INTO fs_stream_starts (stream, stream_created_ns, skip_through) VALUES ($1, $2, $3)
		ON CONFLICT (stream) DO NOTHING`, stream, created, last); err != nil {
		return 0, fmt.Errorf("record start of %s: %w", stream, err)
	}
	var recordedCreated, skip int64
	err = db.QueryRowContext(ctx, `SELECT stream_created_ns, skip_through FROM fs_stream_starts WHERE stream = $1`, stream).
		Scan(&recordedCreated, &skip)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("start of %s vanished", stream)
	}
	if err != nil {
		return 0, fmt.Errorf("read start of %s: %w", stream, err)
	}
	if recordedCreated != created {
		if _, err := db.ExecContext(ctx, `UPDATE fs_stream_starts SET stream_created_ns = $2, skip_through = 0 WHERE stream = $1`,
			stream, created); err != nil {
			return 0, fmt.Errorf("record start of %s: %w", stream, err)
		}
		return 0, nil
	}
	return uint64(skip), nil
}
