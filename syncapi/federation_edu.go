package syncapi

import (
	"context"
	"errors"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// What other servers tell about their users, through the federation's
// EDUs: typing, receipts, presence and device-list changes are applied as
// the local ones are, so /sync shows them the same way. (To-device
// messages from other servers go through SendToDevice.) The federation
// has checked that the sending server owns each user.
var (
	RemoteTyping            = bus.Endpoint[RemoteTypingRequest, Empty]{Subject: "syncapi.remote_typing"}
	RemoteReceipt           = bus.Endpoint[RemoteReceiptRequest, Empty]{Subject: "syncapi.remote_receipt"}
	RemotePresence          = bus.Endpoint[RemotePresenceRequest, Empty]{Subject: "syncapi.remote_presence"}
	RemoteDeviceListChanged = bus.Endpoint[RemoteDeviceListRequest, Empty]{Subject: "syncapi.remote_device_list"}
)

// Empty is an answer without content.
type Empty struct{}

type RemoteTypingRequest struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	Typing bool   `json:"typing"`
}

// RemoteReceiptRequest is one user's m.read receipt in a room.
type RemoteReceiptRequest struct {
	RoomID   string `json:"room_id"`
	UserID   string `json:"user_id"`
	EventID  string `json:"event_id"`
	ThreadID string `json:"thread_id,omitempty"`
}

type RemotePresenceRequest struct {
	UserID    string  `json:"user_id"`
	Presence  string  `json:"presence"`
	StatusMsg *string `json:"status_msg,omitempty"`
	// LastActiveAgo (ms) as the user's server gave it; 0: active now.
	LastActiveAgo int64 `json:"last_active_ago,omitempty"`
}

type RemoteDeviceListRequest struct {
	UserID string `json:"user_id"`
}

// remoteTypingTimeout: a remote user stops typing after this unless their
// server says again (servers resend while the user types, and send
// typing false when they stop).
const remoteTypingTimeout = maxTypingTimeout

// remotePresenceMaxAgo bounds the last_active_ago taken from a remote
// server.
const remotePresenceMaxAgo = 365 * 24 * time.Hour

func (s *SyncAPI) serveFederationEDUs() error {
	return errors.Join(
		RemoteTyping.Serve(s.bus, s.remoteTyping),
		RemoteReceipt.Serve(s.bus, s.remoteReceipt),
		RemotePresence.Serve(s.bus, s.remotePresence),
		RemoteDeviceListChanged.Serve(s.bus, s.remoteDeviceList),
	)
}

func (s *SyncAPI) remoteTyping(ctx context.Context, req *RemoteTypingRequest) (*Empty, error) {
	if err := s.checkJoined(ctx, req.RoomID, req.UserID); err != nil {
		return nil, err
	}
	msg := &OutputMessage{Kind: kindTyping, UserID: req.UserID, RoomID: req.RoomID, Typing: req.Typing}
	if req.Typing {
		msg.UntilMS = time.Now().Add(remoteTypingTimeout).UnixMilli()
	}
	if _, err := Output.Publish(ctx, s.bus, msg); err != nil {
		return nil, err
	}
	if req.Typing {
		s.expireTyping(req.RoomID, req.UserID, msg.UntilMS, remoteTypingTimeout)
	}
	return &Empty{}, nil
}

func (s *SyncAPI) remoteReceipt(ctx context.Context, req *RemoteReceiptRequest) (*Empty, error) {
	if err := s.checkJoined(ctx, req.RoomID, req.UserID); err != nil {
		return nil, err
	}
	if err := s.storeMarker(ctx, req.RoomID, req.UserID, receiptRead, req.ThreadID, req.EventID); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

func (s *SyncAPI) remotePresence(ctx context.Context, req *RemotePresenceRequest) (*Empty, error) {
	if !s.presenceEnabled {
		return &Empty{}, nil
	}
	if !validPresence(req.Presence) {
		return nil, mxerr.InvalidParam("presence %q is not online, offline or unavailable", req.Presence)
	}
	if req.StatusMsg != nil && len(*req.StatusMsg) > maxStatusMsgBytes {
		trimmed := (*req.StatusMsg)[:maxStatusMsgBytes]
		req.StatusMsg = &trimmed
	}
	// The remote clock's "ago" is kept as an age: last active at now−ago
	// here (bounded, a server cannot date activity in the future or before
	// presence existed).
	ago := min(max(req.LastActiveAgo, 0), remotePresenceMaxAgo.Milliseconds())
	lastActive := time.Now().Add(-time.Duration(ago) * time.Millisecond)
	if err := s.storePresence(ctx, req.UserID, req.Presence, req.StatusMsg, true, lastActive); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// remoteDeviceList records that a remote user's devices or cross-signing
// keys changed, as a local change is: the local users who share a room
// with them see the user in device_lists.changed and query the keys again.
func (s *SyncAPI) remoteDeviceList(ctx context.Context, req *RemoteDeviceListRequest) (*Empty, error) {
	if err := s.onKeyChange(ctx, 0, &userapi.KeyChange{UserID: req.UserID}); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}
