package syncapi

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/chappe-matrix/chappe/roomserver"
)

// slidingRoomResult is one room of the response. Fields left out mean
// "unchanged" when initial is false, "none" when it is true.
type slidingRoomResult struct {
	Name              *string                  `json:"name,omitempty"`
	Avatar            *string                  `json:"avatar,omitempty"`
	Heroes            []slidingHero            `json:"heroes,omitempty"`
	IsDM              bool                     `json:"is_dm,omitempty"`
	Initial           bool                     `json:"initial,omitempty"`
	ExpandedTimeline  bool                     `json:"expanded_timeline,omitempty"`
	RequiredState     []roomserver.ClientEvent `json:"required_state,omitempty"`
	Timeline          []roomserver.ClientEvent `json:"timeline,omitempty"`
	PrevBatch         string                   `json:"prev_batch,omitempty"`
	Limited           bool                     `json:"limited,omitempty"`
	NumLive           *int                     `json:"num_live,omitempty"`
	JoinedCount       *int                     `json:"joined_count,omitempty"`
	InvitedCount      *int                     `json:"invited_count,omitempty"`
	NotificationCount int                      `json:"notification_count"`
	HighlightCount    int                      `json:"highlight_count"`
	BumpStamp         int64                    `json:"bump_stamp"`
	InviteState       []json.RawMessage        `json:"invite_state,omitempty"`
	Membership        string                   `json:"membership,omitempty"`
	Lists             []string                 `json:"lists,omitempty"`
}

type slidingHero struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// maxHeroes is how many members name a room that has no name (the spec's
// m.heroes bound).
const maxHeroes = 5

// room builds the result for one room, or nil when nothing changed since
// the connection last sent it; state is the room's new record.
func (sb *slidingBuilder) room(ctx context.Context, e *slidingEntry, c *slidingRoomConfig) (*slidingRoomResult, slidingRoomState, error) {
	prev, sentBefore := sb.prev.Rooms[e.roomID]
	fingerprint := c.state.fingerprint()
	next := slidingRoomState{Membership: e.membership, Config: fingerprint, Limit: c.limit}
	switch e.membership {
	case roomserver.MembershipInvite, roomserver.MembershipKnock:
		next.Room = e.memPos
		if sentBefore && prev.Membership == e.membership && prev.Room >= e.memPos {
			return nil, prev, nil
		}
		stripped, err := sb.api.reader.InviteState(ctx, e.roomID, sb.userID)
		if err != nil {
			return nil, prev, err
		}
		return &slidingRoomResult{Initial: true, InviteState: nonNil(stripped), Membership: e.membership,
			BumpStamp: e.bump, IsDM: sb.direct[e.roomID]}, next, nil
	}
	if gone(e.membership) && sentBefore && prev.Membership != roomserver.MembershipJoin {
		// An invite rejected or withdrawn, a knock refused: the user never
		// saw the room, only the event that ended their membership.
		return sb.endedWithoutJoin(ctx, e, next)
	}
	// Joined, or left/banned: the timeline ends at the leave.
	end := sb.now.Room
	if e.membership != roomserver.MembershipJoin && e.memPos > 0 {
		end = e.memPos
	}
	next.Room = end
	// Sent from the start: a room new to the connection, or one the client
	// knew only from an invite, or left and joined again.
	initial := !sentBefore || prev.Membership != roomserver.MembershipJoin && e.membership == roomserver.MembershipJoin
	expanded := !initial && c.limit > prev.Limit
	configChanged := !initial && fingerprint != prev.Config
	// Unread counts of a joined room (sliding_e2ee.go); a room left has none.
	var unread unreadNotifications
	if e.membership == roomserver.MembershipJoin {
		unread = sb.unread[e.roomID]
	}
	next.Notify, next.Highlight = unread.NotificationCount, unread.HighlightCount
	if !initial && !expanded && !configChanged && prev.Room >= end && prev.Membership == e.membership {
		if prev.Notify == next.Notify && prev.Highlight == next.Highlight {
			return nil, prev, nil
		}
		// Only the counts changed (a receipt, or counts that lagged their
		// event): the room with its new counts and nothing else.
		return &slidingRoomResult{Membership: e.membership, BumpStamp: e.bump, IsDM: sb.direct[e.roomID],
			NotificationCount: int(next.Notify), HighlightCount: int(next.Highlight)}, next, nil
	}
	from := int64(0)
	if !initial && !expanded {
		from = prev.Room
	}
	// A joined user was joined throughout (memPos, end]; when the user
	// left, history visibility judges the whole timeline.
	joinedAfter := int64(0)
	if e.membership == roomserver.MembershipJoin {
		joinedAfter = e.memPos
	}
	evs, limited, err := sb.timelineOf(ctx, e.roomID, from, joinedAfter, end, c.limit)
	if err != nil {
		return nil, prev, err
	}
	state, err := sb.api.reader.StateAt(ctx, e.roomID, end)
	if err != nil {
		return nil, prev, err
	}
	res := &slidingRoomResult{Initial: initial, ExpandedTimeline: expanded, Limited: limited,
		Membership: e.membership, BumpStamp: e.bump, IsDM: sb.direct[e.roomID],
		NotificationCount: int(next.Notify), HighlightCount: int(next.Highlight)}
	format := newFormatter(sb.device, false)
	res.Timeline = format.stream(evs)
	res.PrevBatch = formatToken(end)
	if len(evs) > 0 {
		res.PrevBatch = formatToken(evs[0].Pos - 1)
	}
	live := 0
	if !sb.initial {
		for _, ev := range evs {
			if ev.Pos > sb.since.Room {
				live++
			}
		}
	}
	res.NumLive = &live
	// What state to send: all that is asked for when the room is new to the
	// client or the client asks for more; otherwise what changed since the
	// room was last sent, plus the members the timeline needs.
	changed := state
	if !initial && !configChanged {
		changed = nil
		if limited || slices.ContainsFunc(evs, func(ev roomserver.StreamEvent) bool { return ev.Event.StateKey != nil }) {
			known, err := sb.api.reader.StateAt(ctx, e.roomID, prev.Room)
			if err != nil {
				return nil, prev, err
			}
			changed = changedSince(slices.Clone(state), known)
		}
	}
	picked := c.state.pick(changed, nil)
	if c.state.lazy {
		picked = appendMissing(picked, requiredState{lazy: true}.pick(state, evs))
	}
	res.RequiredState = format.state(picked)
	sb.describe(res, state, changed, initial)
	sb.mu.Lock()
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.Event.EventID
	}
	sb.sent[e.roomID] = ids
	if initial {
		sb.fresh[e.roomID] = true
	}
	sb.mu.Unlock()
	return res, next, nil
}

// endedWithoutJoin is the room of an invite or knock that ended without a
// join: its membership and the one event that ended it.
func (sb *slidingBuilder) endedWithoutJoin(ctx context.Context, e *slidingEntry, next slidingRoomState) (*slidingRoomResult, slidingRoomState, error) {
	next.Room = e.memPos
	// The event that ended the membership is the user's to see.
	evs, _, err := sb.timelineOf(ctx, e.roomID, e.memPos-1, e.memPos-1, e.memPos, 1)
	if err != nil {
		return nil, next, err
	}
	format := newFormatter(sb.device, false)
	live := 0
	if !sb.initial && e.memPos > sb.since.Room {
		live = len(evs)
	}
	return &slidingRoomResult{Initial: true, Membership: e.membership, BumpStamp: e.bump, IsDM: sb.direct[e.roomID],
		Timeline: format.stream(evs), PrevBatch: formatToken(e.memPos - 1), NumLive: &live}, next, nil
}

// timelineOf reads the latest limit events of (from, to] that the user
// may see (they were joined throughout (joinedAfter, to]), oldest first;
// limited tells that older events of the range were left out.
func (sb *slidingBuilder) timelineOf(ctx context.Context, roomID string, from, joinedAfter, to int64, limit int) ([]roomserver.StreamEvent, bool, error) {
	if to <= from {
		return nil, false, nil
	}
	tr := &timelineRead{reader: sb.api.reader, history: sb.history, roomID: roomID,
		from: from, to: to, joinedAfter: joinedAfter, limit: limit, page: limit + 1}
	evs, limited, _, err := tr.run(ctx)
	return evs, limited, err
}

// describe sets name, avatar, heroes and member counts: all of them for a
// room sent from its start, those whose state changed otherwise (counts
// are always sent: they are cheap and clients show them).
func (sb *slidingBuilder) describe(res *slidingRoomResult, state, changed []roomserver.ClientEvent, initial bool) {
	changedType := map[string]bool{}
	for _, ev := range changed {
		changedType[ev.Type] = true
	}
	joined, invited := 0, 0
	var name, avatar *string
	var members []roomserver.ClientEvent
	for _, ev := range state {
		switch ev.Type {
		case "m.room.name":
			var c struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(ev.Content, &c) == nil && c.Name != "" {
				name = &c.Name
			}
		case "m.room.avatar":
			var c struct {
				URL string `json:"url"`
			}
			if json.Unmarshal(ev.Content, &c) == nil && c.URL != "" {
				avatar = &c.URL
			}
		case "m.room.member":
			switch contentMembership(ev.Content) {
			case roomserver.MembershipJoin:
				joined++
				members = append(members, ev)
			case roomserver.MembershipInvite:
				invited++
				members = append(members, ev)
			}
		}
	}
	res.JoinedCount, res.InvitedCount = &joined, &invited
	if initial || changedType["m.room.name"] {
		res.Name = name
	}
	if initial || changedType["m.room.avatar"] {
		res.Avatar = avatar
	}
	if name == nil && (initial || changedType["m.room.member"] || changedType["m.room.name"]) {
		res.Heroes = heroes(members, sb.userID)
	}
}

// heroes are the first members other than the user, joined before invited,
// by user ID.
func heroes(members []roomserver.ClientEvent, userID string) []slidingHero {
	slices.SortFunc(members, func(x, y roomserver.ClientEvent) int {
		jx, jy := contentMembership(x.Content) == roomserver.MembershipJoin, contentMembership(y.Content) == roomserver.MembershipJoin
		if jx != jy {
			if jx {
				return -1
			}
			return 1
		}
		return strings.Compare(stateKeyOf(x), stateKeyOf(y))
	})
	var out []slidingHero
	for _, ev := range members {
		if ev.StateKey == nil || *ev.StateKey == userID {
			continue
		}
		var c struct {
			DisplayName string `json:"displayname"`
			AvatarURL   string `json:"avatar_url"`
		}
		_ = json.Unmarshal(ev.Content, &c)
		out = append(out, slidingHero{UserID: *ev.StateKey, DisplayName: c.DisplayName, AvatarURL: c.AvatarURL})
		if len(out) == maxHeroes {
			break
		}
	}
	return out
}

func stateKeyOf(ev roomserver.ClientEvent) string {
	if ev.StateKey == nil {
		return ""
	}
	return *ev.StateKey
}

func contentMembership(content json.RawMessage) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(content, &c)
	return c.Membership
}

// appendMissing adds the events of more not already in evs.
func appendMissing(evs, more []roomserver.ClientEvent) []roomserver.ClientEvent {
	have := make(map[string]bool, len(evs))
	for _, ev := range evs {
		have[ev.EventID] = true
	}
	for _, ev := range more {
		if !have[ev.EventID] {
			evs = append(evs, ev)
			have[ev.EventID] = true
		}
	}
	return evs
}
