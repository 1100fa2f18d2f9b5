package roomserver

import (
	"cmp"
	"math"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// The two orderings of state resolution v2: reverse topological power
// ordering for power events, mainline ordering for the others.

// senderPowerLevel is the sender's power level as the event's own auth
// events say (infinite for creators in room version 12).
func (r *stateResolver) senderPowerLevel(e gomatrixserverlib.PDU) int64 {
	sender := string(e.SenderID())
	if r.create != nil && r.version.PrivilegedCreators() &&
		slices.Contains(gomatrixserverlib.CreatorsFromCreateEvent(r.create), sender) {
		return gomatrixserverlib.CreatorPowerLevel
	}
	if pl := r.powerLevelsAuth(e); pl != nil {
		content, err := gomatrixserverlib.NewPowerLevelContentFromEvent(pl)
		if err != nil {
			return 0
		}
		return content.UserLevel(e.SenderID())
	}
	if r.create != nil && string(r.create.SenderID()) == sender {
		return 100
	}
	return 0
}

// powerLevelsAuth is the m.room.power_levels event among e's auth events.
func (r *stateResolver) powerLevelsAuth(e gomatrixserverlib.PDU) gomatrixserverlib.PDU {
	for _, id := range e.AuthEventIDs() {
		if a, ok := r.events[id]; ok && a.Type() == spec.MRoomPowerLevels && a.StateKeyEquals("") {
			return a
		}
	}
	return nil
}

// reverseTopologicalPowerOrder sorts events so that auth events come
// first, ties broken by higher sender power level, then earlier
// origin_server_ts, then smaller event ID (Kahn's algorithm).
func (r *stateResolver) reverseTopologicalPowerOrder(events map[string]gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	type node struct {
		e     gomatrixserverlib.PDU
		level int64
	}
	inDegree := map[string]int{}
	dependents := map[string][]string{}
	for id, e := range events {
		inDegree[id] += 0
		for _, a := range e.AuthEventIDs() {
			if _, ok := events[a]; ok {
				inDegree[id]++
				dependents[a] = append(dependents[a], id)
			}
		}
	}
	var ready []node
	for id, n := range inDegree {
		if n == 0 {
			ready = append(ready, node{events[id], r.senderPowerLevel(events[id])})
		}
	}
	less := func(x, y node) int {
		if x.level != y.level {
			return cmp.Compare(y.level, x.level)
		}
		if x.e.OriginServerTS() != y.e.OriginServerTS() {
			return cmp.Compare(x.e.OriginServerTS(), y.e.OriginServerTS())
		}
		return cmp.Compare(x.e.EventID(), y.e.EventID())
	}
	out := make([]gomatrixserverlib.PDU, 0, len(events))
	for len(ready) > 0 {
		i := 0
		for j := range ready {
			if less(ready[j], ready[i]) < 0 {
				i = j
			}
		}
		next := ready[i]
		ready = slices.Delete(ready, i, i+1)
		out = append(out, next.e)
		for _, d := range dependents[next.e.EventID()] {
			if inDegree[d]--; inDegree[d] == 0 {
				ready = append(ready, node{events[d], r.senderPowerLevel(events[d])})
			}
		}
	}
	return out
}

// mainlineOrder sorts events by the position of their power levels in the
// mainline of pl (earlier first), then origin_server_ts, then event ID.
func (r *stateResolver) mainlineOrder(events []gomatrixserverlib.PDU, pl gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	mainline := map[string]int{}
	for i, p := 0, pl; p != nil; i, p = i+1, r.powerLevelsAuth(p) {
		if _, loop := mainline[p.EventID()]; loop {
			break
		}
		mainline[p.EventID()] = i
	}
	position := func(e gomatrixserverlib.PDU) int {
		seen := map[string]bool{}
		for p := r.powerLevelsAuth(e); p != nil && !seen[p.EventID()]; p = r.powerLevelsAuth(p) {
			if i, ok := mainline[p.EventID()]; ok {
				return i
			}
			seen[p.EventID()] = true
		}
		return math.MaxInt
	}
	positions := make(map[string]int, len(events))
	for _, e := range events {
		positions[e.EventID()] = position(e)
	}
	out := slices.Clone(events)
	slices.SortFunc(out, func(x, y gomatrixserverlib.PDU) int {
		if px, py := positions[x.EventID()], positions[y.EventID()]; px != py {
			return cmp.Compare(py, px)
		}
		if x.OriginServerTS() != y.OriginServerTS() {
			return cmp.Compare(x.OriginServerTS(), y.OriginServerTS())
		}
		return cmp.Compare(x.EventID(), y.EventID())
	})
	return out
}
