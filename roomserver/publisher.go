package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// publisher puts committed events on the Output topic, one at a time and
// in position order: commit enqueues under the position mutex, and one
// goroutine publishes. Commits do not wait for NATS; a full queue slows
// them down instead of dropping anything.
type publisher struct {
	bus    *bus.Bus
	log    *slog.Logger
	queue  chan []OutputEvent
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	followers followers // components of this process fed first (commit_feed.go)
}

func newPublisher(b *bus.Bus, log *slog.Logger) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	return &publisher{bus: b, log: log, queue: make(chan []OutputEvent, 4096), done: make(chan struct{}), ctx: ctx, cancel: cancel}
}

func (p *publisher) enqueue(outs []OutputEvent) {
	p.feed(outs)
	p.queue <- outs
}

func (p *publisher) run() {
	defer close(p.done)
	for outs := range p.queue {
		for i := range outs {
			p.publish(&outs[i])
		}
	}
}

// publish retries until NATS takes the event: skipping one would leave a
// hole in every consumer's stream.
func (p *publisher) publish(out *OutputEvent) {
	for attempt := 0; ; attempt++ {
		_, err := Output.Publish(p.ctx, p.bus, out)
		if err == nil {
			return
		}
		if p.ctx.Err() != nil {
			p.log.Error("output event not published before shutdown; it is republished at next start",
				"pos", out.Pos, "event_id", out.EventID)
			return
		}
		wait := min(time.Duration(1<<min(attempt, 8))*20*time.Millisecond, 5*time.Second)
		p.log.Warn("publish output event failed, retrying", "pos", out.Pos, "attempt", attempt, "err", err)
		select {
		case <-time.After(wait):
		case <-p.ctx.Done():
		}
	}
}

// stop publishes what is queued (giving up after timeout) and ends.
func (p *publisher) stop(timeout time.Duration) {
	close(p.queue)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cancel()
		<-p.done
	}
	p.cancel()
}

// catchUp republishes the events that were committed but not published
// before the last stop (a crash between commit and publish), so the
// stream holds every position. It runs before the roomserver takes
// requests. An empty stream is taken as new or expired: nothing is
// replayed then, rather than the whole history.
func catchUp(ctx context.Context, db *sqlutil.DB, b *bus.Bus, log *slog.Logger) error {
	last, ok, err := lastPublishedPos(ctx, b)
	if err != nil || !ok {
		return err
	}
	n := 0
	for {
		outs, err := outputsAfter(ctx, db, last, 500)
		if err != nil {
			return err
		}
		if len(outs) == 0 {
			break
		}
		for i := range outs {
			if _, err := Output.Publish(ctx, b, &outs[i]); err != nil {
				return fmt.Errorf("republish position %d: %w", outs[i].Pos, err)
			}
		}
		last = outs[len(outs)-1].Pos
		n += len(outs)
	}
	if n > 0 {
		log.Warn("republished output events missing from the stream", "count", n, "up_to", last)
	}
	return nil
}

func lastPublishedPos(ctx context.Context, b *bus.Bus) (int64, bool, error) {
	stream, err := b.JS.Stream(ctx, b.StreamName(Output.Stream))
	if err != nil {
		return 0, false, fmt.Errorf("open output stream: %w", err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, b.Subject(Output.Subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read last output event: %w", err)
	}
	var out OutputEvent
	if err := json.Unmarshal(msg.Data, &out); err != nil {
		return 0, false, fmt.Errorf("decode last output event: %w", err)
	}
	return out.Pos, true, nil
}

// outputsAfter reads up to limit stored events after position pos as
// output events.
func outputsAfter(ctx context.Context, db *sqlutil.DB, pos int64, limit int) ([]OutputEvent, error) {
	rows, err := db.QueryContext(ctx, `SELECT e.stream_pos, r.room_id, r.version, e.event_id, e.type, e.sender,
		e.state_key, e.membership, e.json
		FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
		WHERE e.stream_pos > $1 AND e.backfilled = FALSE ORDER BY e.stream_pos ASC LIMIT $2`, pos, limit)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", pos, err)
	}
	defer rows.Close()
	var outs []OutputEvent
	for rows.Next() {
		var (
			o          OutputEvent
			stateKey   *string
			membership *string
			data       []byte
		)
		if err := rows.Scan(&o.Pos, &o.RoomID, &o.RoomVersion, &o.EventID, &o.Type, &o.Sender, &stateKey, &membership, &data); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		o.StateKey = stateKey
		if membership != nil {
			o.Membership = *membership
		}
		o.Event = data
		outs = append(outs, o)
	}
	return outs, rows.Err()
}
