package roomserver

import (
	"context"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// createEventIDOf is the ID of the create event a room version 12 room ID
// names ("" in earlier versions, where auth_events list it).
func createEventIDOf(h *roomHead) string {
	if !h.version.DomainlessRoomIDs() || len(h.id) < 2 {
		return ""
	}
	return "$" + h.id[1:]
}

// authEventsOf finds ev's stored auth events (in room version 12 the
// library's AuthEventIDs include the create event the room ID names);
// missing lists those not stored.
func (j *inputJob) authEventsOf(ev gomatrixserverlib.PDU) (auth []*dagEvent, missing []string) {
	for _, id := range ev.AuthEventIDs() {
		d := j.known[id]
		if d == nil {
			if !slices.Contains(missing, id) {
				missing = append(missing, id)
			}
			continue
		}
		auth = append(auth, d) // a repeated entry is rejected by checkAuthEvents
	}
	return auth, missing
}

// checkAuthEvents checks ev against its stored auth events (see
// authEventsAllow); it returns why the event is rejected, "" when it is
// not.
func (j *inputJob) checkAuthEvents(ctx context.Context, ev gomatrixserverlib.PDU, auth []*dagEvent) (string, error) {
	if err := j.flushFor(ctx, auth...); err != nil {
		return "", err
	}
	list := make([]gomatrixserverlib.PDU, 0, len(auth))
	for _, d := range auth {
		switch {
		case d.roomNID != j.h.nid:
			return fmt.Sprintf("auth event %s is in another room", d.id), nil
		case d.rejected:
			return fmt.Sprintf("auth event %s was rejected", d.id), nil
		}
		pdu, err := j.pdus.get(ctx, d.nid)
		if err != nil {
			return "", err
		}
		list = append(list, pdu)
	}
	return authEventsAllow(ev, createEventIDOf(j.h), list), nil
}

// authEventsAllow applies the auth rules' checks of an event's auth
// events themselves (no create event listed in room version 12, where
// createID names it; no duplicate or unexpected entry), then the rules
// against them. auth holds the accepted auth events (with the create
// event in room version 12). It returns why the event is rejected, ""
// when it is not.
func authEventsAllow(ev gomatrixserverlib.PDU, createID string, auth []gomatrixserverlib.PDU) string {
	// The library's AuthEventIDs of a room version 12 event start with the
	// create event its room ID names: listed in auth_events too, it
	// appears twice.
	if createID != "" && countOf(ev.AuthEventIDs(), createID) > 1 {
		return "auth_events lists the create event"
	}
	allowed := map[stateKey]bool{}
	for _, t := range gomatrixserverlib.StateNeededForAuth([]gomatrixserverlib.PDU{ev}).Tuples() {
		allowed[stateKey{t.EventType, t.StateKey}] = true
	}
	seen := map[stateKey]bool{}
	for _, a := range auth {
		if a.StateKey() == nil {
			return fmt.Sprintf("auth event %s is not a state event", a.EventID())
		}
		k := keyOf(a)
		switch {
		case seen[k]:
			return fmt.Sprintf("auth_events has two %s events for %q", k.Type, k.StateKey)
		case !allowed[k] && a.EventID() != createID:
			return fmt.Sprintf("auth event %s (%s) is not one the auth rules select", a.EventID(), k.Type)
		}
		seen[k] = true
	}
	provider, err := gomatrixserverlib.NewAuthEvents(auth)
	if err != nil {
		return "auth events: " + err.Error()
	}
	if err := gomatrixserverlib.Allowed(ev, provider, userIDForSender); err != nil {
		return "not allowed by its auth events: " + err.Error()
	}
	return ""
}

// authSelection is, for each key the auth rules select for an event
// (needed), the nid of the event of that key in a state (0: none). Two
// equal selections authorise the same way, which spares checking an event
// again against a state that agrees with its auth events.
type authSelection []int64

func neededKeys(ev gomatrixserverlib.PDU) []stateKey {
	tuples := gomatrixserverlib.StateNeededForAuth([]gomatrixserverlib.PDU{ev}).Tuples()
	out := make([]stateKey, len(tuples))
	for i, t := range tuples {
		out[i] = stateKey{t.EventType, t.StateKey}
	}
	return out
}

func selectionIn(state *stateView, needed []stateKey) authSelection {
	out := make(authSelection, len(needed))
	for i, k := range needed {
		out[i] = state.get(k)
	}
	return out
}

// selectionOf is the selection of an event's own (accepted, checked) auth
// events.
func selectionOf(auth []*dagEvent, needed []stateKey) authSelection {
	out := make(authSelection, len(needed))
	for i, k := range needed {
		for _, d := range auth {
			if dk, ok := d.key(); ok && dk == k {
				out[i] = d.nid
			}
		}
	}
	return out
}

// allowedBy checks ev against the auth rules with the events of sel.
func (j *inputJob) allowedBy(ctx context.Context, ev gomatrixserverlib.PDU, sel authSelection) error {
	var nids []int64
	for _, nid := range sel {
		if nid != 0 {
			nids = append(nids, nid)
		}
	}
	pdus, err := j.pdus.getAll(ctx, nids)
	if err != nil {
		return err
	}
	list := make([]gomatrixserverlib.PDU, 0, len(nids))
	for _, nid := range nids {
		list = append(list, pdus[nid])
	}
	provider, err := gomatrixserverlib.NewAuthEvents(list)
	if err != nil {
		return err
	}
	return gomatrixserverlib.Allowed(ev, provider, userIDForSender)
}

// redactionTarget is the stored event of the room a redaction (stored
// as row) redacts, 0 for none: servers may redact their own users'
// events, others need the redact power level in the state before the
// redaction. A target not stored yet is not given up on: the redaction
// is recorded until it is (redaction_pending.go).
func (j *inputJob) redactionTarget(ctx context.Context, row *eventRow, before *stateView) (int64, error) {
	ev := row.pdu
	if ev.Type() != spec.MRoomRedaction || ev.StateKey() != nil {
		return 0, nil
	}
	targetID := ev.Redacts()
	if targetID == "" {
		targetID = redactsInContent(ev.Content())
	}
	if targetID == "" {
		return 0, nil
	}
	if err := lookupEvents(ctx, j.tx, []string{targetID}, j.known); err != nil {
		return 0, err
	}
	d := j.known[targetID]
	if d == nil {
		anySender, err := j.mayRedactAny(ctx, ev, before)
		if err != nil {
			return 0, err
		}
		return 0, j.recordPendingRedaction(ctx, row.nid, targetID, anySender)
	}
	if d.roomNID != j.h.nid || d.rejected {
		return 0, nil
	}
	if err := j.flushFor(ctx, d); err != nil {
		return 0, err
	}
	target, err := j.pdus.get(ctx, d.nid)
	if err != nil {
		return 0, err
	}
	if sameServer(string(target.SenderID()), string(ev.SenderID())) {
		return d.nid, nil
	}
	if ok, err := j.mayRedactAny(ctx, ev, before); err != nil || !ok {
		return 0, err
	}
	return d.nid, nil
}

// stateEvents reads two entries of a state (nil when absent).
func (j *inputJob) stateEvents(ctx context.Context, state *stateView, a, b stateKey) (gomatrixserverlib.PDU, gomatrixserverlib.PDU, error) {
	var out [2]gomatrixserverlib.PDU
	for i, k := range []stateKey{a, b} {
		if nid := state.get(k); nid != 0 {
			ev, err := j.pdus.get(ctx, nid)
			if err != nil {
				return nil, nil, err
			}
			out[i] = ev
		}
	}
	return out[0], out[1], nil
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
