package roomserver

import (
	"context"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// ServerVisibility applies the rooms' history visibility to other
// servers: what the federation may hand out in full to a server asking
// for events (/event, /backfill, /get_missing_events, /state).
type ServerVisibility interface {
	// VisibleToServer tells which of eventIDs (events of roomID) server may
	// see in full. The spec's rules for a user apply to the server's users
	// together, on the state before and after each event (so that a
	// server sees its users' own membership changes and the history
	// visibility changes, as the spec has it for users):
	// world_readable: yes; shared: when a user of the server is joined at
	// the event, joined later, or is joined now; invited: when one is
	// invited or joined at the event; joined: when one is joined at the
	// event. Outliers (no state known) are visible, as Synapse has them.
	// Events the server may not see are to be sent redacted, which keeps
	// the DAG whole. IDs not stored in the room are left out.
	VisibleToServer(ctx context.Context, roomID, server string, eventIDs []string) (map[string]bool, error)
}

// History visibility values.
const (
	visWorldReadable = "world_readable"
	visShared        = "shared"
	visInvited       = "invited"
	visJoined        = "joined"
)

// serverView is what the rules need of one state for one server.
type serverView struct {
	visibility      string // visShared when unset or not understood
	joined, invited bool   // some user of the server is joined / invited
}

// allows applies the rules that need nothing but the state: shared
// history also shows to a server whose users joined later (laterJoins).
func (v serverView) allows() bool {
	switch v.visibility {
	case visWorldReadable:
		return true
	case visInvited:
		return v.joined || v.invited
	default:
		return v.joined
	}
}

// viewKey keys cached views: a snapshot never changes, nor does what it
// says of a server.
type viewKey struct {
	snapshot int64
	server   string
}

// visibilityRow is what the rules need of an event.
type visibilityRow struct {
	id            string
	pos           int64
	before, after int64 // state snapshots (0: none, an outlier)
}

func (f *federationReader) VisibleToServer(ctx context.Context, roomID, server string, eventIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(eventIDs))
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok {
		return out, err
	}
	rows, err := f.visibilityRows(ctx, room, dedupe(eventIDs))
	if err != nil {
		return nil, err
	}
	views, err := f.serverViews(ctx, server, rows)
	if err != nil {
		return nil, err
	}
	// Whether the server joined after an event is only read when the
	// shared history needs it, once per call.
	var lastJoin *laterJoins
	for _, row := range rows {
		if row.before == 0 && row.after == 0 {
			out[row.id] = true
			continue
		}
		before, after := views[row.before], views[row.after]
		if before.allows() || after.allows() {
			out[row.id] = true
			continue
		}
		if before.visibility != visShared && after.visibility != visShared {
			continue
		}
		if lastJoin == nil {
			if lastJoin, err = f.laterJoins(ctx, room, server); err != nil {
				return nil, err
			}
		}
		out[row.id] = lastJoin.after(row.pos)
	}
	return out, nil
}

// visibilityRows reads the positions and state snapshots of the events
// among ids stored in the room. Rejected events have no state; they are
// never served but through auth chains, which need no check.
func (f *federationReader) visibilityRows(ctx context.Context, room roomInfo, ids []string) ([]visibilityRow, error) {
	var out []visibilityRow
	err := inChunks(ids, 2, "", func(list string, args []any) error {
		rows, err := f.r.db.QueryContext(ctx, `SELECT event_id, stream_pos, snapshot_before_nid, snapshot_nid
			FROM rs_events WHERE room_nid = $1 AND event_id IN (`+list+`)`, append([]any{room.nid}, args...)...)
		if err != nil {
			return fmt.Errorf("look up events of %s: %w", room.id, err)
		}
		defer rows.Close()
		for rows.Next() {
			var row visibilityRow
			if err := rows.Scan(&row.id, &row.pos, &row.before, &row.after); err != nil {
				return fmt.Errorf("scan event: %w", err)
			}
			out = append(out, row)
		}
		return rows.Err()
	})
	return out, err
}

// serverViews reads the views of the snapshots the rows need, from the
// cache or from the states (each read once).
func (f *federationReader) serverViews(ctx context.Context, server string, rows []visibilityRow) (map[int64]serverView, error) {
	views := map[int64]serverView{}
	for _, row := range rows {
		for _, nid := range []int64{row.before, row.after} {
			if _, done := views[nid]; done || nid == 0 {
				continue
			}
			if v, ok := f.views.get(viewKey{nid, server}); ok {
				views[nid] = v
				continue
			}
			v, err := f.serverView(ctx, nid, server)
			if err != nil {
				return nil, err
			}
			f.views.put(viewKey{nid, server}, v)
			views[nid] = v
		}
	}
	return views, nil
}

// serverView reads, in a state, the history visibility and whether a user
// of server is joined or invited.
func (f *federationReader) serverView(ctx context.Context, snapshot int64, server string) (serverView, error) {
	state, err := f.r.snapshots.state(ctx, snapshot)
	if err != nil {
		return serverView{}, err
	}
	v := serverView{visibility: visShared}
	if nid := state[stateKey{spec.MRoomHistoryVisibility, ""}]; nid != 0 {
		if v.visibility, err = f.r.historyVisibilityOf(ctx, nid); err != nil {
			return v, err
		}
	}
	var members []int64
	for k, nid := range state {
		if k.Type == spec.MRoomMember && domainOf(k.StateKey) == server {
			members = append(members, nid)
		}
	}
	slices.Sort(members) // the same statements for the same state
	err = inChunks(members, 1, int64(0), func(list string, args []any) error {
		if v.joined {
			return nil // nothing more to learn
		}
		ms, err := sqlutil.Strings(ctx, f.r.db, `SELECT membership FROM rs_events
			WHERE membership IN ('join', 'invite') AND event_nid IN (`+list+`)`, args...)
		if err != nil {
			return fmt.Errorf("memberships of %s: %w", server, err)
		}
		v.joined = slices.Contains(ms, spec.Join)
		v.invited = v.invited || slices.Contains(ms, spec.Invite)
		return nil
	})
	return v, err
}

// laterJoins is what "joined at some point after the event" needs: the
// latest position of a join of the server's users, and whether one is
// joined now.
type laterJoins struct {
	joinedNow bool
	lastJoin  int64
	any       bool
}

// after tells whether the server had a user join after position pos, or
// has one joined now.
func (l *laterJoins) after(pos int64) bool {
	return l.joinedNow || (l.any && l.lastJoin > pos)
}

func (f *federationReader) laterJoins(ctx context.Context, room roomInfo, server string) (*laterJoins, error) {
	out := &laterJoins{}
	joinedNow, err := hasMemberOf(ctx, f.r.db, serverJoinedSQL, room.id, server)
	if err != nil {
		return nil, err
	}
	out.joinedNow = joinedNow
	// Joins in the timeline (positive positions), by user: the caller
	// checks the domain, as SQLite's LIKE ignores case.
	rows, err := f.r.db.QueryContext(ctx, `SELECT e.state_key, MAX(e.stream_pos) FROM rs_events e
		WHERE e.room_nid = $1 AND e.membership = 'join' AND `+timelineEvent+` AND e.state_key LIKE $2 ESCAPE '\'
		GROUP BY e.state_key`, room.nid, usersOfPattern(server))
	if err != nil {
		return nil, fmt.Errorf("joins of %s in %s: %w", server, room.id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			user string
			pos  int64
		)
		if err := rows.Scan(&user, &pos); err != nil {
			return nil, fmt.Errorf("scan join: %w", err)
		}
		if domainOf(user) == server && (!out.any || pos > out.lastJoin) {
			out.lastJoin, out.any = pos, true
		}
	}
	return out, rows.Err()
}
