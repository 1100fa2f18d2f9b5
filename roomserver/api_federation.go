package roomserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// What the federation component asks of the roomserver. The federation
// does the network (fetching missing events, state, keys) and checks
// signatures and content hashes before anything reaches these endpoints;
// the roomserver does the DAG: auth against the auth events, against the
// state before the event and against the current state (soft failure),
// state resolution where branches meet, forward extremities, storage and
// the Output stream.
var (
	// InputEvents stores events received from other servers.
	InputEvents = bus.Endpoint[InputEventsRequest, InputEventsResponse]{Subject: "roomserver.input_events"}
	// StoreJoinedRoom stores a room this server just joined through
	// send_join: the state and auth chain as outliers, then the join event
	// as the room's first timeline event, its state the returned state.
	StoreJoinedRoom = bus.Endpoint[StoreJoinedRoomRequest, StoreJoinedRoomResponse]{Subject: "roomserver.store_joined_room", Timeout: 5 * time.Minute}
	// StoreInvite records a local user's membership in a room this server
	// is not in: an invite received from another server, the leave that
	// rejects it, a knock (the room may be unknown here), so /sync shows it.
	StoreInvite = bus.Endpoint[StoreInviteRequest, StoreInviteResponse]{Subject: "roomserver.store_invite"}
	// BuildEvent builds an unsigned event on the room's current head for
	// another server's make_join, make_leave and make_knock: prev_events,
	// auth_events and depth filled in, checked against the auth rules of
	// the current state (M_FORBIDDEN when the user may not do it now).
	BuildEvent = bus.Endpoint[BuildEventRequest, BuildEventResponse]{Subject: "roomserver.build_event"}
)

// Kinds of input events.
const (
	// InputKindNew is a live event from /send (or a remote join, leave,
	// knock or invite): it extends the DAG and, unless soft-failed, the
	// timeline, and may change the current state.
	InputKindNew = "new"
	// InputKindOutlier is an event stored for its own sake (an auth or
	// state event fetched to check another): no timeline, no state change.
	InputKindOutlier = "outlier"
	// InputKindBackfill is an older event fetched by backfill: stored with
	// its state but never changes the current state or the extremities.
	InputKindBackfill = "backfill"
)

// InputEventsRequest is one room's events, oldest first.
type InputEventsRequest struct {
	RoomID string       `json:"room_id"`
	Events []InputEvent `json:"events"`
}

type InputEvent struct {
	Kind  string          `json:"kind"`
	Event json.RawMessage `json:"event"` // signatures and hashes already checked
	// Origin is the server that sent it (for logs and soft-failure).
	Origin string `json:"origin,omitempty"`
	// StateBefore, when set, is the room state before the event (event IDs,
	// each already stored, e.g. as outliers): the federation sets it when
	// the prev_events could not all be fetched and it asked /state_ids.
	// Unset, the state is computed from the prev_events, which must be
	// stored.
	StateBefore []string `json:"state_before,omitempty"`
}

// Statuses of an input event.
const (
	InputAccepted   = "accepted"
	InputDuplicate  = "duplicate"   // already stored; nothing changed
	InputSoftFailed = "soft_failed" // stored; not in the timeline nor the state
	InputRejected   = "rejected"    // fails the auth rules; stored as rejected
	// InputMissing: prev_events (without StateBefore) or auth_events are
	// not stored; Missing names them. Nothing was stored.
	InputMissing = "missing"
)

type InputEventsResponse struct {
	Results []InputResult `json:"results"` // one per input event, same order
}

type InputResult struct {
	EventID string   `json:"event_id"`
	Status  string   `json:"status"`
	Reason  string   `json:"reason,omitempty"`
	Missing []string `json:"missing,omitempty"`
	// Pos is the stream position of an event accepted into the timeline
	// (0 for the others).
	Pos int64 `json:"pos,omitempty"`
}

// StoreJoinedRoomRequest is send_join's answer, verified.
type StoreJoinedRoomRequest struct {
	RoomVersion string            `json:"room_version"`
	JoinEvent   json.RawMessage   `json:"join_event"` // signed by the resident server too
	State       []json.RawMessage `json:"state"`      // the state before the join
	AuthChain   []json.RawMessage `json:"auth_chain"`
	// StateEventIDs and AuthChainEventIDs, when set, are the IDs of the
	// events of State and AuthChain, in the same order, as the federation
	// computed them checking the events: the roomserver then does not hash
	// every event again.
	StateEventIDs     []string `json:"state_event_ids,omitempty"`
	AuthChainEventIDs []string `json:"auth_chain_event_ids,omitempty"`
	// A big room's answer is over the bus's message limit (1 MB): it is
	// then sent in parts, auth events first (an event's auth events in
	// its part or an earlier one), with the join in each for the room's ID
	// and version. A Partial request stores its events as outliers and
	// answers with StateSnapshot: the state given so far, its State on top
	// of BaseState. The next request names that in BaseState, up to the
	// last (not Partial) one, which joins the room with the state given by
	// all. Until then nothing of the room shows (a join that stops half way
	// leaves outliers and unused snapshots).
	Partial   bool  `json:"partial,omitempty"`
	BaseState int64 `json:"base_state,omitempty"`
}

type StoreJoinedRoomResponse struct {
	RoomID  string `json:"room_id"`
	EventID string `json:"event_id"`
	// StateSnapshot is the state given so far (Partial requests).
	StateSnapshot int64 `json:"state_snapshot,omitempty"`
}

type StoreInviteRequest struct {
	RoomVersion string          `json:"room_version"`
	Event       json.RawMessage `json:"event"` // the invite, signed by both servers
	// InviteRoomState is the stripped state the inviting server sent.
	InviteRoomState []json.RawMessage `json:"invite_room_state,omitempty"`
}

type StoreInviteResponse struct{}

type BuildEventRequest struct {
	RoomID   string          `json:"room_id"`
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key,omitempty"`
	Sender   string          `json:"sender"`
	Content  json.RawMessage `json:"content"`
	// SupportedVersions are the room versions the asking server supports
	// (make_join's ver); empty accepts any. M_INCOMPATIBLE_ROOM_VERSION
	// when the room's is not among them.
	SupportedVersions []string `json:"supported_versions,omitempty"`
}

type BuildEventResponse struct {
	RoomVersion string `json:"room_version"`
	// Event is the proto-event (no event_id, hashes or signatures) for
	// the asking server to complete and sign.
	Event json.RawMessage `json:"event"`
}

// FederationReader reads what the federation serves to other servers and
// needs to send: events by ID, states at events, auth chains, the DAG for
// backfill and missing events, and who is in a room. Constructed with
// NewFederationReader on the shared database; read only.
type FederationReader interface {
	// RoomVersion is the room's version; ok is false for a room this
	// server does not know.
	RoomVersion(ctx context.Context, roomID string) (version string, ok bool, err error)
	// Events returns the stored PDUs among eventIDs (missing IDs are left
	// out), rejected events included only when withRejected.
	Events(ctx context.Context, eventIDs []string, withRejected bool) ([]StoredPDU, error)
	// StateBefore is the room state before eventID (event IDs), and the
	// auth chain of that state (event IDs, state not repeated).
	StateBefore(ctx context.Context, roomID, eventID string) (state, authChain []string, err error)
	// AuthChain is the union of the auth chains of eventIDs (the events
	// themselves not included unless another's auth event).
	AuthChain(ctx context.Context, eventIDs []string) ([]StoredPDU, error)
	// Backfill walks prev_events back from fromIDs (included), by
	// decreasing depth, up to limit events.
	Backfill(ctx context.Context, roomID string, fromIDs []string, limit int) ([]StoredPDU, error)
	// MissingEvents walks prev_events back from latest (excluded), stopping
	// at earliest and below minDepth, up to limit events, oldest first.
	MissingEvents(ctx context.Context, roomID string, earliest, latest []string, limit int, minDepth int64) ([]StoredPDU, error)
	// CurrentState reads one current state event; nil when absent.
	CurrentState(ctx context.Context, roomID, eventType, stateKey string) (*StoredPDU, error)
	// JoinedServers lists the servers with a joined member in the
	// current state (this server included when it has one).
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	// JoinedServersBefore lists the servers among JoinedServers that were
	// in the room before the event at stream position pos: one of their
	// members has been joined since before it. The others joined after
	// the event, with a state that already holds it.
	JoinedServersBefore(ctx context.Context, roomID string, pos int64) ([]string, error)
	// ServerWasInRoom tells whether server had a member joined to the room
	// at some point (what history visibility needs to answer /state,
	// /backfill, /event for that server).
	ServerWasInRoom(ctx context.Context, roomID, server string) (bool, error)
	// Extremities are the room's forward extremities (for
	// get_missing_events' earliest_events and for outbound prev_events).
	Extremities(ctx context.Context, roomID string) ([]string, error)
	// BackwardExtremities are the earliest events known in the room whose
	// prev_events are not stored (where backfill starts).
	BackwardExtremities(ctx context.Context, roomID string) ([]string, error)
	ServerVisibility // what a server may see of a room's history (visibility_server.go)
	TimestampReader  // events by timestamp, for timestamp_to_event (reader_timestamp.go)
}

// StoredPDU is a stored event as federation sends it.
type StoredPDU struct {
	EventID     string          `json:"event_id"`
	RoomID      string          `json:"room_id"`
	RoomVersion string          `json:"room_version"`
	JSON        json.RawMessage `json:"json"` // redacted when the event was
	Depth       int64           `json:"depth"`
	Rejected    bool            `json:"rejected,omitempty"`
	Outlier     bool            `json:"outlier,omitempty"`
}
