package roomserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// membershipEvent is one of a user's membership events in a room.
type membershipEvent struct {
	pos        int64
	membership string
}

// memberHistory lists userID's membership events in a room, oldest first.
func (r *reader) memberHistory(ctx context.Context, roomNID int64, userID string) ([]membershipEvent, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT e.stream_pos, e.membership FROM rs_events e
		WHERE e.state_key = $1 AND e.membership IS NOT NULL AND e.room_nid = $2 AND `+timelineEvent+`
		ORDER BY e.stream_pos`, userID, roomNID)
	if err != nil {
		return nil, fmt.Errorf("membership history of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []membershipEvent
	for rows.Next() {
		var m membershipEvent
		if err := rows.Scan(&m.pos, &m.membership); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// visibleState is the room state userID may read: the current state when
// they are joined or the room is world-readable, the state when they last
// left if they were once joined, M_FORBIDDEN otherwise.
func (r *reader) visibleState(ctx context.Context, room roomInfo, userID string) (stateMap, error) {
	history, err := r.memberHistory(ctx, room.nid, userID)
	if err != nil {
		return nil, err
	}
	var inRoom bool
	var leftAt int64
	for _, m := range history {
		switch {
		case m.membership == spec.Join:
			inRoom = true
		case inRoom:
			inRoom, leftAt = false, m.pos
		}
	}
	current, err := r.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	if inRoom {
		return current, nil
	}
	vis, err := r.historyVisibility(ctx, room, current)
	if err != nil {
		return nil, err
	}
	if vis == "world_readable" {
		return current, nil
	}
	if leftAt == 0 {
		return nil, mxerr.Forbidden("%s is not in room %s", userID, room.id)
	}
	_, _, after, _, err := r.eventAtOrBefore(ctx, room.nid, leftAt)
	if err != nil {
		return nil, err
	}
	return r.snapshots.state(ctx, after)
}

// canSee applies the spec's history visibility rules to one event.
func (r *reader) canSee(ctx context.Context, room roomInfo, userID string, ev *storedEvent) (bool, error) {
	return r.historyView(room, userID).canSee(ctx, eventPlace{pos: ev.pos, before: ev.snapshotBefore, after: ev.snapshotAfter})
}

// historyView applies the spec's history visibility rules ("History
// visibility" in the client-server API) for one user in one room. It
// keeps what it reads, so that the events of one request cost a query per
// history visibility and membership event met, not per event.
type historyView struct {
	r      *reader
	room   roomInfo
	userID string

	states   map[int64]stateSeen // by snapshot
	vis      map[int64]string    // by m.room.history_visibility event
	members  map[int64]string    // by the user's m.room.member event
	lastJoin int64               // the position of the user's last join (0: none), once read
	joinRead bool
}

// stateSeen is what the rules need of one state.
type stateSeen struct {
	visibility, membership string
}

// eventPlace is what the rules need of one event: its position and the
// state snapshots before and after it (in DAG terms).
type eventPlace struct {
	pos, before, after int64
}

func (r *reader) historyView(room roomInfo, userID string) *historyView {
	return &historyView{r: r, room: room, userID: userID,
		states: map[int64]stateSeen{}, vis: map[int64]string{}, members: map[int64]string{}}
}

// canSee tells whether the user may see the event. The rules read the
// state before the event, and after it: that state differs only for the
// event's own key, which is what the spec asks of a history visibility
// event (either value lets it be seen) and of the user's own membership
// events (either membership does).
func (h *historyView) canSee(ctx context.Context, ev eventPlace) (bool, error) {
	for _, snapshot := range []int64{ev.before, ev.after} {
		ok, err := h.allows(ctx, snapshot, ev.pos)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// allows applies the rules to one state: world_readable, or joined, or
// invited with "invited", or "shared" and joined at some point after the
// event (a member joined now joined at the latest then).
func (h *historyView) allows(ctx context.Context, snapshot, pos int64) (bool, error) {
	st, err := h.state(ctx, snapshot)
	if err != nil {
		return false, err
	}
	switch {
	case st.visibility == visWorldReadable, st.membership == spec.Join:
		return true, nil
	case st.visibility == visInvited:
		return st.membership == spec.Invite, nil
	case st.visibility == visJoined:
		return false, nil
	}
	if !h.joinRead {
		history, err := h.r.memberHistory(ctx, h.room.nid, h.userID)
		if err != nil {
			return false, err
		}
		for _, m := range history {
			if m.membership == spec.Join {
				h.lastJoin = m.pos
			}
		}
		h.joinRead = true
	}
	return h.lastJoin > pos, nil
}

// state reads a state's history visibility ("shared" when unset or not
// understood, as the spec has it) and the user's membership there.
func (h *historyView) state(ctx context.Context, snapshot int64) (stateSeen, error) {
	if st, ok := h.states[snapshot]; ok {
		return st, nil
	}
	state, err := h.r.snapshots.state(ctx, snapshot)
	if err != nil {
		return stateSeen{}, err
	}
	st := stateSeen{visibility: visShared}
	if nid := state[stateKey{spec.MRoomHistoryVisibility, ""}]; nid != 0 {
		vis, ok := h.vis[nid]
		if !ok {
			if vis, err = h.r.historyVisibilityOf(ctx, nid); err != nil {
				return st, err
			}
			h.vis[nid] = vis
		}
		st.visibility = vis
	}
	if nid := state[stateKey{spec.MRoomMember, h.userID}]; nid != 0 {
		m, ok := h.members[nid]
		if !ok {
			if m, err = h.r.membershipOf(ctx, nid, h.userID); err != nil {
				return st, err
			}
			h.members[nid] = m
		}
		st.membership = m
	}
	h.states[snapshot] = st
	return st, nil
}

// historyVisibilityOf reads the value of an m.room.history_visibility
// event; unset or not understood is "shared", as the spec says.
func (r *reader) historyVisibilityOf(ctx context.Context, nid int64) (string, error) {
	var data []byte
	if err := r.db.QueryRowContext(ctx, `SELECT json FROM rs_events WHERE event_nid = $1`, nid).Scan(&data); err != nil {
		return "", fmt.Errorf("read the history visibility: %w", err)
	}
	return parseHistoryVisibility(data), nil
}

// parseHistoryVisibility reads the value of an m.room.history_visibility
// event's JSON: unset, not understood or malformed is "shared". gjson
// reads the one field without decoding the rest of the event (its
// signatures, hashes, auth and prev events): a sync of many rooms reads
// one such event per room (HistoryOpenThrough).
func parseHistoryVisibility(data []byte) string {
	if !gjson.ValidBytes(data) {
		return visShared
	}
	vis := gjson.GetBytes(data, "content.history_visibility")
	if vis.Type == gjson.String {
		switch vis.Str {
		case visWorldReadable, visInvited, visJoined:
			return vis.Str
		}
	}
	return visShared
}

// membershipIn is userID's membership in a state ("" if none).
func (r *reader) membershipIn(ctx context.Context, state stateMap, userID string) (string, error) {
	nid := state[stateKey{spec.MRoomMember, userID}]
	if nid == 0 {
		return "", nil
	}
	return r.membershipOf(ctx, nid, userID)
}

// membershipOf is the membership userID's member event nid gives.
func (r *reader) membershipOf(ctx context.Context, nid int64, userID string) (string, error) {
	var membership sql.NullString
	err := r.db.QueryRowContext(ctx, `SELECT membership FROM rs_events WHERE event_nid = $1`, nid).Scan(&membership)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("membership of %s: %w", userID, err)
	}
	return membership.String, nil
}
