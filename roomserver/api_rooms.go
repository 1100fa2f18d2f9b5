package roomserver

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// The room surface beyond the foundation: aliases and the room directory,
// member lists, context, relations and threads, timestamps, upgrades,
// spaces and reports. Requests name the requesting user (UserID or
// Sender); the roomserver applies the visibility and power-level checks.
var (
	SetAlias        = bus.Endpoint[SetAliasRequest, Empty]{Subject: "roomserver.set_alias"}
	DeleteAlias     = bus.Endpoint[DeleteAliasRequest, Empty]{Subject: "roomserver.delete_alias"}
	QueryAliases    = bus.Endpoint[QueryAliasesRequest, QueryAliasesResponse]{Subject: "roomserver.query_aliases"}
	QueryVisibility = bus.Endpoint[RoomRequest, VisibilityResponse]{Subject: "roomserver.query_visibility"}
	SetVisibility   = bus.Endpoint[SetVisibilityRequest, Empty]{Subject: "roomserver.set_visibility"}
	PublicRooms     = bus.Endpoint[PublicRoomsRequest, PublicRoomsResponse]{Subject: "roomserver.public_rooms"}

	QueryMembers       = bus.Endpoint[QueryMembersRequest, QueryMembersResponse]{Subject: "roomserver.query_members"}
	QueryJoinedMembers = bus.Endpoint[RoomRequest, QueryJoinedMembersResponse]{Subject: "roomserver.query_joined_members"}
	Forget             = bus.Endpoint[RoomRequest, Empty]{Subject: "roomserver.forget"}
	// QueryForgotten lists the rooms a user forgot and has not come back to.
	QueryForgotten = bus.Endpoint[QueryForgottenRequest, QueryForgottenResponse]{Subject: "roomserver.query_forgotten"}

	QueryContext     = bus.Endpoint[QueryContextRequest, QueryContextResponse]{Subject: "roomserver.query_context"}
	TimestampToEvent = bus.Endpoint[TimestampToEventRequest, TimestampToEventResponse]{Subject: "roomserver.timestamp_to_event"}
	QueryRelations   = bus.Endpoint[QueryRelationsRequest, QueryRelationsResponse]{Subject: "roomserver.query_relations"}
	QueryThreads     = bus.Endpoint[QueryThreadsRequest, QueryThreadsResponse]{Subject: "roomserver.query_threads"}

	UpgradeRoom    = bus.Endpoint[UpgradeRoomRequest, UpgradeRoomResponse]{Subject: "roomserver.upgrade_room"}
	QueryHierarchy = bus.Endpoint[QueryHierarchyRequest, QueryHierarchyResponse]{Subject: "roomserver.query_hierarchy"}
	Report         = bus.Endpoint[ReportRequest, Empty]{Subject: "roomserver.report"}
)

// Empty is the answer of commands that return nothing.
type Empty struct{}

// RoomRequest names a room and the user asking about it.
type RoomRequest struct {
	UserID string `json:"user_id"`
	RoomID string `json:"room_id"`
}

type SetAliasRequest struct {
	UserID string `json:"user_id"`
	Alias  string `json:"alias"`
	RoomID string `json:"room_id"`
}

type DeleteAliasRequest struct {
	UserID string `json:"user_id"`
	Alias  string `json:"alias"`
}

type QueryAliasesRequest = RoomRequest

type QueryAliasesResponse struct {
	Aliases []string `json:"aliases"`
}

// Directory visibilities.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
)

type VisibilityResponse struct {
	Visibility string `json:"visibility"`
}

type SetVisibilityRequest struct {
	UserID     string `json:"user_id"`
	RoomID     string `json:"room_id"`
	Visibility string `json:"visibility"`
}

// PublicRoomsRequest pages through the published rooms. Since is a
// next_batch or prev_batch token of an earlier answer.
type PublicRoomsRequest struct {
	Limit      int    `json:"limit,omitempty"`
	Since      string `json:"since,omitempty"`
	SearchTerm string `json:"search_term,omitempty"`
	// RoomTypes, when not empty, keeps rooms of these types; "" stands
	// for rooms without a type (null in the client's filter).
	RoomTypes []string `json:"room_types,omitempty"`
}

// RoomSummary is a room as the directory and the space hierarchy show it.
type RoomSummary struct {
	RoomID           string          `json:"room_id"`
	Name             string          `json:"name,omitempty"`
	Topic            string          `json:"topic,omitempty"`
	AvatarURL        string          `json:"avatar_url,omitempty"`
	CanonicalAlias   string          `json:"canonical_alias,omitempty"`
	NumJoinedMembers int             `json:"num_joined_members"`
	WorldReadable    bool            `json:"world_readable"`
	GuestCanJoin     bool            `json:"guest_can_join"`
	JoinRule         string          `json:"join_rule,omitempty"`
	RoomType         string          `json:"room_type,omitempty"`
	ChildrenState    json.RawMessage `json:"children_state,omitempty"` // hierarchy only
}

type PublicRoomsResponse struct {
	Chunk                  []RoomSummary `json:"chunk"`
	NextBatch              string        `json:"next_batch,omitempty"`
	PrevBatch              string        `json:"prev_batch,omitempty"`
	TotalRoomCountEstimate int           `json:"total_room_count_estimate"`
}

// QueryMembersRequest is /members: At is a stream position (0: now).
type QueryMembersRequest struct {
	UserID        string `json:"user_id"`
	RoomID        string `json:"room_id"`
	At            int64  `json:"at,omitempty"`
	Membership    string `json:"membership,omitempty"`
	NotMembership string `json:"not_membership,omitempty"`
}

type QueryMembersResponse struct {
	Chunk []ClientEvent `json:"chunk"`
}

type JoinedMember struct {
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

type QueryJoinedMembersResponse struct {
	Joined map[string]JoinedMember `json:"joined"`
}

type QueryForgottenRequest struct {
	UserID string `json:"user_id"`
}

type QueryForgottenResponse struct {
	RoomIDs []string `json:"room_ids"`
}

// EventFilter is the part of a RoomEventFilter the roomserver applies.
type EventFilter struct {
	Types           []string `json:"types,omitempty"`
	NotTypes        []string `json:"not_types,omitempty"`
	Senders         []string `json:"senders,omitempty"`
	NotSenders      []string `json:"not_senders,omitempty"`
	LazyLoadMembers bool     `json:"lazy_load_members,omitempty"`
}

type QueryContextRequest struct {
	UserID  string       `json:"user_id"`
	RoomID  string       `json:"room_id"`
	EventID string       `json:"event_id"`
	Limit   int          `json:"limit"`
	Filter  *EventFilter `json:"filter,omitempty"`
}

// QueryContextResponse carries stream positions; clientapi turns them into
// tokens of syncapi's form.
type QueryContextResponse struct {
	Event        ClientEvent   `json:"event"`
	EventsBefore []ClientEvent `json:"events_before"`
	EventsAfter  []ClientEvent `json:"events_after"`
	State        []ClientEvent `json:"state"`
	StartPos     int64         `json:"start_pos"`
	EndPos       int64         `json:"end_pos"`
}

type TimestampToEventRequest struct {
	UserID    string `json:"user_id"`
	RoomID    string `json:"room_id"`
	TS        int64  `json:"ts"`
	Backwards bool   `json:"backwards"`
}

type TimestampToEventResponse struct {
	EventID        string `json:"event_id"`
	OriginServerTS int64  `json:"origin_server_ts"`
}

// QueryRelationsRequest lists the events relating to EventID. From and To
// are stream positions with /messages' meaning (0: unset).
type QueryRelationsRequest struct {
	UserID    string `json:"user_id"`
	RoomID    string `json:"room_id"`
	EventID   string `json:"event_id"`
	RelType   string `json:"rel_type,omitempty"`
	EventType string `json:"event_type,omitempty"`
	From      int64  `json:"from,omitempty"`
	To        int64  `json:"to,omitempty"`
	Limit     int    `json:"limit"`
	Forwards  bool   `json:"forwards,omitempty"`
	Recurse   bool   `json:"recurse,omitempty"`
}

type QueryRelationsResponse struct {
	Chunk          []ClientEvent `json:"chunk"`
	NextPos        int64         `json:"next_pos,omitempty"` // 0: no more
	RecursionDepth int           `json:"recursion_depth,omitempty"`
}

type QueryThreadsRequest struct {
	UserID       string `json:"user_id"`
	RoomID       string `json:"room_id"`
	Participated bool   `json:"participated,omitempty"`
	From         int64  `json:"from,omitempty"` // threads whose latest reply is before this position
	Limit        int    `json:"limit"`
}

type QueryThreadsResponse struct {
	Chunk   []ClientEvent `json:"chunk"`
	NextPos int64         `json:"next_pos,omitempty"`
}

type UpgradeRoomRequest struct {
	Sender     string `json:"sender"`
	RoomID     string `json:"room_id"`
	NewVersion string `json:"new_version"`
}

type UpgradeRoomResponse struct {
	ReplacementRoom string `json:"replacement_room"`
}

type QueryHierarchyRequest struct {
	UserID        string `json:"user_id"`
	RoomID        string `json:"room_id"`
	MaxDepth      int    `json:"max_depth"` // -1: the server's limit
	Limit         int    `json:"limit"`
	From          int    `json:"from,omitempty"` // offset into the walk
	SuggestedOnly bool   `json:"suggested_only,omitempty"`
}

type QueryHierarchyResponse struct {
	Rooms   []RoomSummary `json:"rooms"`
	NextPos int           `json:"next_pos,omitempty"` // 0: no more
}

// ReportRequest reports a room, or one of its events when EventID is set.
type ReportRequest struct {
	UserID  string `json:"user_id"`
	RoomID  string `json:"room_id"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Score   *int   `json:"score,omitempty"`
}
