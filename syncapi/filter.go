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

// syncFilter is the spec's Filter, the part of it /sync applies.
//
// Applied: room.rooms, room.not_rooms, room.include_leave; for
// room.timeline, room.state, room.ephemeral and room.account_data: types,
// not_types, rooms, not_rooms, and senders, not_senders where events have
// a sender; room.timeline.limit and contains_url; room.state's
// lazy_load_members (include_redundant_members is accepted: redundant
// members are always sent, which the spec allows); account_data and
// presence: types, not_types, senders, not_senders, limit. Accepted and
// ignored: event_fields, event_format (always "client"),
// unread_thread_notifications.
type syncFilter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	AccountData eventFilter `json:"account_data"`
	Presence    eventFilter `json:"presence"`
	Room        struct {
		// Rooms is nil when absent (every room) and empty when "[]" (no
		// room): encoding/json keeps that difference.
		Rooms        []string        `json:"rooms"`
		NotRooms     []string        `json:"not_rooms"`
		IncludeLeave bool            `json:"include_leave"`
		Timeline     roomEventFilter `json:"timeline"`
		State        roomEventFilter `json:"state"`
		Ephemeral    roomEventFilter `json:"ephemeral"`
		AccountData  roomEventFilter `json:"account_data"`
	} `json:"room"`
}

// eventFilter is the spec's EventFilter.
type eventFilter struct {
	Limit      *int     `json:"limit"`
	Types      []string `json:"types"` // nil: every type
	NotTypes   []string `json:"not_types"`
	Senders    []string `json:"senders"` // nil: every sender
	NotSenders []string `json:"not_senders"`
}

// roomEventFilter is the spec's RoomEventFilter. /messages applies types,
// not_types, senders, not_senders, contains_url and lazy_load_members.
type roomEventFilter struct {
	eventFilter
	Rooms                     []string `json:"rooms"` // nil: every room
	NotRooms                  []string `json:"not_rooms"`
	ContainsURL               *bool    `json:"contains_url"`
	LazyLoadMembers           bool     `json:"lazy_load_members"`
	IncludeRedundantMembers   bool     `json:"include_redundant_members"`
	UnreadThreadNotifications bool     `json:"unread_thread_notifications"`
}

// decodeFilter reads a Filter and checks what the spec constrains; every
// problem is M_BAD_JSON for the filter API and M_INVALID_PARAM for /sync
// (bad builds the error).
func decodeFilter(data []byte, bad func(format string, args ...any) *mxerr.Error) (*syncFilter, error) {
	f := &syncFilter{}
	if err := json.Unmarshal(data, f); err != nil {
		return nil, bad("not a valid filter: %v", err)
	}
	switch f.EventFormat {
	case "", "client", "federation":
	default:
		return nil, bad("event_format must be client or federation")
	}
	checks := map[string]*eventFilter{
		"account_data": &f.AccountData, "presence": &f.Presence,
		"room.timeline": &f.Room.Timeline.eventFilter, "room.state": &f.Room.State.eventFilter,
		"room.ephemeral": &f.Room.Ephemeral.eventFilter, "room.account_data": &f.Room.AccountData.eventFilter,
	}
	for name, ef := range checks {
		if ef.Limit != nil && *ef.Limit < 0 {
			return nil, bad("%s.limit must not be negative", name)
		}
		for _, u := range append(slices.Clone(ef.Senders), ef.NotSenders...) {
			if !strings.HasPrefix(u, "@") {
				return nil, bad("%s: %q is not a user ID", name, u)
			}
		}
	}
	for _, list := range [][]string{
		f.Room.Rooms, f.Room.NotRooms, f.Room.Timeline.Rooms, f.Room.Timeline.NotRooms,
		f.Room.State.Rooms, f.Room.State.NotRooms, f.Room.Ephemeral.Rooms, f.Room.Ephemeral.NotRooms,
		f.Room.AccountData.Rooms, f.Room.AccountData.NotRooms,
	} {
		for _, r := range list {
			if !strings.HasPrefix(r, "!") {
				return nil, bad("%q is not a room ID", r)
			}
		}
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
	return roomAllowed(f.Room.Rooms, f.Room.NotRooms, roomID)
}

func roomAllowed(rooms, notRooms []string, roomID string) bool {
	if slices.Contains(notRooms, roomID) {
		return false
	}
	return rooms == nil || slices.Contains(rooms, roomID)
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
	if !f.eventFilter.matches(ev.Type, ev.Sender) {
		return false
	}
	if f.ContainsURL != nil && hasURL(ev.Content) != *f.ContainsURL {
		return false
	}
	return true
}

// wantRoom applies the filter's own rooms and not_rooms.
func (f *roomEventFilter) wantRoom(roomID string) bool {
	return roomAllowed(f.Rooms, f.NotRooms, roomID)
}

// matches applies types and senders; sender "" (ephemeral and account data
// events have none) passes the sender conditions.
func (f *eventFilter) matches(typ, sender string) bool {
	if sender != "" {
		if slices.Contains(f.NotSenders, sender) {
			return false
		}
		if f.Senders != nil && !slices.Contains(f.Senders, sender) {
			return false
		}
	}
	if slices.ContainsFunc(f.NotTypes, func(p string) bool { return globMatch(p, typ) }) {
		return false
	}
	if f.Types != nil && !slices.ContainsFunc(f.Types, func(p string) bool { return globMatch(p, typ) }) {
		return false
	}
	return true
}

// limit cuts n events to the filter's limit.
func (f *eventFilter) limit(n int) int {
	if f.Limit != nil {
		return min(n, *f.Limit)
	}
	return n
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

// filters says whether the filter may drop events (for how far to read).
func (f *roomEventFilter) filters() bool {
	return f.Types != nil || len(f.NotTypes) > 0 || f.Senders != nil || len(f.NotSenders) > 0 || f.ContainsURL != nil
}
