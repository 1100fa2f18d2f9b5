package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// maxReadAhead bounds the roomserver output messages queued in one
// database transaction.
const maxReadAhead = 100

// roomInput queues the roomserver's output. The durable consumer hands it
// one message at a time; to spend one commit on many events (a commit is
// most of the cost on PostgreSQL) it reads the messages after the one
// handed straight from the stream and queues them all, then acknowledges
// their deliveries without queueing them again. A crash in between
// queues them a second time, which changes nothing (a PDU is queued once
// per destination).
type roomInput struct {
	s      *Sender
	stream jetstream.Stream
	// queuedThrough is the stream sequence up to which messages are
	// queued; only the consumer's goroutine touches it.
	queuedThrough uint64
}

func (r *roomInput) handle(ctx context.Context, seq uint64, ev *roomserver.OutputEvent) error {
	if seq <= r.queuedThrough {
		return nil
	}
	events, last := []*roomserver.OutputEvent{ev}, seq
	for next := seq + 1; next <= seq+maxReadAhead; next++ {
		msg, err := r.stream.GetMsg(ctx, next)
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				r.s.log.Debug("read-ahead of the room output stopped", "seq", next, "err", err)
			}
			break
		}
		var oe roomserver.OutputEvent
		if err := json.Unmarshal(msg.Data, &oe); err != nil {
			break // the consumer skips it loudly when it gets there
		}
		events, last = append(events, &oe), next
	}
	var pdus []outPDU
	for _, ev := range events {
		p, err := r.s.roomEventPDU(ctx, ev)
		if err != nil {
			return err
		}
		if p != nil {
			pdus = append(pdus, *p)
		}
	}
	if err := r.s.queuePDUs(ctx, pdus); err != nil {
		return err
	}
	r.queuedThrough = last
	return nil
}

// roomEventPDU says where an event of the roomserver's output goes (nil:
// nowhere). Events of local users go to every other server with a member
// joined to the room now that was in it before the event: a server that
// joined since (the sender may be behind) has the event in the state and
// history its join brought, and given it again would take it for a new
// event whose past is missing. A membership that takes a remote user out
// (kick, ban, rescinded invite) also goes to that user's server, which
// may have no member left in the room to hear of it. Events of remote
// users are their servers' to send; an invite reaches the invitee's
// server through the invite API (PerformInvite) before it is stored here.
func (s *Sender) roomEventPDU(ctx context.Context, ev *roomserver.OutputEvent) (*outPDU, error) {
	if mxid.ServerOf(ev.Sender) != s.opts.ServerName || len(ev.Event) == 0 {
		return nil, nil
	}
	servers, err := s.opts.Rooms.JoinedServersBefore(ctx, ev.RoomID, ev.Pos)
	if err != nil {
		return nil, fmt.Errorf("servers of %s: %w", ev.RoomID, err)
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		switch ev.Membership {
		case roomserver.MembershipLeave, roomserver.MembershipBan:
			servers = append(servers, mxid.ServerOf(*ev.StateKey))
		}
	}
	return &outPDU{roomID: ev.RoomID, eventID: ev.EventID, json: ev.Event, servers: servers}, nil
}

// BroadcastPDU queues a PDU this server did not author, stored at stream
// position pos, for every server joined to its room since before it
// except those in exclude: the resident server's duty for the joins,
// leaves and knocks that reach it through send_join, send_leave and
// send_knock, whose authors are not in the room yet to send them.
func (s *Sender) BroadcastPDU(ctx context.Context, roomID, eventID string, pdu []byte, pos int64, exclude ...string) error {
	servers, err := s.opts.Rooms.JoinedServersBefore(ctx, roomID, pos)
	if err != nil {
		return fmt.Errorf("servers of %s: %w", roomID, err)
	}
	servers = slices.DeleteFunc(servers, func(srv string) bool { return slices.Contains(exclude, srv) })
	return s.QueuePDU(ctx, roomID, eventID, pdu, servers)
}
