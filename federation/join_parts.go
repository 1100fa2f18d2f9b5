package federation

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/chappe-matrix/chappe/roomserver"
)

// joinPartBytes bounds the events of one StoreJoinedRoom message: NATS
// refuses messages over its max_payload, 1 MB by default, and the answer
// of a room of some 1,500 members is already bigger. The IDs beside the
// events (about 50 bytes each) and the join fit in the rest.
const joinPartBytes = 512 << 10

// storeJoinedRoom hands a send_join answer to the roomserver in messages
// of at most joinPartBytes of events, auth events first, each event with
// its ID. All but the last are Partial: each stores its events as
// outliers and answers with the state given so far (a snapshot), which
// the next names; the last one makes the room joined. A small room's
// answer is one message.
//
// The signatures of a part's events are checked just before it is sent,
// while the roomserver stores the part before: a bad one ends the join
// (and the parts stored stay outliers, which nothing shows).
func (f *Federation) storeJoinedRoom(ctx context.Context, c *checkedJoin) (*roomserver.StoreJoinedRoomResponse, error) {
	parts := splitParts(answerAuthOrder(c.events))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the checks when a part fails to store
	checked := make(chan error, 1)
	go func() {
		defer close(checked)
		for _, part := range parts {
			err := verifyAnswerSignatures(ctx, c.impl, c.keys, part)
			select {
			case checked <- err:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var base int64
	for i, part := range parts {
		if err := <-checked; err != nil {
			return nil, fmt.Errorf("events that fail their checks: %v", err)
		}
		req := partRequest(c, part, base, i < len(parts)-1)
		resp, err := roomserver.StoreJoinedRoom.Call(ctx, f.bus, req)
		if err != nil || !req.Partial {
			return resp, err
		}
		base = resp.StateSnapshot
	}
	panic("unreachable: splitParts gives at least one part")
}

// partRequest is the StoreJoinedRoom message of a part.
func partRequest(c *checkedJoin, part []*answerEvent, base int64, partial bool) *roomserver.StoreJoinedRoomRequest {
	req := &roomserver.StoreJoinedRoomRequest{RoomVersion: c.version, JoinEvent: c.join.JSON(), BaseState: base, Partial: partial}
	for _, ev := range part {
		if ev.state {
			req.State = append(req.State, ev.pdu.JSON())
			req.StateEventIDs = append(req.StateEventIDs, ev.id)
		} else {
			req.AuthChain = append(req.AuthChain, ev.pdu.JSON())
			req.AuthChainEventIDs = append(req.AuthChainEventIDs, ev.id)
		}
	}
	return req
}

// splitParts cuts events into parts of at most joinPartBytes of JSON (one
// part at least, maybe empty).
func splitParts(evs []*answerEvent) [][]*answerEvent {
	parts := [][]*answerEvent{nil}
	size := 0
	for _, ev := range evs {
		n := len(ev.pdu.JSON())
		if size > 0 && size+n > joinPartBytes {
			parts = append(parts, nil)
			size = 0
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], ev)
		size += n
	}
	return parts
}

// answerAuthOrder orders events so that each comes after those of its auth
// events that are among them (what outliers need: their auth events
// stored first), by depth then ID otherwise.
func answerAuthOrder(evs []*answerEvent) []*answerEvent {
	sorted := slices.Clone(evs)
	slices.SortFunc(sorted, func(a, b *answerEvent) int {
		if c := cmp.Compare(a.pdu.Depth(), b.pdu.Depth()); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	index := make(map[string]*answerEvent, len(sorted))
	for _, ev := range sorted {
		index[ev.id] = ev
	}
	out := make([]*answerEvent, 0, len(sorted))
	done := make(map[string]bool, len(sorted))
	var visit func(ev *answerEvent)
	visit = func(ev *answerEvent) {
		done[ev.id] = true // set first: a cycle (bad input) ends here
		for _, a := range ev.pdu.AuthEventIDs() {
			if dep := index[a]; dep != nil && !done[a] {
				visit(dep)
			}
		}
		out = append(out, ev)
	}
	for _, ev := range sorted {
		if !done[ev.id] {
			visit(ev)
		}
	}
	return out
}
