package syncapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/roomserver"
)

// syncResponse is /sync's answer. Sections with nothing to say are sent as
// empty objects and lists rather than left out: every client accepts them,
// and some older ones fail on a missing key.
type syncResponse struct {
	NextBatch   string    `json:"next_batch"`
	Rooms       syncRooms `json:"rooms"`
	AccountData eventList `json:"account_data"`
	Presence    eventList `json:"presence"`
	e2eeSync              // devicelists_sync.go: to-device, device lists, key counts
}

type syncRooms struct {
	Join   map[string]*joinedRoom  `json:"join"`
	Invite map[string]*invitedRoom `json:"invite"`
	Leave  map[string]*leftRoom    `json:"leave"`
	Knock  map[string]*knockedRoom `json:"knock,omitempty"`
}

func newSyncResponse() *syncResponse {
	return &syncResponse{
		Rooms: syncRooms{
			Join:   map[string]*joinedRoom{},
			Invite: map[string]*invitedRoom{},
			Leave:  map[string]*leftRoom{},
			Knock:  map[string]*knockedRoom{},
		},
		AccountData: emptyEventList(),
		Presence:    emptyEventList(),
	}
}

// empty is true when the response tells the client nothing new: a waiting
// sync keeps waiting.
func (r *syncResponse) empty() bool {
	return len(r.Rooms.Join)+len(r.Rooms.Invite)+len(r.Rooms.Leave)+len(r.Rooms.Knock)+
		len(r.AccountData.Events)+len(r.Presence.Events) == 0 && r.e2eeEmpty()
}

type joinedRoom struct {
	Timeline    timeline   `json:"timeline"`
	State       stateBatch `json:"state"`
	AccountData eventList  `json:"account_data"`
	Ephemeral   eventList  `json:"ephemeral"`
	// MSC4222 (state_after.go): set instead of State on request.
	StateAfter         *stateBatch `json:"state_after,omitempty"`
	UnstableStateAfter *stateBatch `json:"org.matrix.msc4222.state_after,omitempty"`
	// The room summary is not computed yet; an empty object tells clients
	// to work it out from the state themselves.
	Summary struct{} `json:"summary"`

	// Set by addPushData (notifications_sync.go).
	UnreadNotifications       unreadNotifications            `json:"unread_notifications"`
	UnreadThreadNotifications map[string]unreadNotifications `json:"unread_thread_notifications,omitempty"`
}

func newJoinedRoom(tl timeline, state stateBatch) *joinedRoom {
	return &joinedRoom{Timeline: tl, State: state, AccountData: emptyEventList(), Ephemeral: emptyEventList()}
}

type leftRoom struct {
	Timeline    timeline   `json:"timeline"`
	State       stateBatch `json:"state"`
	AccountData eventList  `json:"account_data"`
	// MSC4222, as in joinedRoom.
	StateAfter         *stateBatch `json:"state_after,omitempty"`
	UnstableStateAfter *stateBatch `json:"org.matrix.msc4222.state_after,omitempty"`
}

type invitedRoom struct {
	InviteState strippedBatch `json:"invite_state"`
}

type knockedRoom struct {
	KnockState strippedBatch `json:"knock_state"`
}

type timeline struct {
	Events    []roomserver.ClientEvent `json:"events"`
	Limited   bool                     `json:"limited"`
	PrevBatch string                   `json:"prev_batch,omitempty"`
}

type stateBatch struct {
	Events []roomserver.ClientEvent `json:"events"`
	// lazyOnly are the IDs of the member events sent only because lazy
	// loading asks for the timeline senders' members: not news, so the
	// device lists do not read them as joins (devicelists_sync.go).
	lazyOnly map[string]bool
}

type strippedBatch struct {
	Events []json.RawMessage `json:"events"`
}

// eventList is an EventBatch of events that are not room events (account
// data, presence, ephemeral events), kept as encoded.
type eventList struct {
	Events []json.RawMessage `json:"events"`
}

func emptyEventList() eventList { return eventList{Events: []json.RawMessage{}} }

// messagesResponse is /messages' answer; End is left out once there is
// nothing further to read.
type messagesResponse struct {
	Start string                   `json:"start"`
	End   string                   `json:"end,omitempty"`
	Chunk []roomserver.ClientEvent `json:"chunk"`
	State []roomserver.ClientEvent `json:"state,omitempty"`
}
