package syncapi

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Timeline lengths: the spec's default, and a bound so that one request
// cannot ask for every room's whole history.
const (
	defaultTimelineLimit = 10
	maxTimelineLimit     = 100
)

// syncFilter is the part of the spec's Filter that /sync applies.
//
// Applied: room.rooms, room.not_rooms, room.include_leave and
// room.timeline.limit. Accepted and ignored: room.state.lazy_load_members
// (the spec lets a server send redundant member events, and sending the
// whole state is that), the other event filters, event_fields and
// event_format.
type syncFilter struct {
	Room struct {
		// Rooms is nil when absent (every room) and empty when "[]" (no
		// room): encoding/json keeps that difference.
		Rooms        []string        `json:"rooms"`
		NotRooms     []string        `json:"not_rooms"`
		IncludeLeave bool            `json:"include_leave"`
		Timeline     roomEventFilter `json:"timeline"`
		State        roomEventFilter `json:"state"`
	} `json:"room"`
}

// roomEventFilter is the spec's RoomEventFilter. /messages applies types,
// not_types, senders, not_senders, contains_url and lazy_load_members;
// /sync only reads limit.
type roomEventFilter struct {
	Limit                   *int     `json:"limit"`
	Types                   []string `json:"types"` // nil: every type
	NotTypes                []string `json:"not_types"`
	Senders                 []string `json:"senders"` // nil: every sender
	NotSenders              []string `json:"not_senders"`
	ContainsURL             *bool    `json:"contains_url"`
	LazyLoadMembers         bool     `json:"lazy_load_members"`
	IncludeRedundantMembers bool     `json:"include_redundant_members"`
}

// parseSyncFilter reads /sync's filter parameter. The spec tells inline
// JSON from a filter ID by the leading "{".
func parseSyncFilter(v string) (*syncFilter, error) {
	f := &syncFilter{}
	if v == "" {
		return f, nil
	}
	if !strings.HasPrefix(v, "{") {
		// Stored filters need POST /user/{userId}/filter, which Chappe does
		// not serve yet: no filter ID can be known.
		return nil, mxerr.InvalidParam("filter: unknown filter ID %q (pass the filter as inline JSON)", v)
	}
	if err := json.Unmarshal([]byte(v), f); err != nil {
		return nil, mxerr.InvalidParam("filter: not a valid filter: %v", err)
	}
	if l := f.Room.Timeline.Limit; l != nil && *l < 0 {
		return nil, mxerr.InvalidParam("filter: room.timeline.limit must not be negative")
	}
	return f, nil
}

// timelineLimit is the number of timeline events per room.
func (f *syncFilter) timelineLimit() int {
	if l := f.Room.Timeline.Limit; l != nil {
		return min(*l, maxTimelineLimit)
	}
	return defaultTimelineLimit
}

// wantRoom applies rooms and not_rooms.
func (f *syncFilter) wantRoom(roomID string) bool {
	if slices.Contains(f.Room.NotRooms, roomID) {
		return false
	}
	return f.Room.Rooms == nil || slices.Contains(f.Room.Rooms, roomID)
}

// parseRoomEventFilter reads /messages' filter parameter, always inline JSON.
func parseRoomEventFilter(v string) (*roomEventFilter, error) {
	f := &roomEventFilter{}
	if v == "" {
		return f, nil
	}
	if err := json.Unmarshal([]byte(v), f); err != nil {
		return nil, mxerr.InvalidParam("filter: not a valid RoomEventFilter: %v", err)
	}
	return f, nil
}

// matches says whether ev passes the type, sender and URL conditions.
func (f *roomEventFilter) matches(ev *roomserver.ClientEvent) bool {
	if slices.Contains(f.NotSenders, ev.Sender) {
		return false
	}
	if f.Senders != nil && !slices.Contains(f.Senders, ev.Sender) {
		return false
	}
	if slices.ContainsFunc(f.NotTypes, func(p string) bool { return globMatch(p, ev.Type) }) {
		return false
	}
	if f.Types != nil && !slices.ContainsFunc(f.Types, func(p string) bool { return globMatch(p, ev.Type) }) {
		return false
	}
	if f.ContainsURL != nil && hasURL(ev.Content) != *f.ContainsURL {
		return false
	}
	return true
}

func hasURL(content json.RawMessage) bool {
	var c struct {
		URL json.RawMessage `json:"url"`
	}
	return json.Unmarshal(content, &c) == nil && c.URL != nil
}

// globMatch matches s against pattern, where "*" stands for any run of
// characters (the filters' only wildcard; path.Match would also treat "?",
// "[" and "/" specially).
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
