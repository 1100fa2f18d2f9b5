package roomserver

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
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
