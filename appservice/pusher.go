package appservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chappe-matrix/chappe/appservice/registration"
	"github.com/chappe-matrix/chappe/roomserver"
)

const (
	// maxBatchEvents bounds the events of one transaction; maxReadAhead
	// the stream messages one batch looks at beyond the delivered one.
	maxBatchEvents = 50
	maxReadAhead   = 200
	// maxCachedRooms bounds the per-room interest cache.
	maxCachedRooms = 10_000
)

// pusher sends one service its events. The durable consumer calls handle
// with one message at a time, in stream order; a failed send returns an
// error, so the consumer retries the same message with back-off and
// nothing later overtakes it.
//
// Batching: when handle gets message N, it also reads the messages after
// N straight from the stream (up to maxReadAhead) and sends the
// interesting ones with N in one transaction; the consumer then delivers
// them one by one and handle acknowledges them without sending again. A
// crash between the send and those acknowledgements makes the next start
// send them once more: delivery is at least once, as the spec allows
// (services deduplicate by event ID and transaction ID). A retried batch
// keeps its transaction ID and its events.
type pusher struct {
	a          *AppService
	reg        *registration.Registration
	serverName string
	reader     roomserver.EventReader
	stream     jetstream.Stream

	// Only the handler goroutine touches what follows.
	sentThrough uint64 // stream sequence up to which everything was sent
	pending     *batch // built and not yet accepted by the service
	joined      map[string]bool
	aliased     map[string]bool
}

type batch struct {
	first, last uint64 // stream sequences covered
	txnID       string
	body        []byte
	events      int
}

func newPusher(ctx context.Context, a *AppService, reg *registration.Registration) (*pusher, error) {
	stream, err := a.b.Bus.JS.Stream(ctx, a.b.Bus.StreamName(roomserver.Output.Stream))
	if err != nil {
		return nil, fmt.Errorf("appservice %s: room output stream: %w", reg.ID, err)
	}
	return &pusher{
		a:          a,
		reg:        reg,
		serverName: a.b.Config.ServerName,
		reader:     roomserver.NewEventReader(a.b.DB),
		stream:     stream,
		joined:     map[string]bool{},
		aliased:    map[string]bool{},
	}, nil
}

func (p *pusher) handle(ctx context.Context, seq uint64, ev *roomserver.OutputEvent) error {
	if seq <= p.sentThrough {
		return nil
	}
	if p.pending == nil || p.pending.first != seq {
		b, err := p.build(ctx, seq, ev)
		if err != nil {
			return err
		}
		p.pending = b
	}
	if p.pending.events > 0 {
		if err := p.send(ctx, p.pending); err != nil {
			return err
		}
	}
	p.sentThrough = p.pending.last
	p.pending = nil
	return nil
}

// build makes the batch that starts with message seq.
func (p *pusher) build(ctx context.Context, seq uint64, ev *roomserver.OutputEvent) (*batch, error) {
	b := &batch{first: seq, last: seq}
	var events []map[string]any
	var firstPos, lastPos int64
	add := func(ev *roomserver.OutputEvent) error {
		ok, err := p.interested(ctx, ev)
		if err != nil || !ok {
			return err
		}
		ce, err := clientEvent(ev)
		if err != nil {
			p.a.log.Warn("event not pushed: unreadable PDU", "appservice", p.reg.ID, "event_id", ev.EventID, "err", err)
			return nil
		}
		if len(events) == 0 {
			firstPos = ev.Pos
		}
		lastPos = ev.Pos
		events = append(events, ce)
		return nil
	}
	if err := add(ev); err != nil {
		return nil, err
	}
	for next := seq + 1; next <= seq+maxReadAhead && len(events) < maxBatchEvents; next++ {
		msg, err := p.stream.GetMsg(ctx, next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			// Reading ahead is an optimisation: send what we have.
			p.a.log.Debug("read ahead stopped", "appservice", p.reg.ID, "seq", next, "err", err)
			break
		}
		var oe roomserver.OutputEvent
		if err := json.Unmarshal(msg.Data, &oe); err != nil {
			break // the consumer will skip it loudly; stop the batch before it
		}
		if err := add(&oe); err != nil {
			return nil, err
		}
		b.last = next
	}
	b.events = len(events)
	if b.events == 0 {
		return b, nil
	}
	body, err := json.Marshal(&Transaction{Events: events})
	if err != nil {
		return nil, err
	}
	b.body = body
	// Stream positions come from the database: the same batch rebuilt
	// after a restart (or a reset of NATS) gets the same ID.
	b.txnID = fmt.Sprintf("%d-%d", firstPos, lastPos)
	return b, nil
}

func (p *pusher) send(ctx context.Context, b *batch) error {
	status, body, err := p.a.call(ctx, p.reg, http.MethodPut, txnPath(b.txnID), b.body)
	if err != nil {
		return fmt.Errorf("appservice %s: transaction %s: %w", p.reg.ID, b.txnID, err)
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("appservice %s: transaction %s: status %d: %.200s", p.reg.ID, b.txnID, status, body)
	}
	return nil
}

// interested tells whether the service wants ev: its sender or (for
// memberships) its target is in the service's user namespaces, the room is
// in its room namespaces, the room's canonical alias is in its alias
// namespaces, or one of the service's users is joined to the room.
func (p *pusher) interested(ctx context.Context, ev *roomserver.OutputEvent) (bool, error) {
	r := p.reg
	if ev.Type == "m.room.member" {
		delete(p.joined, ev.RoomID)
	}
	if ev.Type == "m.room.canonical_alias" {
		delete(p.aliased, ev.RoomID)
	}
	if r.OwnsUser(ev.Sender, p.serverName) || r.MatchesRoom(ev.RoomID) {
		return true, nil
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil && r.OwnsUser(*ev.StateKey, p.serverName) {
		return true, nil
	}
	if len(r.Namespaces.Aliases) > 0 {
		ok, err := p.roomAliased(ctx, ev.RoomID)
		if err != nil || ok {
			return ok, err
		}
	}
	return p.roomJoined(ctx, ev.RoomID)
}

func (p *pusher) roomJoined(ctx context.Context, roomID string) (bool, error) {
	if v, ok := p.joined[roomID]; ok {
		return v, nil
	}
	users, err := p.reader.JoinedUsers(ctx, roomID)
	if err != nil {
		return false, err
	}
	v := slices.ContainsFunc(users, func(u string) bool { return p.reg.OwnsUser(u, p.serverName) })
	if len(p.joined) >= maxCachedRooms {
		clear(p.joined)
	}
	p.joined[roomID] = v
	return v, nil
}

func (p *pusher) roomAliased(ctx context.Context, roomID string) (bool, error) {
	if v, ok := p.aliased[roomID]; ok {
		return v, nil
	}
	state, err := p.reader.StateAt(ctx, roomID, math.MaxInt64)
	if err != nil {
		return false, err
	}
	v := false
	for _, e := range state {
		if e.Type != "m.room.canonical_alias" || e.StateKey == nil || *e.StateKey != "" {
			continue
		}
		var c struct {
			Alias      string   `json:"alias"`
			AltAliases []string `json:"alt_aliases"`
		}
		_ = json.Unmarshal(e.Content, &c)
		for _, al := range append(c.AltAliases, c.Alias) {
			if al != "" && p.reg.MatchesAlias(al) {
				v = true
			}
		}
	}
	if len(p.aliased) >= maxCachedRooms {
		clear(p.aliased)
	}
	p.aliased[roomID] = v
	return v, nil
}

// clientEvent turns the stored PDU into the client format services read.
func clientEvent(ev *roomserver.OutputEvent) (map[string]any, error) {
	var pdu map[string]json.RawMessage
	if err := json.Unmarshal(ev.Event, &pdu); err != nil {
		return nil, err
	}
	out := map[string]any{
		"event_id": ev.EventID,
		"room_id":  ev.RoomID,
		"sender":   ev.Sender,
		"type":     ev.Type,
	}
	for _, k := range []string{"content", "origin_server_ts", "state_key", "redacts", "unsigned"} {
		if v, ok := pdu[k]; ok {
			out[k] = v
		}
	}
	if _, ok := out["content"]; !ok {
		out["content"] = map[string]any{}
	}
	return out, nil
}
