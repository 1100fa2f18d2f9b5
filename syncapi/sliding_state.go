package syncapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/chappe-matrix/chappe/roomserver"
)

// Special values of required_state, as Synapse and Element X use them.
const (
	stateWildcard = "*"
	stateLazy     = "$LAZY" // state key: members of the timeline's senders
	stateMe       = "$ME"   // state key: the syncing user
)

// stateElem is one (type, state key) selector; "" in Type or Key with the
// matching any flag set stands for "any".
type stateElem struct {
	Type, Key       string
	AnyType, AnyKey bool
}

func (e stateElem) matches(typ, key string) bool {
	return (e.AnyType || e.Type == typ) && (e.AnyKey || e.Key == key)
}

// requiredState is what state to send of a room: the union of include
// minus exclude, plus the members of the timeline's senders when lazy.
type requiredState struct {
	include []stateElem
	exclude []stateElem
	lazy    bool
}

// parseRequiredState reads both forms: Synapse's list of [type, state_key]
// pairs ("*" for any, "$LAZY", "$ME"), and the MSC's latest
// {include, exclude, lazy_members} object. $ME becomes userID.
func parseRequiredState(raw json.RawMessage, userID string) (requiredState, error) {
	var st requiredState
	if len(raw) == 0 || string(raw) == "null" {
		return st, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		if len(pairs) > slidingMaxStateEntries {
			return st, fmt.Errorf("at most %d entries", slidingMaxStateEntries)
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return st, fmt.Errorf("each entry must be [type, state_key]")
			}
			typ, key := p[0], p[1]
			if key == stateLazy {
				if typ != "m.room.member" {
					return st, fmt.Errorf("%s is only for m.room.member", stateLazy)
				}
				st.lazy = true
				continue
			}
			st.include = append(st.include, selector(typ, key, userID, true))
		}
		return st, nil
	}
	type element struct {
		Type     *string `json:"type"`
		StateKey *string `json:"state_key"`
	}
	var obj struct {
		Include     []element `json:"include"`
		Exclude     []element `json:"exclude"`
		LazyMembers bool      `json:"lazy_members"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return st, fmt.Errorf("neither a list of [type, state_key] nor an include/exclude object")
	}
	if len(obj.Include)+len(obj.Exclude) > slidingMaxStateEntries {
		return st, fmt.Errorf("at most %d entries", slidingMaxStateEntries)
	}
	conv := func(t, k *string) stateElem {
		e := stateElem{AnyType: t == nil, AnyKey: k == nil}
		if t != nil {
			e.Type = *t
		}
		if k != nil {
			e.Key = *k
			if e.Key == stateMe {
				e.Key = userID
			}
		}
		return e
	}
	for _, in := range obj.Include {
		st.include = append(st.include, conv(in.Type, in.StateKey))
	}
	for _, ex := range obj.Exclude {
		st.exclude = append(st.exclude, conv(ex.Type, ex.StateKey))
	}
	st.lazy = obj.LazyMembers
	return st, nil
}

// selector is a pair of the list form: "*" is a wildcard.
func selector(typ, key, userID string, wildcards bool) stateElem {
	e := stateElem{Type: typ, Key: key}
	if wildcards {
		e.AnyType, e.AnyKey = typ == stateWildcard, key == stateWildcard
	}
	if key == stateMe {
		e.Key = userID
	}
	return e
}

// union merges configs of a room matched by several lists or
// subscriptions: the combined config sends what any of them sends.
// Excludes only hold when every config excludes (they are kept only when
// a single config has them).
func (st requiredState) union(o requiredState) requiredState {
	out := requiredState{lazy: st.lazy || o.lazy}
	out.include = append(slices.Clone(st.include), o.include...)
	switch {
	case len(st.include) == 0 && len(st.exclude) == 0:
		out.exclude = o.exclude
	case len(o.include) == 0 && len(o.exclude) == 0:
		out.exclude = st.exclude
	}
	return out
}

// matches says whether a state entry is asked for (lazy members apart).
func (st requiredState) matches(typ, key string) bool {
	in := slices.ContainsFunc(st.include, func(e stateElem) bool { return e.matches(typ, key) })
	return in && !slices.ContainsFunc(st.exclude, func(e stateElem) bool { return e.matches(typ, key) })
}

// fingerprint is a stable text of the config, kept per room in the
// connection to notice when a client widens what it asks for.
func (st requiredState) fingerprint() string {
	var parts []string
	for _, e := range st.include {
		parts = append(parts, "+"+elemText(e))
	}
	for _, e := range st.exclude {
		parts = append(parts, "-"+elemText(e))
	}
	if st.lazy {
		parts = append(parts, "lazy")
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), "|")
}

func elemText(e stateElem) string {
	t, k := e.Type, e.Key
	if e.AnyType {
		t = "\x00*"
	}
	if e.AnyKey {
		k = "\x00*"
	}
	return t + "\x01" + k
}

// pick keeps the asked-for entries of state, adding, when lazy, the
// member events of the senders (and member-event targets) of timeline.
func (st requiredState) pick(state []roomserver.ClientEvent, timeline []roomserver.StreamEvent) []roomserver.ClientEvent {
	var lazy map[string]bool
	if st.lazy {
		lazy = map[string]bool{}
		for _, ev := range timeline {
			lazy[ev.Event.Sender] = true
			if ev.Event.Type == "m.room.member" && ev.Event.StateKey != nil {
				lazy[*ev.Event.StateKey] = true
			}
		}
	}
	var out []roomserver.ClientEvent
	for _, ev := range state {
		if ev.StateKey == nil {
			continue
		}
		if st.matches(ev.Type, *ev.StateKey) || ev.Type == "m.room.member" && lazy[*ev.StateKey] {
			out = append(out, ev)
		}
	}
	return out
}
