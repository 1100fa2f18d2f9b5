// Package roomserver owns rooms: it builds, signs, authorises and stores
// events, resolves state, and publishes every accepted event on the output
// stream. This file is its public face: the commands and queries other
// components send over the bus, the output stream's payload, and the read
// interface (EventReader) through which syncapi reads the stored events
// without storing them a second time.
package roomserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// Commands and queries, served by the roomserver over NATS.
var (
	CreateRoom = bus.Endpoint[CreateRoomRequest, CreateRoomResponse]{Subject: "roomserver.create_room"}
	// Membership may join a room over federation: as long as a remote join.
	Membership   = bus.Endpoint[MembershipRequest, MembershipResponse]{Subject: "roomserver.membership", Timeout: 5 * time.Minute}
	SendEvent    = bus.Endpoint[SendEventRequest, SendEventResponse]{Subject: "roomserver.send_event"}
	QueryState   = bus.Endpoint[QueryStateRequest, QueryStateResponse]{Subject: "roomserver.query_state"}
	QueryEvent   = bus.Endpoint[QueryEventRequest, QueryEventResponse]{Subject: "roomserver.query_event"}
	ResolveAlias = bus.Endpoint[ResolveAliasRequest, ResolveAliasResponse]{Subject: "roomserver.resolve_alias"}
	// QueryRoomsOfUser lists the rooms where a user's current membership
	// is one of Memberships (all memberships when empty).
	QueryRoomsOfUser = bus.Endpoint[QueryRoomsOfUserRequest, QueryRoomsOfUserResponse]{Subject: "roomserver.query_rooms_of_user"}
)

// Output is the stream of accepted events, in stream-position order.
var Output = bus.Topic[OutputEvent]{Stream: "ROOM_OUTPUT", Subject: "roomserver.output"}

// StateEvent is a state event to create, as in /createRoom's initial_state.
type StateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// CreateRoomRequest is /createRoom, already validated for shape by clientapi.
type CreateRoomRequest struct {
	Sender                    string          `json:"sender"` // full user ID
	SenderDisplayName         string          `json:"sender_displayname,omitempty"`
	SenderAvatarURL           string          `json:"sender_avatar_url,omitempty"`
	RoomVersion               string          `json:"room_version,omitempty"` // empty: the configured default
	Name                      string          `json:"name,omitempty"`
	Topic                     string          `json:"topic,omitempty"`
	Preset                    string          `json:"preset,omitempty"`     // private_chat, trusted_private_chat, public_chat
	Visibility                string          `json:"visibility,omitempty"` // public or private
	Invite                    []string        `json:"invite,omitempty"`
	IsDirect                  bool            `json:"is_direct,omitempty"`
	RoomAliasName             string          `json:"room_alias_name,omitempty"`
	CreationContent           json.RawMessage `json:"creation_content,omitempty"`
	InitialState              []StateEvent    `json:"initial_state,omitempty"`
	PowerLevelContentOverride json.RawMessage `json:"power_level_content_override,omitempty"`
}

type CreateRoomResponse struct {
	RoomID    string `json:"room_id"`
	RoomAlias string `json:"room_alias,omitempty"`
}

// Membership values accepted by MembershipRequest.
const (
	MembershipJoin   = "join"
	MembershipInvite = "invite"
	MembershipLeave  = "leave"
	MembershipBan    = "ban"
	MembershipKnock  = "knock"
)

// MembershipRequest changes Target's membership in a room, sent by Sender.
// Join and leave have Target == Sender; a kick is a leave with another
// target; unban is a leave of a banned target.
type MembershipRequest struct {
	Sender      string   `json:"sender"`
	RoomID      string   `json:"room_id"` // a room ID, or an alias for joins
	Target      string   `json:"target"`
	Membership  string   `json:"membership"`
	Reason      string   `json:"reason,omitempty"`
	IsDirect    bool     `json:"is_direct,omitempty"`
	DisplayName string   `json:"displayname,omitempty"` // the target's profile, for joins and invites
	AvatarURL   string   `json:"avatar_url,omitempty"`
	Via         []string `json:"via,omitempty"`
	DeviceID    string   `json:"device_id,omitempty"`
	TxnID       string   `json:"txn_id,omitempty"`
}

type MembershipResponse struct {
	RoomID  string `json:"room_id"`
	EventID string `json:"event_id"`
}

// SendEventRequest sends a message or state event. TxnID makes the send
// idempotent per (sender, device): a repeated TxnID returns the first
// event's ID without sending again.
type SendEventRequest struct {
	Sender   string          `json:"sender"`
	DeviceID string          `json:"device_id,omitempty"`
	TxnID    string          `json:"txn_id,omitempty"`
	RoomID   string          `json:"room_id"`
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key,omitempty"`
	Content  json.RawMessage `json:"content"`
	Redacts  string          `json:"redacts,omitempty"`
}

type SendEventResponse struct {
	EventID string `json:"event_id"`
}

// QueryStateRequest reads a room's current state as UserID may see it: the
// current state when joined, the state when they left otherwise
// (M_FORBIDDEN if they never were in the room). Type/StateKey, when Type
// is set, select one event.
type QueryStateRequest struct {
	UserID   string  `json:"user_id"`
	RoomID   string  `json:"room_id"`
	Type     string  `json:"type,omitempty"`
	StateKey *string `json:"state_key,omitempty"`
}

type QueryStateResponse struct {
	Events []ClientEvent `json:"events"`
}

// QueryEventRequest reads one event that UserID may see.
type QueryEventRequest struct {
	UserID  string `json:"user_id"`
	RoomID  string `json:"room_id"`
	EventID string `json:"event_id"`
}

type QueryEventResponse struct {
	Event ClientEvent `json:"event"`
	Pos   int64       `json:"pos,omitempty"` // the event's stream position (syncapi orders receipts by it)
}

type QueryRoomsOfUserRequest struct {
	UserID      string   `json:"user_id"`
	Memberships []string `json:"memberships,omitempty"`
}

type QueryRoomsOfUserResponse struct {
	Rooms []MembershipChange `json:"rooms"`
}

type ResolveAliasRequest struct {
	Alias string `json:"alias"`
}

type ResolveAliasResponse struct {
	RoomID  string   `json:"room_id"`
	Servers []string `json:"servers"`
}

// OutputEvent is published once an event is stored: Pos is its stream
// position (the order /sync reads events in).
type OutputEvent struct {
	Pos    int64  `json:"pos"`
	RoomID string `json:"room_id"`
	// RoomVersion tells how to parse Event (event ID format, redaction).
	RoomVersion string  `json:"room_version,omitempty"`
	EventID     string  `json:"event_id"`
	Type        string  `json:"type"`
	Sender      string  `json:"sender"`
	StateKey    *string `json:"state_key,omitempty"`
	// Membership is the new membership of StateKey for m.room.member.
	Membership string `json:"membership,omitempty"`
	// Event is the full signed PDU, for the federation sender.
	Event json.RawMessage `json:"event"`
}

// ClientEvent is an event in the client-server API's format.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       json.RawMessage `json:"unsigned,omitempty"`
}

// StreamEvent is a stored event with its stream position and, for the
// sender's own device, the transaction ID it was sent with.
type StreamEvent struct {
	Pos            int64       `json:"pos"`
	Event          ClientEvent `json:"event"`
	SenderDeviceID string      `json:"sender_device_id,omitempty"`
	TxnID          string      `json:"txn_id,omitempty"`
}

// MembershipChange is a change of one user's membership in one room.
type MembershipChange struct {
	RoomID     string `json:"room_id"`
	Membership string `json:"membership"`
	Pos        int64  `json:"pos"`
	EventID    string `json:"event_id"`
}

// StateSelection names the part of a room's state EventReader.SelectState
// reads.
type StateSelection struct {
	// Pos names the state: just after the room's latest event at or before
	// Pos (as StateAt), or, with Before, just before the event at Pos (as
	// StateBefore).
	Pos    int64
	Before bool
	// With Delta, Keep is told whether an entry differs from the state at
	// Since (as StateAt): the entry is absent there or names another event.
	// Without it, changed is always true.
	Delta bool
	Since int64
	// Keep selects the entries to load; nil loads them all.
	Keep func(eventType, stateKey string, changed bool) bool
}

// EventReader reads what the roomserver stored. Other components (syncapi)
// construct it with NewEventReader on the shared database and only read.
type EventReader interface {
	// MaxPos is the highest stream position of a stored event.
	MaxPos(ctx context.Context) (int64, error)
	// RoomsOfUser lists the rooms where userID's current membership is one
	// of the given memberships (join, invite, leave, ban, knock), with the
	// position of that membership event.
	RoomsOfUser(ctx context.Context, userID string, memberships ...string) ([]MembershipChange, error)
	// MembershipChanges lists userID's membership events with from < pos <= to.
	MembershipChanges(ctx context.Context, userID string, from, to int64) ([]MembershipChange, error)
	// MembershipAt is userID's membership in roomID as of position pos
	// ("" if none).
	MembershipAt(ctx context.Context, roomID, userID string, pos int64) (string, error)
	// RoomsWithEvents lists the rooms with an event at from < pos <= to,
	// in one query (an incremental sync reads only those rooms).
	RoomsWithEvents(ctx context.Context, from, to int64) ([]string, error)
	// Events returns up to limit events of roomID with from < pos <= to, in
	// ascending order when backwards is false; when backwards is true, the
	// limit latest events with pos <= to and pos > from, in descending order.
	Events(ctx context.Context, roomID string, from, to int64, limit int, backwards bool) ([]StreamEvent, error)
	// StateAt is roomID's state just after the event at position pos (the
	// current state when pos is at or past the latest event).
	StateAt(ctx context.Context, roomID string, pos int64) ([]ClientEvent, error)
	// StateBefore is roomID's state just before the event at position pos.
	StateBefore(ctx context.Context, roomID string, pos int64) ([]ClientEvent, error)
	// SelectState is StateAt (or StateBefore) reading only the entries
	// sel.Keep accepts: a room's state is read as (type, state_key) keys
	// first, and only the events kept are loaded and converted.
	SelectState(ctx context.Context, roomID string, sel StateSelection) ([]ClientEvent, error)
	// JoinedUsers lists the users whose current membership is join.
	JoinedUsers(ctx context.Context, roomID string) ([]string, error)
	// RoomMates lists, in one query, the users whose current membership is
	// join in a room where userID's is join (userID included, when joined
	// anywhere).
	RoomMates(ctx context.Context, userID string) ([]string, error)
	// InviteState is the stripped state shown with an invite (create, join
	// rules, name, avatar, canonical alias, encryption, and the invite).
	InviteState(ctx context.Context, roomID, userID string) ([]json.RawMessage, error)
}
