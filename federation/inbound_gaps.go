package federation

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/roomserver"
)

const (
	// missingEventsLimit is how many events get_missing_events asks for
	// before giving up on walking the gap and asking for the state.
	missingEventsLimit = 10
	// fetchOneByOne: up to this many unknown state events are fetched
	// with /event each; more take one /state request.
	fetchOneByOne = 20
)

// fillGap handles an event whose prev_events or auth_events are not
// stored. First the events between our forward extremities and it are
// asked of origin (get_missing_events) and input oldest first, the
// earliest with the state before it when the gap is longer than the
// answer (bridgeGap); if the event still does not fit, the state before
// it is asked (/state_ids), its unknown events fetched and stored as
// outliers, and the event input with that state. retry inputs the event
// once before anything is asked (an earlier gap filled may have brought
// its parents).
func (f *Federation) fillGap(ctx context.Context, origin, roomID, version string, ev gomatrixserverlib.PDU, retry bool) (*roomserver.InputResult, error) {
	input := func(stateBefore []string) (*roomserver.InputResult, error) {
		return f.inputNew(ctx, roomID, origin, ev, stateBefore)
	}
	if retry {
		if res, err := input(nil); err != nil || res.Status != roomserver.InputMissing {
			return res, err
		}
	}
	if err := f.fetchMissingEvents(ctx, origin, roomID, version, ev); err != nil {
		f.log.Info("get_missing_events did not fill the gap; asking for the state", "origin", origin, "event", ev.EventID(), "err", err)
	} else if res, err := input(nil); err != nil || res.Status != roomserver.InputMissing {
		return res, err
	}
	state, err := f.fetchStateBefore(ctx, origin, roomID, version, ev.EventID())
	if err != nil {
		return nil, err
	}
	res, err := input(state)
	if err == nil && res.Status == roomserver.InputMissing {
		return nil, fmt.Errorf("still missing %v after fetching the state", res.Missing)
	}
	return res, err
}

// fetchMissingEvents asks origin for the events between our forward
// extremities and ev, and inputs those it sends, oldest first.
func (f *Federation) fetchMissingEvents(ctx context.Context, origin, roomID, version string, ev gomatrixserverlib.PDU) error {
	earliest, err := f.reader.Extremities(ctx, roomID)
	if err != nil {
		return fmt.Errorf("extremities of %s: %w", roomID, err)
	}
	minDepth := int64(0)
	if stored, err := f.reader.Events(ctx, earliest, false); err == nil {
		for i, s := range stored {
			if i == 0 || s.Depth < minDepth {
				minDepth = s.Depth
			}
		}
	}
	resp, err := f.client.LookupMissingEvents(ctx, spec.ServerName(f.serverName), spec.ServerName(origin), roomID, fclient.MissingEvents{
		Limit: missingEventsLimit, MinDepth: int(minDepth), EarliestEvents: earliest, LatestEvents: []string{ev.EventID()},
	}, gomatrixserverlib.RoomVersion(version))
	if err != nil {
		return fmt.Errorf("get_missing_events from %s: %w", origin, remoteErr(origin, err))
	}
	evs := f.verifyPDUs(ctx, roomID, version, asBytes(resp.Events))
	if len(evs) == 0 {
		return nil
	}
	// The event goes in the same request, last: when the room's DAG
	// already descends from it (a late event), the roomserver makes
	// history of it and of the events it brings (lateAsHistory).
	evs = append(evs, ev)
	byDepth(evs)
	res, err := f.inputEvents(ctx, roomID, roomserver.InputKindNew, origin, evs)
	if err != nil {
		return err
	}
	return f.bridgeGap(ctx, origin, roomID, version, evs, res.Results)
}

// bridgeGap places the events of a get_missing_events answer that did not
// fit because the gap is longer than the answer: the earliest of them
// whose missing parents are all outside the answer is input with the
// state before it (/state_ids), then the others again, so that they join
// the timeline before the event that needed them. Were they dropped, the
// event would be input alone with its state, and the missing events,
// when origin sends them later, would come after it in the stream: an
// incremental sync that gets them together with it has a limited
// timeline of the newest positions, the older events, and never shows
// the event.
func (f *Federation) bridgeGap(ctx context.Context, origin, roomID, version string, evs []gomatrixserverlib.PDU, results []roomserver.InputResult) error {
	inAnswer := make(map[string]bool, len(evs))
	for _, ev := range evs {
		inAnswer[ev.EventID()] = true
	}
	var first gomatrixserverlib.PDU
	var rest []gomatrixserverlib.PDU
	for i, r := range results {
		switch {
		case r.Status != roomserver.InputMissing:
		case first == nil && !anyIn(r.Missing, inAnswer):
			first = evs[i]
		default:
			rest = append(rest, evs[i])
		}
	}
	if first == nil {
		return nil
	}
	f.log.Info("the gap is longer than get_missing_events' answer; asking for the state before its earliest event",
		"room", roomID, "event", first.EventID())
	state, err := f.fetchStateBefore(ctx, origin, roomID, version, first.EventID())
	if err != nil {
		return err
	}
	// One request: when the room's DAG already descends from the last of
	// them (a late event), the roomserver makes history of them all, the
	// first too (lateAsHistory). Were the first still missing, the rest
	// would be too, and the event that needed them gets its own state.
	req := inputRequest(roomID, roomserver.InputKindNew, origin, append([]gomatrixserverlib.PDU{first}, rest...))
	req.Events[0].StateBefore = state
	_, err = f.callInput(ctx, req)
	return err
}

// anyIn says whether one of ids is in set.
func anyIn(ids []string, set map[string]bool) bool {
	for _, id := range ids {
		if set[id] {
			return true
		}
	}
	return false
}

// fetchStateBefore asks origin for the state before eventID, stores the
// state and auth chain events not stored yet as outliers, and returns the
// state's event IDs.
func (f *Federation) fetchStateBefore(ctx context.Context, origin, roomID, version, eventID string) ([]string, error) {
	us, them := spec.ServerName(f.serverName), spec.ServerName(origin)
	ids, err := f.client.LookupStateIDs(ctx, us, them, roomID, eventID)
	if err != nil {
		return nil, fmt.Errorf("state_ids from %s: %w", origin, remoteErr(origin, err))
	}
	all := append(append([]string{}, ids.StateEventIDs...), ids.AuthEventIDs...)
	have, err := f.storedIDs(ctx, all)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, id := range all {
		if !have[id] {
			unknown = append(unknown, id)
			have[id] = true // once
		}
	}
	if len(unknown) == 0 {
		return ids.StateEventIDs, nil
	}
	var raws [][]byte
	if len(unknown) > fetchOneByOne {
		state, err := f.client.LookupState(ctx, us, them, roomID, eventID, gomatrixserverlib.RoomVersion(version))
		if err != nil {
			return nil, fmt.Errorf("state from %s: %w", origin, remoteErr(origin, err))
		}
		raws = append(asBytes(state.StateEvents), asBytes(state.AuthEvents)...)
	} else {
		for _, id := range unknown {
			txn, err := f.client.GetEvent(ctx, us, them, id)
			if err != nil {
				return nil, fmt.Errorf("event %s from %s: %w", id, origin, remoteErr(origin, err))
			}
			raws = append(raws, asBytes(txn.PDUs)...)
		}
	}
	wanted := make(map[string]bool, len(unknown))
	for _, id := range unknown {
		wanted[id] = true
	}
	var outliers []gomatrixserverlib.PDU
	for _, ev := range f.verifyPDUs(ctx, roomID, version, raws) {
		if wanted[ev.EventID()] {
			outliers = append(outliers, ev)
			delete(wanted, ev.EventID())
		}
	}
	if len(wanted) > 0 {
		return nil, fmt.Errorf("%s did not send %d events of the state", origin, len(wanted))
	}
	if _, err := f.inputEvents(ctx, roomID, roomserver.InputKindOutlier, origin, authOrder(outliers)); err != nil {
		return nil, err
	}
	return ids.StateEventIDs, nil
}
