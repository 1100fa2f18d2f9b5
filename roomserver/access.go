package roomserver

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Checks shared by the endpoints of api_rooms.go.

// requireJoined fails with M_FORBIDDEN unless userID is joined to room.
func (rs *Roomserver) requireJoined(ctx context.Context, room roomInfo, userID string) error {
	m, err := rs.currentMembership(ctx, room.id, userID)
	if err != nil {
		return err
	}
	if m != spec.Join {
		return mxerr.Forbidden("%s is not in room %s", userID, room.id)
	}
	return nil
}

// requireViewer fails with M_FORBIDDEN unless userID is joined to room or
// the room is world-readable (peekable).
func (rs *Roomserver) requireViewer(ctx context.Context, room roomInfo, userID string) error {
	m, err := rs.currentMembership(ctx, room.id, userID)
	if err != nil || m == spec.Join {
		return err
	}
	readable, err := rs.worldReadable(ctx, room)
	if err != nil {
		return err
	}
	if !readable {
		return mxerr.Forbidden("%s is not in room %s", userID, room.id)
	}
	return nil
}

func (rs *Roomserver) worldReadable(ctx context.Context, room roomInfo) (bool, error) {
	state, err := rs.reader.currentState(ctx, room)
	if err != nil {
		return false, err
	}
	vis, err := rs.reader.historyVisibility(ctx, room, state)
	return vis == "world_readable", err
}

// mayUseLevel tells whether userID's power level in the room's current
// state reaches the level needed to send eventType. It is read on the
// room's worker, so it sees the state the next event will be built on.
func (rs *Roomserver) mayUseLevel(ctx context.Context, roomID, userID, eventType string, isState bool) (bool, error) {
	resp, err := rs.queue.submit(ctx, roomID, func(b *batch) (any, error) {
		level, pl, err := b.userLevel(userID)
		if err != nil {
			return nil, err
		}
		return level >= pl.EventLevel(eventType, isState), nil
	})
	if err != nil {
		return false, err
	}
	return resp.(bool), nil
}

// mayChangeState tells whether userID is joined to the room and may send
// state events of eventType there.
func (rs *Roomserver) mayChangeState(ctx context.Context, roomID, userID, eventType string) (bool, error) {
	m, err := rs.currentMembership(ctx, roomID, userID)
	if err != nil || m != spec.Join {
		return false, err
	}
	return rs.mayUseLevel(ctx, roomID, userID, eventType, true)
}

// localAlias validates a room alias of this server.
func (rs *Roomserver) localAlias(alias string) error {
	if len(alias) > 255 || len(alias) < 4 || alias[0] != '#' || domainOf(alias) == "" {
		return mxerr.InvalidParam("%q is not a room alias", alias)
	}
	local := alias[1 : len(alias)-len(domainOf(alias))-1]
	if local == "" || containsSpaceOrControl(local) {
		return mxerr.InvalidParam("%q is not a valid room alias", alias)
	}
	if domainOf(alias) != rs.serverName {
		return mxerr.InvalidParam("room alias %s is not on this server (%s)", alias, rs.serverName)
	}
	return nil
}

func containsSpaceOrControl(s string) bool {
	for _, r := range s {
		if isSpaceOrControl(r) {
			return true
		}
	}
	return false
}

// roomFor looks a room up for userID's request. An unknown room is
// answered as a room the user is not in, so that a request never tells
// whether a room exists.
func (rs *Roomserver) roomFor(ctx context.Context, roomID, userID string) (roomInfo, error) {
	room, ok, err := rs.reader.room(ctx, roomID)
	if err != nil {
		return roomInfo{}, err
	}
	if !ok {
		return roomInfo{}, mxerr.Forbidden("%s is not in room %s", userID, roomID)
	}
	return room, nil
}
