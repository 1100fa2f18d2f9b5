package syncapi

import (
	"context"
	"fmt"

	"github.com/chappe-matrix/chappe/roomserver"
)

// onOutput handles one message of syncapi's output stream, published by
// this process or another; kinds it does not know (from a newer version)
// are skipped. Typing is applied before anyone is woken, so that a woken
// sync reads the new typers.
func (n *notifier) onOutput(ctx context.Context, seq uint64, m *OutputMessage) error {
	switch m.Kind {
	case kindAccountData:
		n.notifyUsers([]string{m.UserID}, streamPos{Stream: m.Pos})
	case kindReceipt:
		if m.Private {
			n.notifyUsers([]string{m.UserID}, streamPos{Stream: m.Pos})
			return nil
		}
		return n.notifyRooms(ctx, []string{m.RoomID}, m.UserID, streamPos{Stream: m.Pos})
	case kindPresence:
		rooms, err := n.reader.RoomsOfUser(ctx, m.UserID, roomserver.MembershipJoin)
		if err != nil {
			return fmt.Errorf("rooms of %s: %w", m.UserID, err)
		}
		ids := make([]string, 0, len(rooms))
		for _, r := range rooms {
			ids = append(ids, r.RoomID)
		}
		return n.notifyRooms(ctx, ids, m.UserID, streamPos{Stream: m.Pos})
	case kindToDevice: // todevice.go: only the recipient hears of it
		n.notifyUsers([]string{m.UserID}, streamPos{Stream: m.Pos})
	case kindDeviceList: // devicelists.go: like presence, the user's rooms
		return n.notifyUserRooms(ctx, m.UserID, streamPos{Stream: m.Pos})
	case kindTyping:
		// Members are loaded first: a failure retries the message, and it
		// must not have been applied by then.
		if err := n.loadRoom(ctx, m.RoomID); err != nil {
			return err
		}
		n.typing.apply(int64(seq), m)
		return n.notifyRooms(ctx, []string{m.RoomID}, m.UserID, streamPos{Typing: int64(seq)})
	}
	return nil
}

// notifyUsers wakes the given users' syncs.
func (n *notifier) notifyUsers(users []string, pos streamPos) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range users {
		if n.isLocal(u) {
			n.notify(u, pos)
		}
	}
}

// notifyRooms wakes the local members of the rooms, and also the user the
// change is about (who may have just left).
func (n *notifier) notifyRooms(ctx context.Context, roomIDs []string, userID string, pos streamPos) error {
	for _, id := range roomIDs {
		if err := n.loadRoom(ctx, id); err != nil {
			return err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range roomIDs {
		for u := range n.members[id] {
			n.notify(u, pos)
		}
	}
	if n.isLocal(userID) {
		n.notify(userID, pos)
	}
	return nil
}
