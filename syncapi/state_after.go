package syncapi

import (
	"context"
	"net/url"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// MSC4222: a client that sets use_state_after (or its unstable name) is
// sent, per room, state_after, the state at the end of the timeline (what
// changed since its token, or all of it when the room is sent from its
// start), instead of state, the state before the timeline. A client then
// never has to replay state events of the timeline on top of state, which
// goes wrong when state resolution undoes one of them.
const (
	paramStateAfter         = "use_state_after"
	paramStateAfterUnstable = "org.matrix.msc4222.use_state_after"
)

// parseStateAfter reads either parameter.
func parseStateAfter(q url.Values) (bool, error) {
	on := false
	for _, name := range []string{paramStateAfter, paramStateAfterUnstable} {
		switch v := q.Get(name); v {
		case "", "false":
		case "true":
			on = true
		default:
			return false, mxerr.InvalidParam("%s: %q is neither true nor false", name, v)
		}
	}
	return on, nil
}

// stateAfter is timeline's counterpart under MSC4222: the state at to,
// minus what the client has at from unless full, with the state filter
// and lazy loading applied.
func (b *syncBuilder) stateAfter(ctx context.Context, roomID string, from, to int64, full bool, tl timeline, evs []roomserver.StreamEvent) (timeline, stateBatch, error) {
	empty := stateBatch{Events: []roomserver.ClientEvent{}}
	if !full {
		// No event at all in the range (not only none the filter kept): no
		// state change, no timeline sender, and no query of the state.
		some, err := b.reader.Events(ctx, roomID, from, to, 1, true)
		if err != nil || len(some) == 0 {
			return tl, empty, err
		}
	}
	state, err := b.roomState(ctx, roomID, roomserver.StateSelection{Pos: to}, from, full, true, evs)
	if err != nil {
		return timeline{}, stateBatch{}, err
	}
	return tl, state, nil
}

// moveStateAfter puts each room's state under state_after (both names)
// and leaves state empty.
func (r *syncResponse) moveStateAfter() {
	for _, room := range r.Rooms.Join {
		sa := room.State
		room.StateAfter, room.UnstableStateAfter = &sa, &sa
		room.State = stateBatch{Events: []roomserver.ClientEvent{}}
	}
	for _, room := range r.Rooms.Leave {
		sa := room.State
		room.StateAfter, room.UnstableStateAfter = &sa, &sa
		room.State = stateBatch{Events: []roomserver.ClientEvent{}}
	}
}
