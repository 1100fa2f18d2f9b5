// Package fedapi is the federation component's public face: the commands
// and queries other components send it over the bus when something needs
// another server (a remote join, a remote user's keys or profile). It
// imports no other component, so the roomserver, the userapi and the
// clientapi can call the federation while the federation calls them.
//
// Every endpoint refuses servers outside federation.allowed_servers with
// M_FORBIDDEN and, when federation is disabled, no process serves them: a
// caller gets 503 from the bus, which callers turn into M_FORBIDDEN
// ("federation is disabled") for the client.
package fedapi

import (
	"encoding/json"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// JoinTimeout bounds a remote join: a room of 100,000 state events takes
// tens of seconds to verify and store on two cores.
const JoinTimeout = 5 * time.Minute

var (
	// PerformJoin joins a local user to a room this server is not in,
	// through make_join/send_join on one of ServerNames, and stores the
	// room (roomserver.StoreJoinedRoom).
	PerformJoin = bus.Endpoint[PerformJoinRequest, PerformJoinResponse]{Subject: "federation.perform_join", Timeout: JoinTimeout}
	// PerformLeave leaves (or rejects an invite to) a room this server is
	// not in, through make_leave/send_leave.
	PerformLeave = bus.Endpoint[PerformLeaveRequest, PerformLeaveResponse]{Subject: "federation.perform_leave"}
	// PerformKnock knocks on a room this server is not in.
	PerformKnock = bus.Endpoint[PerformKnockRequest, PerformKnockResponse]{Subject: "federation.perform_knock"}
	// PerformInvite asks the invitee's server to countersign an invite
	// (invite v2) and returns the event signed by both servers.
	PerformInvite = bus.Endpoint[PerformInviteRequest, PerformInviteResponse]{Subject: "federation.perform_invite"}
	// Backfill fetches older events of a room from other servers into the
	// roomserver when a client paginates past the local history.
	Backfill = bus.Endpoint[BackfillRequest, BackfillResponse]{Subject: "federation.backfill"}
	// TimestampToEvent asks the other servers of a room for the event
	// closest to a timestamp (timestamp_to_event) when the local history
	// does not reach it, and makes the answer known here. M_NOT_FOUND:
	// no server has an event closer than the local answer, or none needs
	// asking.
	TimestampToEvent = bus.Endpoint[TimestampToEventRequest, TimestampToEventResponse]{Subject: "federation.timestamp_to_event"}

	// QueryKeys is /keys/query for remote users (device keys and
	// cross-signing keys), grouped by server and asked in parallel.
	QueryKeys = bus.Endpoint[QueryKeysRequest, QueryKeysResponse]{Subject: "federation.query_keys"}
	// ClaimKeys is /keys/claim for remote devices.
	ClaimKeys = bus.Endpoint[ClaimKeysRequest, ClaimKeysResponse]{Subject: "federation.claim_keys"}
	// QueryProfile reads a remote user's profile (query/profile).
	QueryProfile = bus.Endpoint[QueryProfileRequest, QueryProfileResponse]{Subject: "federation.query_profile"}
	// QueryDirectory resolves a remote room alias (query/directory).
	QueryDirectory = bus.Endpoint[QueryDirectoryRequest, QueryDirectoryResponse]{Subject: "federation.query_directory"}
	// QueryPublicRooms reads another server's room directory.
	QueryPublicRooms = bus.Endpoint[QueryPublicRoomsRequest, json.RawMessage]{Subject: "federation.query_public_rooms"}
)

type PerformJoinRequest struct {
	RoomID      string          `json:"room_id"`
	UserID      string          `json:"user_id"`
	ServerNames []string        `json:"server_names"` // tried in order
	Content     json.RawMessage `json:"content,omitempty"`
}

type PerformJoinResponse struct {
	RoomID  string `json:"room_id"`
	EventID string `json:"event_id"`
}

type PerformLeaveRequest struct {
	RoomID      string   `json:"room_id"`
	UserID      string   `json:"user_id"`
	ServerNames []string `json:"server_names"`
	Reason      string   `json:"reason,omitempty"`
}

type PerformLeaveResponse struct {
	EventID string `json:"event_id"`
}

type PerformKnockRequest struct {
	RoomID      string   `json:"room_id"`
	UserID      string   `json:"user_id"`
	ServerNames []string `json:"server_names"`
	Reason      string   `json:"reason,omitempty"`
}

type PerformKnockResponse struct {
	RoomID  string `json:"room_id"`
	EventID string `json:"event_id"`
}

type PerformInviteRequest struct {
	RoomVersion string          `json:"room_version"`
	Event       json.RawMessage `json:"event"` // signed by this server
	// InviteRoomState is the stripped state shown to the invitee.
	InviteRoomState []json.RawMessage `json:"invite_room_state,omitempty"`
}

type PerformInviteResponse struct {
	Event json.RawMessage `json:"event"` // signed by both servers
}

type BackfillRequest struct {
	RoomID string `json:"room_id"`
	// FromEventIDs are the earliest events known locally (the backwards
	// extremities) to backfill from.
	FromEventIDs []string `json:"from_event_ids"`
	Limit        int      `json:"limit"`
}

type BackfillResponse struct {
	// Stored is how many events were added to the room's history.
	Stored int `json:"stored"`
}

type TimestampToEventRequest struct {
	RoomID    string `json:"room_id"`
	TS        int64  `json:"ts"`
	Backwards bool   `json:"backwards"`
	// Local is the closest event found in the local history (nil: none);
	// a remote answer is only taken when it is closer.
	Local *TimestampedEvent `json:"local,omitempty"`
}

type TimestampedEvent struct {
	EventID        string `json:"event_id"`
	OriginServerTS int64  `json:"origin_server_ts"`
}

type TimestampToEventResponse struct {
	TimestampedEvent
	// Server is the server that answered.
	Server string `json:"server"`
	// InHistory is true when the event was backfilled into the room's
	// history: the caller answers from the local history again, which
	// applies its user's history visibility. Otherwise the event is
	// stored as an outlier: known here, not in the timeline.
	InHistory bool `json:"in_history,omitempty"`
}

// QueryKeysRequest: user ID -> device IDs (empty: all devices).
type QueryKeysRequest struct {
	DeviceKeys map[string][]string `json:"device_keys"`
}

// QueryKeysResponse has /keys/query's fields for the remote users;
// Failures is keyed by server name.
type QueryKeysResponse struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys,omitempty"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys,omitempty"`
	Failures        map[string]json.RawMessage            `json:"failures,omitempty"`
}

// ClaimKeysRequest: user ID -> device ID -> algorithm.
type ClaimKeysRequest struct {
	OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
}

type ClaimKeysResponse struct {
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	Failures    map[string]json.RawMessage                       `json:"failures,omitempty"`
}

type QueryProfileRequest struct {
	UserID string `json:"user_id"`
	Field  string `json:"field,omitempty"` // empty: the whole profile
}

// QueryProfileResponse is the remote profile as the remote server sent it
// (displayname, avatar_url, custom fields).
type QueryProfileResponse struct {
	Profile map[string]json.RawMessage `json:"profile"`
}

type QueryDirectoryRequest struct {
	Alias string `json:"alias"`
}

type QueryDirectoryResponse struct {
	RoomID  string   `json:"room_id"`
	Servers []string `json:"servers"`
}

type QueryPublicRoomsRequest struct {
	Server               string          `json:"server"`
	Limit                int             `json:"limit,omitempty"`
	Since                string          `json:"since,omitempty"`
	Filter               json.RawMessage `json:"filter,omitempty"`
	IncludeAllNetworks   bool            `json:"include_all_networks,omitempty"`
	ThirdPartyInstanceID string          `json:"third_party_instance_id,omitempty"`
}
