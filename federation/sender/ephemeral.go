package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/syncapi"
)

// The kinds of syncapi.OutputMessage the sender forwards (syncapi's
// kindTyping, kindReceipt and kindPresence).
const (
	syncKindTyping   = "typing"
	syncKindReceipt  = "receipt"
	syncKindPresence = "presence"
)

// presenceActiveWindow: an online user active this recently is
// currently_active (syncapi's activeWindow).
const presenceActiveWindow = 5 * time.Minute

// onSyncOutput turns the typing notifications, read receipts and presence
// changes of local users into EDUs. syncapi's output carries typing in
// full; receipts and presence are read from its tables at the message's
// position (a receipt since replaced by a newer one is left to the newer
// message). Changes of remote users, which syncapi also records when
// their servers send them, are not ours to send.
func (s *Sender) onSyncOutput(ctx context.Context, _ uint64, msg *syncapi.OutputMessage) error {
	if mxid.ServerOf(msg.UserID) != s.opts.ServerName {
		return nil
	}
	switch msg.Kind {
	case syncKindTyping:
		return s.sendTyping(ctx, msg)
	case syncKindReceipt:
		return s.sendReceipt(ctx, msg)
	case syncKindPresence:
		return s.sendPresence(ctx, msg)
	}
	return nil
}

func (s *Sender) sendTyping(ctx context.Context, msg *syncapi.OutputMessage) error {
	if msg.Typing && msg.UntilMS < time.Now().UnixMilli() {
		return nil // replayed after it ran out
	}
	content, _ := json.Marshal(map[string]any{"room_id": msg.RoomID, "user_id": msg.UserID, "typing": msg.Typing})
	return s.queueToRoom(ctx, msg.RoomID, "m.typing", "typing|"+msg.RoomID+"|"+msg.UserID, content)
}

func (s *Sender) sendReceipt(ctx context.Context, msg *syncapi.OutputMessage) error {
	if msg.Private {
		return nil
	}
	r, err := s.opts.Sync.Receipt(ctx, msg.RoomID, msg.UserID, msg.Pos)
	if err != nil || r == nil || r.Type != "m.read" {
		return err
	}
	data := map[string]any{"ts": r.TS}
	if r.ThreadID != "" {
		data["thread_id"] = r.ThreadID
	}
	content, _ := json.Marshal(map[string]any{msg.RoomID: map[string]any{
		"m.read": map[string]any{msg.UserID: map[string]any{"event_ids": []string{r.EventID}, "data": data}},
	}})
	return s.queueToRoom(ctx, msg.RoomID, "m.receipt", "receipt|"+msg.RoomID+"|"+msg.UserID+"|"+r.ThreadID, content)
}

func (s *Sender) sendPresence(ctx context.Context, msg *syncapi.OutputMessage) error {
	if !s.opts.Presence {
		return nil
	}
	p, err := s.opts.Sync.Presence(ctx, msg.UserID)
	if err != nil || p == nil {
		return err
	}
	age := max(time.Now().UnixMilli()-p.LastActiveMS, 0)
	update := map[string]any{
		"user_id":          msg.UserID,
		"presence":         p.Presence,
		"last_active_ago":  age,
		"currently_active": p.Presence == "online" && age < presenceActiveWindow.Milliseconds(),
	}
	if p.StatusMsg != nil {
		update["status_msg"] = *p.StatusMsg
	}
	content, _ := json.Marshal(map[string]any{"push": []any{update}})
	servers, err := s.serversSharingRooms(ctx, msg.UserID)
	if err != nil {
		return err
	}
	return s.queueEDUs(ctx, eduFor(servers, "m.presence", "presence|"+msg.UserID, content))
}

// queueToRoom queues an EDU for every server joined to roomID.
func (s *Sender) queueToRoom(ctx context.Context, roomID, eduType, key string, content json.RawMessage) error {
	servers, err := s.opts.Rooms.JoinedServers(ctx, roomID)
	if err != nil {
		return fmt.Errorf("servers of %s: %w", roomID, err)
	}
	return s.queueEDUs(ctx, eduFor(s.destinations(servers), eduType, key, content))
}

// eduFor is the same EDU for each server.
func eduFor(servers []string, eduType, key string, content json.RawMessage) []queuedEDU {
	out := make([]queuedEDU, len(servers))
	for i, srv := range servers {
		out[i] = queuedEDU{destination: srv, eduType: eduType, key: key, content: content}
	}
	return out
}

// serversSharingRooms lists the other servers with a member joined to a
// room userID is joined to: those that should hear of the user's
// presence and devices.
func (s *Sender) serversSharingRooms(ctx context.Context, userID string) ([]string, error) {
	resp, err := roomserver.QueryRoomsOfUser.Call(ctx, s.opts.Bus, &roomserver.QueryRoomsOfUserRequest{
		UserID: userID, Memberships: []string{roomserver.MembershipJoin},
	})
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", userID, err)
	}
	var all []string
	for _, r := range resp.Rooms {
		servers, err := s.opts.Rooms.JoinedServers(ctx, r.RoomID)
		if err != nil {
			return nil, fmt.Errorf("servers of %s: %w", r.RoomID, err)
		}
		all = append(all, servers...)
	}
	return s.destinations(all), nil
}
