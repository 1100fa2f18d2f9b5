package sender

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Queueing: each item is committed to the destination's queue before its
// goroutine is woken, so what was queued is sent even across a crash.

// outPDU is a PDU and the servers to send it to.
type outPDU struct {
	roomID, eventID string
	json            json.RawMessage
	servers         []string
}

// QueuePDU queues a PDU for the given servers (this server and servers
// outside the allow-list are left out) and wakes their goroutines.
func (s *Sender) QueuePDU(ctx context.Context, roomID, eventID string, pdu json.RawMessage, servers []string) error {
	return s.queuePDUs(ctx, []outPDU{{roomID: roomID, eventID: eventID, json: pdu, servers: servers}})
}

// queuePDUs queues PDUs in one database transaction (one commit for a
// whole batch of the roomserver's output).
func (s *Sender) queuePDUs(ctx context.Context, pdus []outPDU) error {
	todo := pdus[:0:0]
	for _, p := range pdus {
		if p.servers = s.destinations(p.servers); len(p.servers) > 0 {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	added := map[string]int{}
	err := s.opts.DB.WithTx(ctx, func(tx *sqlutil.Tx) error {
		clear(added)
		for _, p := range todo {
			n, err := s.store.queuePDU(ctx, tx, p.roomID, p.eventID, p.json, p.servers)
			if err != nil {
				return err
			}
			for d, k := range n {
				added[d] += k
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for d, n := range added {
		s.metrics.addDepth(d, n, 0)
		s.notify(d)
	}
	return nil
}

// queuedEDU is an EDU for one destination; a non-empty key replaces the
// waiting EDU with the same key.
type queuedEDU struct {
	destination string
	eduType     string
	key         string
	content     json.RawMessage
}

// QueueEDU queues an EDU for destination. M_FORBIDDEN for this server or a
// server outside the allow-list.
func (s *Sender) QueueEDU(ctx context.Context, destination string, edu gomatrixserverlib.EDU) error {
	if !s.sendable(destination) {
		return mxerr.Forbidden("%s is not a server this server federates with", destination)
	}
	if edu.Type == "" {
		return mxerr.InvalidParam("an EDU needs a type")
	}
	content := json.RawMessage(edu.Content)
	if len(content) == 0 {
		content = json.RawMessage(`{}`)
	}
	return s.queueEDUs(ctx, []queuedEDU{{destination: destination, eduType: edu.Type, content: content}})
}

// queueEDUs stores EDUs in one transaction and wakes their destinations.
// Destinations that may not be sent to are skipped.
func (s *Sender) queueEDUs(ctx context.Context, edus []queuedEDU) error {
	return s.queueEDUsIn(ctx, func(*sqlutil.Tx) ([]queuedEDU, error) { return edus, nil })
}

// queueEDUsIn is queueEDUs for EDUs that build makes inside the database
// transaction that stores them (device-list updates take their stream IDs
// there).
func (s *Sender) queueEDUsIn(ctx context.Context, build func(tx *sqlutil.Tx) ([]queuedEDU, error)) error {
	delta := map[string]int{}
	err := s.opts.DB.WithTx(ctx, func(tx *sqlutil.Tx) error {
		clear(delta)
		edus, err := build(tx)
		if err != nil {
			return err
		}
		for _, e := range edus {
			if !s.sendable(e.destination) {
				continue
			}
			n, err := s.store.queueEDU(ctx, tx, e)
			if err != nil {
				return err
			}
			delta[e.destination] += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	for d, n := range delta {
		s.metrics.addDepth(d, 0, n)
		s.notify(d)
	}
	return nil
}
