package roomserver

import (
	"context"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// resolveViews merges the states of several branches of the DAG into one
// (the state before an event with several prev_events, or the room's
// current state when an event lands on another branch), writes it as a
// snapshot and returns it. States that agree on every key need no
// resolution; otherwise the room version's algorithm (stateres.go) runs on
// the events of the states and their auth chains.
func (j *inputJob) resolveViews(ctx context.Context, views []*stateView) (*stateView, error) {
	same := true
	for _, v := range views[1:] {
		if v.nid != views[0].nid {
			same = false
		}
	}
	if same {
		return views[0], nil
	}
	// Resolution reads auth chains by ID from the database.
	if err := j.flush(ctx); err != nil {
		return nil, err
	}
	fulls := make([]stateMap, len(views))
	for i, v := range views {
		fulls[i] = v.full()
	}
	if !conflicted(fulls) {
		return views[0], nil
	}
	resolved, err := j.resolveStates(ctx, fulls)
	if err != nil {
		return nil, err
	}
	changes := diffStates(fulls[0], resolved)
	if len(changes) == 0 {
		return views[0], nil
	}
	return j.states.write(ctx, views[0], changes)
}

// conflicted tells whether the states differ on some key (a key missing
// from one of them counts, as in state resolution).
func conflicted(states []stateMap) bool {
	for _, s := range states[1:] {
		if len(s) != len(states[0]) {
			return true
		}
		for k, nid := range states[0] {
			if s[k] != nid {
				return true
			}
		}
	}
	return false
}

// resolveStates runs state resolution on full states given by nid.
func (j *inputJob) resolveStates(ctx context.Context, states []stateMap) (stateMap, error) {
	var nids []int64
	seen := map[int64]bool{}
	for _, s := range states {
		for _, nid := range s {
			if !seen[nid] {
				seen[nid] = true
				nids = append(nids, nid)
			}
		}
	}
	pdus, err := j.pdus.getAll(ctx, nids)
	if err != nil {
		return nil, err
	}
	nidOf := make(map[string]int64, len(pdus))
	sets := make([][]gomatrixserverlib.PDU, len(states))
	for i, s := range states {
		for _, nid := range s {
			ev := pdus[nid]
			if ev == nil {
				return nil, fmt.Errorf("state event %d is not stored", nid)
			}
			nidOf[ev.EventID()] = nid
			sets[i] = append(sets[i], ev)
		}
	}
	chain, err := j.authChain(ctx, pdus)
	if err != nil {
		return nil, err
	}
	resolved, err := resolveState(j.h.version, sets, chain, func(id string) bool {
		d := j.known[id]
		return d != nil && d.rejected
	})
	if err != nil {
		return nil, fmt.Errorf("resolve state: %w", err)
	}
	out := make(stateMap, len(resolved))
	for _, ev := range resolved {
		nid, ok := nidOf[ev.EventID()]
		if !ok {
			return nil, fmt.Errorf("state resolution chose %s, which no state holds", ev.EventID())
		}
		out[keyOf(ev)] = nid
	}
	return out, nil
}

// authChain reads the auth chains of events: every stored event reachable
// through auth_events, read level by level in a few queries each.
func (j *inputJob) authChain(ctx context.Context, events map[int64]gomatrixserverlib.PDU) ([]gomatrixserverlib.PDU, error) {
	seen := map[string]bool{}
	var out []gomatrixserverlib.PDU
	frontier := make([]gomatrixserverlib.PDU, 0, len(events))
	for _, ev := range events {
		frontier = append(frontier, ev)
	}
	for len(frontier) > 0 {
		var ids []string
		for _, ev := range frontier {
			for _, id := range ev.AuthEventIDs() {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		if err := lookupEvents(ctx, j.tx, ids, j.known); err != nil {
			return nil, err
		}
		var nids []int64
		for _, id := range ids {
			if d := j.known[id]; d != nil && d.roomNID == j.h.nid {
				nids = append(nids, d.nid)
			}
		}
		pdus, err := j.pdus.getAll(ctx, nids)
		if err != nil {
			return nil, err
		}
		frontier = frontier[:0]
		for _, nid := range nids {
			if ev := pdus[nid]; ev != nil {
				out = append(out, ev)
				frontier = append(frontier, ev)
			}
		}
	}
	return out, nil
}

// Late ancestors. An event may arrive after events that descend from it
// are stored: a gap filled late (its descendant was stored with the
// state /state_ids gave), a server forwarding older events. Such an event
// is no forward extremity, and the current state, which its descendants'
// states already account for, does not move: as in Synapse, events named
// among the prev_events of stored events are left out of the
// extremities. It is still stored with its own state and shown in the
// timeline.

// childEdge is a stored event that names prevID among its prev_events.
type childEdge struct {
	prevID                        string
	roomNID, pos                  int64
	outlier, rejected, softFailed bool
}

// childEdgesSQL reads the stored events naming one of list ($1…) among
// their prev_events. It has no condition on rs_events, which the callers
// check on the few rows it returns: given one ("room_nid = $1") and a
// long IN list, both SQLite (never analysed) and PostgreSQL (statistics
// taken while a room grows) chose to walk every event of the room and
// probe the edges of each, a cost that grew with the room and was paid
// by every /send (a quarter of inbound /send's CPU in a room of 2,000
// events on SQLite; 2.5 ms a request on PostgreSQL). Only the edges'
// prev_event_id index is left to start from (TestInputQueryPlans).
func childEdgesSQL(list string) string {
	return `SELECT g.prev_event_id, e.room_nid, e.stream_pos, e.outlier, e.rejected, e.soft_failed
		FROM rs_event_edges g JOIN rs_events e ON e.event_nid = g.event_nid
		WHERE g.prev_event_id IN (` + list + `)`
}

// childEdges lists the stored events, of any room and kind, that name one
// of ids among their prev_events.
func childEdges(ctx context.Context, q sqlutil.Querier, ids []string) ([]childEdge, error) {
	var out []childEdge
	err := inChunks(ids, 1, "", func(list string, args []any) error {
		rows, err := q.QueryContext(ctx, childEdgesSQL(list), args...)
		if err != nil {
			return fmt.Errorf("find the children of events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c childEdge
			if err := rows.Scan(&c.prevID, &c.roomNID, &c.pos, &c.outlier, &c.rejected, &c.softFailed); err != nil {
				return fmt.Errorf("scan child: %w", err)
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// namedAsPrev is the set of ids that stored events of the room name among
// their prev_events: events of its DAG, not outliers (which have no
// edges), rejected or soft-failed events (which no branch grows from).
func namedAsPrev(ctx context.Context, q sqlutil.Querier, roomNID int64, ids []string) (map[string]bool, error) {
	children, err := childEdges(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range children {
		if c.roomNID == roomNID && !c.outlier && !c.rejected && !c.softFailed {
			out[c.prevID] = true
		}
	}
	return out, nil
}

// newEventIDs are the IDs of the request's new events, those that may
// become extremities.
func newEventIDs(items []*inputItem) []string {
	var ids []string
	for _, it := range items {
		if it.pdu != nil && it.in.Kind == InputKindNew {
			ids = append(ids, it.pdu.EventID())
		}
	}
	return ids
}

// lateAncestor tells whether an event being accepted is named among the
// prev_events of an event of the room's DAG: stored before the request
// (j.named, read when it began) or accepted earlier in it. It notes the
// event's own prev_events for the events after it.
func (j *inputJob) lateAncestor(ev gomatrixserverlib.PDU) bool {
	late := j.named[ev.EventID()]
	for _, id := range ev.PrevEventIDs() {
		j.named[id] = true
	}
	return late
}

// passLateAncestor leaves the current state as it is and takes the late
// ancestor's prev_events out of the extremities (an event they were
// extremities beside descends from them through it). It returns the keys
// that changed: none.
func (j *inputJob) passLateAncestor(ev gomatrixserverlib.PDU) map[stateKey]int64 {
	prevs := ev.PrevEventIDs()
	kept := slices.DeleteFunc(slices.Clone(j.extremities), func(id string) bool { return slices.Contains(prevs, id) })
	// A room keeps an extremity to build on, whatever the input claims.
	if len(kept) != len(j.extremities) && len(kept) > 0 {
		j.extremities = kept
		j.headChanged = true
	}
	return map[stateKey]int64{}
}
