package roomserver

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// The space hierarchy of local rooms: a breadth-first walk of
// m.space.child events from the root, keeping the rooms the user may see
// (or could join). Rooms on other servers need federation and are skipped.

const (
	maxHierarchyLimit = 100
	// maxHierarchyRooms bounds one walk, however the spaces are nested.
	maxHierarchyRooms = 1000
)

// spaceChild is an m.space.child event.
type spaceChild struct {
	roomID    string
	order     string
	suggested bool
	ts        int64
	stripped  json.RawMessage
}

func (rs *Roomserver) queryHierarchy(ctx context.Context, req *QueryHierarchyRequest) (*QueryHierarchyResponse, error) {
	root, ok, err := rs.reader.room(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.Forbidden("%s may not view room %s", req.UserID, req.RoomID)
	}
	if ok, err := rs.mayPreview(ctx, root, req.UserID); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return nil, mxerr.Forbidden("%s may not view room %s", req.UserID, req.RoomID)
	}
	limit := min(max(req.Limit, 1), maxHierarchyLimit)
	maxDepth := req.MaxDepth
	if maxDepth < 0 {
		maxDepth = maxHierarchyRooms
	}
	type item struct {
		room  roomInfo
		depth int
	}
	queue := []item{{root, 0}}
	seen := map[string]bool{root.id: true}
	var walk []RoomSummary
	for len(queue) > 0 && len(walk) < maxHierarchyRooms && len(walk) < req.From+limit+1 {
		it := queue[0]
		queue = queue[1:]
		if it.depth > 0 {
			ok, err := rs.mayPreview(ctx, it.room, req.UserID)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		s, err := rs.reader.summary(ctx, it.room)
		if err != nil {
			return nil, err
		}
		children, err := rs.spaceChildren(ctx, it.room)
		if err != nil {
			return nil, err
		}
		stripped := make([]json.RawMessage, 0, len(children))
		for _, c := range children {
			stripped = append(stripped, c.stripped)
			if it.depth >= maxDepth || seen[c.roomID] || (req.SuggestedOnly && !c.suggested) {
				continue
			}
			seen[c.roomID] = true
			child, ok, err := rs.reader.room(ctx, c.roomID)
			if err != nil {
				return nil, err
			}
			if ok {
				queue = append(queue, item{child, it.depth + 1})
			}
		}
		s.ChildrenState = mustJSON(stripped)
		walk = append(walk, s)
	}
	resp := &QueryHierarchyResponse{Rooms: []RoomSummary{}}
	if req.From < len(walk) {
		resp.Rooms = walk[req.From:min(req.From+limit, len(walk))]
	}
	if req.From+limit < len(walk) {
		resp.NextPos = req.From + limit
	}
	return resp, nil
}

// spaceChildren lists a room's m.space.child events that name a child
// (a non-empty via), in the spec's order: by order, then by timestamp,
// then by room ID.
func (rs *Roomserver) spaceChildren(ctx context.Context, room roomInfo) ([]spaceChild, error) {
	state, err := rs.reader.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	events, err := rs.reader.stateEvents(ctx, room, state, func(k stateKey) bool { return k.Type == "m.space.child" })
	if err != nil {
		return nil, err
	}
	var out []spaceChild
	for _, ev := range events {
		var c struct {
			Via       []string `json:"via"`
			Order     any      `json:"order"`
			Suggested bool     `json:"suggested"`
		}
		if json.Unmarshal(ev.Content, &c) != nil || len(c.Via) == 0 {
			continue
		}
		order, _ := c.Order.(string)
		if len(order) > 50 {
			order = "" // the spec ignores invalid orders
		}
		out = append(out, spaceChild{
			roomID: *ev.StateKey, order: order, suggested: c.Suggested, ts: ev.OriginServerTS,
			stripped: mustJSON(map[string]any{
				"type": ev.Type, "state_key": *ev.StateKey, "content": ev.Content,
				"sender": ev.Sender, "origin_server_ts": ev.OriginServerTS,
			}),
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.order != "") != (b.order != "") {
			return a.order != ""
		}
		if a.order != b.order {
			return a.order < b.order
		}
		if a.ts != b.ts {
			return a.ts < b.ts
		}
		return a.roomID < b.roomID
	})
	return out, nil
}

// mayPreview tells whether userID may see a room's summary: they are
// joined or invited, the room is world-readable, or they could join or
// knock (public, knock, or restricted to a room they are in).
func (rs *Roomserver) mayPreview(ctx context.Context, room roomInfo, userID string) (bool, error) {
	m, err := rs.currentMembership(ctx, room.id, userID)
	if err != nil {
		return false, err
	}
	if m == spec.Join || m == spec.Invite {
		return true, nil
	}
	if readable, err := rs.worldReadable(ctx, room); err != nil || readable {
		return readable, err
	}
	content, err := rs.reader.stateContent(ctx, room, spec.MRoomJoinRules, "")
	if err != nil || content == nil {
		return false, err
	}
	var rule gomatrixserverlib.JoinRuleContent
	if json.Unmarshal(content, &rule) != nil {
		return false, nil
	}
	switch rule.JoinRule {
	case spec.Public, spec.Knock, spec.KnockRestricted:
		return true, nil
	case spec.Restricted:
		for _, allow := range rule.Allow {
			if allow.Type != spec.MRoomMembership {
				continue
			}
			m, err := rs.currentMembership(ctx, allow.RoomID, userID)
			if err != nil {
				return false, err
			}
			if m == spec.Join {
				return true, nil
			}
		}
	}
	return false, nil
}
