package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// Device lists. The userapi announces on KEY_CHANGES each user whose
// devices or cross-signing keys changed; syncapi records each announcement
// through one durable consumer (shared by every syncapi process) as a
// sy_device_list_changes row at the next sy_stream position, then wakes
// the syncs concerned through SYNC_OUTPUT. A sync's device_lists.changed
// is then the users with a row in (since, now] who share a room with the
// syncing user, plus the users who joined one of its rooms (or whose room
// it joined) in that range; left is the users it stopped sharing any room
// with. A crash before the acknowledgement records a change twice, which
// only repeats a "changed".

// keyChangesConsumer is the durable consumer's name.
const keyChangesConsumer = "syncapi-key-changes"

// onKeyChange records one announcement.
func (s *SyncAPI) onKeyChange(ctx context.Context, _ uint64, kc *userapi.KeyChange) error {
	var pos int64
	err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var err error
		if pos, err = nextPos(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sy_device_list_changes (pos, user_id) VALUES ($1, $2)`, pos, kc.UserID); err != nil {
			return fmt.Errorf("record device list change of %s: %w", kc.UserID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.publish(ctx, &OutputMessage{Kind: kindDeviceList, Pos: pos, UserID: kc.UserID})
	return nil
}

// keyChangedUsers lists the users with a recorded change in (from, to].
func (s *SyncAPI) keyChangedUsers(ctx context.Context, from, to int64) ([]string, error) {
	if from >= to {
		return nil, nil // the stream did not move: no query
	}
	rows, err := s.store.db.QueryContext(ctx, `SELECT DISTINCT user_id FROM sy_device_list_changes WHERE pos > $1 AND pos <= $2`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read device list changes: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("scan device list change: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// sharedUsers is the set of users who share a joined room with userID
// now, userID included.
func (s *SyncAPI) sharedUsers(ctx context.Context, userID string) (map[string]bool, error) {
	users, err := s.reader.RoomMates(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(users)+1)
	out[userID] = true
	for _, u := range users {
		out[u] = true
	}
	return out, nil
}

// memberDelta gathers, from a room's membership events, the users whose
// devices the syncing user must (re)fetch and those it may have stopped
// sharing rooms with.
type memberDelta struct {
	userID         string
	joined, parted map[string]bool
}

func newMemberDelta(userID string) *memberDelta {
	return &memberDelta{userID: userID, joined: map[string]bool{}, parted: map[string]bool{}}
}

// add reads one event; members lists the room's joined users, read only
// when the syncing user's own membership changed.
func (d *memberDelta) add(ctx context.Context, s *SyncAPI, roomID string, ev *roomserver.ClientEvent) error {
	if ev.Type != "m.room.member" || ev.StateKey == nil {
		return nil
	}
	var c struct {
		Membership string `json:"membership"`
	}
	if json.Unmarshal(ev.Content, &c) != nil {
		return nil
	}
	target := *ev.StateKey
	into := d.parted
	if c.Membership == roomserver.MembershipJoin {
		into = d.joined
	} else if c.Membership != roomserver.MembershipLeave && c.Membership != roomserver.MembershipBan {
		return nil // invites and knocks share nothing yet
	}
	if target != d.userID {
		into[target] = true
		return nil
	}
	// The user's own join or leave: every member of the room.
	users, err := s.reader.JoinedUsers(ctx, roomID)
	if err != nil {
		return fmt.Errorf("members of %s: %w", roomID, err)
	}
	for _, u := range users {
		into[u] = true
	}
	return nil
}

// deviceLists computes changed and left for userID in (since, now].
func (s *SyncAPI) deviceLists(ctx context.Context, userID string, since, now streamPos, delta *memberDelta) (changed, left []string, err error) {
	keyUsers, err := s.keyChangedUsers(ctx, since.Stream, now.Stream)
	if err != nil {
		return nil, nil, err
	}
	if len(keyUsers) == 0 && len(delta.joined) == 0 && len(delta.parted) == 0 {
		return []string{}, []string{}, nil
	}
	shared, err := s.sharedUsers(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	set := map[string]bool{}
	for _, u := range keyUsers {
		if shared[u] {
			set[u] = true
		}
	}
	for u := range delta.joined {
		if shared[u] && u != userID {
			set[u] = true
		}
	}
	changed, left = []string{}, []string{}
	for u := range set {
		changed = append(changed, u)
	}
	for u := range delta.parted {
		if !shared[u] {
			left = append(left, u)
		}
	}
	slices.Sort(changed)
	slices.Sort(left)
	return changed, left, nil
}

// notifyUserRooms wakes everyone who shares a room with userID, and
// userID (whose own other devices care).
func (n *notifier) notifyUserRooms(ctx context.Context, userID string, pos streamPos) error {
	rooms, err := n.reader.RoomsOfUser(ctx, userID, roomserver.MembershipJoin)
	if err != nil {
		return fmt.Errorf("rooms of %s: %w", userID, err)
	}
	ids := make([]string, 0, len(rooms))
	for _, r := range rooms {
		ids = append(ids, r.RoomID)
	}
	return n.notifyRooms(ctx, ids, userID, pos)
}
