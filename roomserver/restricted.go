package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// restrictedJoinAuthoriser handles joins to rooms whose join rule is
// restricted (or knock_restricted) for users who are not invited: the join
// is allowed when the user is joined to one of the rooms the rule allows,
// and must then name a joined local member who may invite
// (join_authorised_via_users_server). It returns that member, or "" when
// the join rule is not restricted.
func restrictedJoinAuthoriser(b *batch, userID string) (string, error) {
	ev, err := b.stateEvent(stateKey{spec.MRoomJoinRules, ""})
	if err != nil || ev == nil {
		return "", err
	}
	var rule gomatrixserverlib.JoinRuleContent
	if err := json.Unmarshal(ev.Content(), &rule); err != nil {
		return "", nil // the auth rules will refuse the join
	}
	if rule.JoinRule != spec.Restricted && rule.JoinRule != spec.KnockRestricted {
		return "", nil
	}
	allowed := false
	for _, allow := range rule.Allow {
		if allow.Type != spec.MRoomMembership {
			continue
		}
		m, err := b.rs.currentMembership(b.ctx, allow.RoomID, userID)
		if err != nil {
			return "", err
		}
		if m == spec.Join {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", mxerr.Forbidden("%s is not in any of the rooms whose members may join this room", userID)
	}
	return localInviter(b)
}

// localInviter picks a joined local member with the invite level,
// preferring the highest level (creators first in room version 12).
func localInviter(b *batch) (string, error) {
	var candidates []string
	for k := range b.head.state {
		if k.Type == spec.MRoomMember && domainOf(k.StateKey) == b.rs.serverName {
			candidates = append(candidates, k.StateKey)
		}
	}
	for k := range b.overlay {
		if k.Type == spec.MRoomMember && domainOf(k.StateKey) == b.rs.serverName {
			candidates = append(candidates, k.StateKey)
		}
	}
	sort.Strings(candidates)
	best, bestLevel := "", int64(-1)
	for _, u := range dedupe(candidates) {
		m, _, err := b.membership(u)
		if err != nil {
			return "", err
		}
		if m != spec.Join {
			continue
		}
		level, pl, err := b.userLevel(u)
		if err != nil {
			return "", err
		}
		if level >= pl.Invite && level > bestLevel {
			best, bestLevel = u, level
		}
	}
	if best == "" {
		return "", mxerr.Forbidden("no member of this server may authorise joining this room")
	}
	return best, nil
}

// currentMembership is userID's current membership in a local room ("" if
// none or if the room is unknown).
func (rs *Roomserver) currentMembership(ctx context.Context, roomID, userID string) (string, error) {
	var m string
	err := rs.db.QueryRowContext(ctx, `SELECT m.membership FROM rs_membership m JOIN rs_rooms r ON r.room_nid = m.room_nid
		WHERE r.room_id = $1 AND m.user_id = $2`, roomID, userID).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("membership of %s in %s: %w", userID, roomID, err)
	}
	return m, nil
}
