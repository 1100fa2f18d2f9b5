package syncapi

import (
	"context"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// maxKeyChangesEvents bounds the events read per room for /keys/changes.
const maxKeyChangesEvents = 1000

// queryKeyChanges serves /keys/changes: the device-list part of an
// incremental sync from From to To, membership changes read from the
// rooms' events.
func (s *SyncAPI) queryKeyChanges(ctx context.Context, req *KeyChangesRequest) (*KeyChangesResponse, error) {
	from, err := parseStreamToken("from", req.From)
	if err != nil {
		return nil, err
	}
	to, err := parseStreamToken("to", req.To)
	if err != nil {
		return nil, err
	}
	if to.Room < from.Room || to.Stream < from.Stream {
		return nil, mxerr.InvalidParam("to is before from")
	}
	delta := newMemberDelta(req.UserID)
	if to.Room > from.Room {
		rooms := map[string]bool{}
		joined, err := s.reader.RoomsOfUser(ctx, req.UserID, roomserver.MembershipJoin)
		if err != nil {
			return nil, err
		}
		for _, r := range joined {
			rooms[r.RoomID] = true
		}
		if delta, err = s.memberDeltaOf(ctx, req.UserID, rooms, from.Room, to.Room); err != nil {
			return nil, err
		}
	}
	changed, left, err := s.deviceLists(ctx, req.UserID, from, to, delta)
	if err != nil {
		return nil, err
	}
	return &KeyChangesResponse{Changed: changed, Left: left}, nil
}

// memberDeltaOf reads the membership events with from < pos <= to of the
// given rooms and of the rooms where userID's own membership changed in
// that range. (Sliding sync's e2ee extension passes only the rooms with
// events in the range.)
func (s *SyncAPI) memberDeltaOf(ctx context.Context, userID string, rooms map[string]bool, from, to int64) (*memberDelta, error) {
	delta := newMemberDelta(userID)
	mine, err := s.reader.MembershipChanges(ctx, userID, from, to)
	if err != nil {
		return nil, err
	}
	for _, m := range mine {
		rooms[m.RoomID] = true
	}
	for roomID := range rooms {
		evs, err := s.reader.Events(ctx, roomID, from, to, maxKeyChangesEvents, false)
		if err != nil {
			return nil, err
		}
		for i := range evs {
			if err := delta.add(ctx, s, roomID, &evs[i].Event); err != nil {
				return nil, err
			}
		}
	}
	return delta, nil
}
