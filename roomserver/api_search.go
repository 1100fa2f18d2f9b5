package roomserver

import "github.com/chappe-matrix/chappe/internal/bus"

// SearchRoomEvents is /search's room_events category over the rooms the
// user is joined to (search.go; the index is search_index.go).
var SearchRoomEvents = bus.Endpoint[SearchRoomEventsRequest, SearchRoomEventsResponse]{Subject: "roomserver.search_room_events"}

// Search orders.
const (
	SearchOrderRank   = "rank"
	SearchOrderRecent = "recent"
)

// SearchRoomEventsRequest is validated for shape by clientapi. Keys are
// among SearchKey*; empty means all three. Filter applies to events,
// Rooms/NotRooms to rooms. Pagination: BeforePos (order recent: results
// strictly before that stream position; 0 from the latest) or Offset
// (order rank: results past the first Offset).
type SearchRoomEventsRequest struct {
	UserID         string       `json:"user_id"`
	Term           string       `json:"term"`
	Keys           []string     `json:"keys,omitempty"`
	Filter         *EventFilter `json:"filter,omitempty"`
	Rooms          []string     `json:"rooms,omitempty"`
	NotRooms       []string     `json:"not_rooms,omitempty"`
	Limit          int          `json:"limit"`
	OrderBy        string       `json:"order_by"`
	BeforePos      int64        `json:"before_pos,omitempty"`
	Offset         int          `json:"offset,omitempty"`
	BeforeLimit    int          `json:"before_limit,omitempty"`
	AfterLimit     int          `json:"after_limit,omitempty"`
	IncludeProfile bool         `json:"include_profile,omitempty"`
}

// SearchRoomEventsResponse: NextPos / NextOffset are set when there are
// more results (for the order asked). Count is approximate, as the spec allows.
type SearchRoomEventsResponse struct {
	Count      int            `json:"count"`
	Results    []SearchResult `json:"results"`
	Highlights []string       `json:"highlights"`
	NextPos    int64          `json:"next_pos,omitempty"`
	NextOffset int            `json:"next_offset,omitempty"`
}

type SearchResult struct {
	Rank    float64        `json:"rank"`
	Event   ClientEvent    `json:"event"`
	Context *SearchContext `json:"context,omitempty"`
}

// SearchContext carries positions like QueryContextResponse; clientapi
// turns them into tokens.
type SearchContext struct {
	EventsBefore []ClientEvent           `json:"events_before"`
	EventsAfter  []ClientEvent           `json:"events_after"`
	StartPos     int64                   `json:"start_pos"`
	EndPos       int64                   `json:"end_pos"`
	ProfileInfo  map[string]JoinedMember `json:"profile_info,omitempty"`
}
