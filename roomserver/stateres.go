package roomserver

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// resolveState merges the states after several forward extremities into
// the room's state, with the room version's algorithm. authEvents must
// hold the auth chains of every event of the state sets.
//
// Version 1 uses the library. Versions 2 to 12 use this file's
// implementation of the spec's algorithm: the pinned gomatrixserverlib's
// v2.1 (room version 12) panics with a nil dereference as soon as a power
// event is conflicted (it starts from an empty state, then looks up the
// resolved create event to rank senders), prints debug lines to stdout,
// and its fallback to an event's own auth events adds the event itself
// instead of the auth event, a bug its v2 code shares. Only federation
// creates forks: fork.go calls it where branches meet.
func resolveState(version gomatrixserverlib.IRoomVersion, stateSets [][]gomatrixserverlib.PDU,
	authEvents []gomatrixserverlib.PDU, isRejected func(eventID string) bool) ([]gomatrixserverlib.PDU, error) {
	switch version.StateResAlgorithm() {
	case gomatrixserverlib.StateResV1:
		return gomatrixserverlib.ResolveConflictsNew(version.Version(), stateSets, authEvents, userIDForSender, isRejected)
	case gomatrixserverlib.StateResV2, gomatrixserverlib.StateResV2_1:
		if len(stateSets) == 0 {
			return nil, nil
		}
		r := &stateResolver{
			version:    version,
			v21:        version.StateResAlgorithm() == gomatrixserverlib.StateResV2_1,
			events:     map[string]gomatrixserverlib.PDU{},
			isRejected: isRejected,
		}
		return r.resolve(stateSets, authEvents), nil
	default:
		return nil, fmt.Errorf("room version %s: unknown state resolution algorithm", version.Version())
	}
}

type stateResolver struct {
	version    gomatrixserverlib.IRoomVersion
	v21        bool
	events     map[string]gomatrixserverlib.PDU // every event known, by ID
	create     gomatrixserverlib.PDU
	isRejected func(string) bool
}

type pduState map[stateKey]gomatrixserverlib.PDU

func keyOf(e gomatrixserverlib.PDU) stateKey { return stateKey{e.Type(), *e.StateKey()} }

func (r *stateResolver) resolve(stateSets [][]gomatrixserverlib.PDU, authEvents []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	for _, e := range authEvents {
		r.events[e.EventID()] = e
	}
	for _, set := range stateSets {
		for _, e := range set {
			r.events[e.EventID()] = e
		}
	}
	for _, e := range r.events {
		if e.Type() == spec.MRoomCreate && e.StateKeyEquals("") {
			r.create = e
		}
	}
	unconflicted, conflicted := r.split(stateSets)
	full := r.fullConflictedSet(stateSets, conflicted)

	// Power events and the parts of their auth chains in the full
	// conflicted set, in reverse topological power order.
	power := map[string]gomatrixserverlib.PDU{}
	for _, e := range full {
		if isPowerEvent(e) {
			power[e.EventID()] = e
			for id := range r.authChain([]gomatrixserverlib.PDU{e}) {
				if f, ok := full[id]; ok {
					power[id] = f
				}
			}
		}
	}
	partial := pduState{}
	if !r.v21 {
		for k, e := range unconflicted {
			partial[k] = e
		}
	}
	r.iterativeAuth(partial, r.reverseTopologicalPowerOrder(power))

	var others []gomatrixserverlib.PDU
	for id, e := range full {
		if _, ok := power[id]; !ok {
			others = append(others, e)
		}
	}
	r.iterativeAuth(partial, r.mainlineOrder(others, partial[stateKey{spec.MRoomPowerLevels, ""}]))

	for k, e := range unconflicted {
		partial[k] = e
	}
	out := make([]gomatrixserverlib.PDU, 0, len(partial))
	for _, e := range partial {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b gomatrixserverlib.PDU) int { return cmp.Compare(a.EventID(), b.EventID()) })
	return out
}

// split separates the keys every state set agrees on from the conflicted
// events.
func (r *stateResolver) split(stateSets [][]gomatrixserverlib.PDU) (pduState, map[string]gomatrixserverlib.PDU) {
	byKey := map[stateKey]map[string]int{} // key -> event ID -> number of sets
	for _, set := range stateSets {
		for _, e := range set {
			k := keyOf(e)
			if byKey[k] == nil {
				byKey[k] = map[string]int{}
			}
			byKey[k][e.EventID()]++
		}
	}
	unconflicted, conflicted := pduState{}, map[string]gomatrixserverlib.PDU{}
	for k, ids := range byKey {
		if len(ids) == 1 {
			for id, n := range ids {
				if n == len(stateSets) {
					unconflicted[k] = r.events[id]
					continue
				}
				conflicted[id] = r.events[id]
			}
			continue
		}
		for id := range ids {
			conflicted[id] = r.events[id]
		}
	}
	return unconflicted, conflicted
}

// fullConflictedSet is the conflicted events, the auth difference and,
// for v2.1, the conflicted state subgraph.
func (r *stateResolver) fullConflictedSet(stateSets [][]gomatrixserverlib.PDU, conflicted map[string]gomatrixserverlib.PDU) map[string]gomatrixserverlib.PDU {
	full := map[string]gomatrixserverlib.PDU{}
	for id, e := range conflicted {
		full[id] = e
	}
	counts := map[string]int{}
	for _, set := range stateSets {
		for id := range r.authChain(set) {
			counts[id]++
		}
	}
	for id, n := range counts {
		if n < len(stateSets) {
			full[id] = r.events[id]
		}
	}
	if r.v21 {
		for id := range r.conflictedSubgraph(conflicted) {
			full[id] = r.events[id]
		}
	}
	return full
}

// authChain is the set of events reachable from events through
// auth_events (the events themselves excluded).
func (r *stateResolver) authChain(events []gomatrixserverlib.PDU) map[string]struct{} {
	chain := map[string]struct{}{}
	stack := slices.Clone(events)
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, id := range e.AuthEventIDs() {
			a, ok := r.events[id]
			if _, seen := chain[id]; seen || !ok {
				continue
			}
			chain[id] = struct{}{}
			stack = append(stack, a)
		}
	}
	return chain
}

// conflictedSubgraph is every event on an auth_events path from one
// conflicted event to another (room version 12).
func (r *stateResolver) conflictedSubgraph(conflicted map[string]gomatrixserverlib.PDU) map[string]struct{} {
	starts := make([]gomatrixserverlib.PDU, 0, len(conflicted))
	for _, e := range conflicted {
		starts = append(starts, e)
	}
	reachable := r.authChain(starts)
	leadsToConflict := map[string]bool{}
	var leads func(id string) bool
	leads = func(id string) bool {
		if v, ok := leadsToConflict[id]; ok {
			return v
		}
		leadsToConflict[id] = false // the auth graph is acyclic; this only guards bad input
		_, result := conflicted[id]
		if e, ok := r.events[id]; ok {
			for _, a := range e.AuthEventIDs() {
				if leads(a) {
					result = true
				}
			}
		}
		leadsToConflict[id] = result
		return result
	}
	out := map[string]struct{}{}
	for id := range reachable {
		if leads(id) {
			out[id] = struct{}{}
		}
	}
	for id := range conflicted {
		out[id] = struct{}{}
	}
	return out
}

func isPowerEvent(e gomatrixserverlib.PDU) bool {
	if e.StateKey() == nil {
		return false
	}
	switch e.Type() {
	case spec.MRoomPowerLevels, spec.MRoomJoinRules:
		return e.StateKeyEquals("")
	case spec.MRoomMember:
		m, _ := e.Membership()
		return (m == spec.Leave || m == spec.Ban) && !e.StateKeyEquals(string(e.SenderID()))
	}
	return false
}

// iterativeAuth applies each event to partial if the auth rules allow it
// against partial, falling back to the event's own (non-rejected) auth
// events for keys partial lacks.
func (r *stateResolver) iterativeAuth(partial pduState, events []gomatrixserverlib.PDU) {
	for _, e := range events {
		if e.StateKey() == nil {
			continue
		}
		auth := pduState{}
		for _, id := range e.AuthEventIDs() {
			if a, ok := r.events[id]; ok && a.StateKey() != nil && !r.isRejected(id) {
				auth[keyOf(a)] = a
			}
		}
		for _, t := range gomatrixserverlib.StateNeededForAuth([]gomatrixserverlib.PDU{e}).Tuples() {
			if p, ok := partial[stateKey{t.EventType, t.StateKey}]; ok {
				auth[stateKey{t.EventType, t.StateKey}] = p
			}
		}
		list := make([]gomatrixserverlib.PDU, 0, len(auth))
		for _, a := range auth {
			list = append(list, a)
		}
		provider, err := gomatrixserverlib.NewAuthEvents(list)
		if err != nil {
			continue
		}
		if gomatrixserverlib.Allowed(e, provider, userIDForSender) == nil {
			partial[keyOf(e)] = e
		}
	}
}
