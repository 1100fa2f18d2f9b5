package roomserver

import (
	"context"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// apply takes one event through the checks of the server-server API
// ("Checks performed on receipt of a PDU"): auth against its auth events
// (else rejected), against the state before it (else rejected), against
// the room's current state (else soft-failed), then stores it.
func (j *inputJob) apply(ctx context.Context, it *inputItem) error {
	if it.pdu == nil {
		return nil // rejected while parsing
	}
	j.processed++
	ev := it.pdu
	stored := j.known[ev.EventID()]
	switch {
	case stored != nil && stored.roomNID != j.h.nid:
		it.result.Status, it.result.Reason = InputRejected, "an event of another room has this ID"
		return nil
	case stored != nil && (it.in.Kind == InputKindOutlier || !stored.outlier || stored.rejected):
		it.result.Status = InputDuplicate
		return nil
	}
	// From here, stored is nil or an outlier to make part of the DAG.
	// A room has one create event; backfill reaching the start of a room
	// joined over federation may promote it from the outlier it was.
	if create := j.h.state[stateKey{spec.MRoomCreate, ""}]; ev.Type() == spec.MRoomCreate && create != 0 &&
		!(it.in.Kind == InputKindBackfill && stored != nil && stored.nid == create) {
		return j.reject(ctx, it, stored, "the room already has a create event")
	}
	auth, missing := j.authEventsOf(ev)
	if len(missing) > 0 {
		it.result.Status, it.result.Missing = InputMissing, missing
		return nil
	}
	reason, err := j.checkAuthEvents(ctx, ev, auth)
	if err != nil {
		return err
	}
	if reason != "" {
		return j.reject(ctx, it, stored, reason)
	}
	if it.in.Kind == InputKindOutlier {
		return j.storeOutlier(ctx, it)
	}
	before, missing, reason, err := j.stateBefore(ctx, it)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		it.result.Status, it.result.Missing = InputMissing, missing
		return nil
	}
	if reason != "" {
		return j.reject(ctx, it, stored, reason)
	}
	// Checks against states that select the same events as a check
	// already made are skipped: a linear event's auth events are usually
	// the state before it, which is usually the current state.
	needed := neededKeys(ev)
	checked := selectionOf(auth, needed)
	if sel := selectionIn(before, needed); !slices.Equal(sel, checked) {
		if err := j.allowedBy(ctx, ev, sel); err != nil {
			return j.reject(ctx, it, stored, "not allowed by the state before the event: "+err.Error())
		}
		checked = sel
	}
	if it.in.Kind == InputKindBackfill {
		if it.late {
			j.passLateAncestor(ev) // fork.go
		}
		return j.storeBackfilled(ctx, it, stored, before)
	}
	if sel := selectionIn(j.cur, needed); !slices.Equal(sel, checked) {
		if err := j.allowedBy(ctx, ev, sel); err != nil {
			it.result.Reason = "not allowed by the room's current state: " + err.Error()
			return j.storeSoftFailed(ctx, it, stored, before)
		}
	}
	return j.storeAccepted(ctx, it, stored, before)
}

// stateBefore is the state before the event: the state given by ID, or
// the state after its one prev_event, or the resolution of the states
// after its prev_events. missing lists what is not stored (with its
// state); reason is set when no prev_event can be used.
func (j *inputJob) stateBefore(ctx context.Context, it *inputItem) (v *stateView, missing []string, reason string, err error) {
	if len(it.in.StateBefore) > 0 {
		state := stateMap{}
		for _, id := range it.in.StateBefore {
			d := j.known[id]
			switch {
			case d == nil || d.roomNID != j.h.nid:
				missing = append(missing, id)
			case d.rejected:
			default:
				if k, ok := d.key(); ok {
					if _, dup := state[k]; !dup {
						state[k] = d.nid
					}
				}
			}
		}
		if len(missing) > 0 {
			return nil, missing, "", nil
		}
		v, err := j.states.writeFull(ctx, state)
		return v, nil, "", err
	}
	prevs := it.pdu.PrevEventIDs()
	var views []*stateView
	for _, id := range prevs {
		d := j.known[id]
		switch {
		case d == nil || d.roomNID != j.h.nid || (d.outlier && !d.rejected):
			missing = append(missing, id)
		case d.rejected:
			// A rejected event takes no part in the state.
		default:
			v, err := j.stateAfter(ctx, d)
			if err != nil {
				return nil, nil, "", err
			}
			views = append(views, v)
		}
	}
	switch {
	case len(missing) > 0:
		return nil, missing, "", nil
	case len(views) == 0 && len(prevs) > 0:
		return nil, nil, "every prev_event was rejected", nil
	case len(views) == 0:
		v, err := j.states.view(ctx, 0) // the create event
		return v, nil, "", err
	case len(views) == 1:
		return views[0], nil, "", nil
	}
	v, err = j.resolveViews(ctx, views)
	return v, nil, "", err
}

// stateAfter is the state after a stored event that has one.
func (j *inputJob) stateAfter(ctx context.Context, d *dagEvent) (*stateView, error) {
	if d.after == nil {
		v, err := j.states.view(ctx, d.snapAfter)
		if err != nil {
			return nil, err
		}
		d.after = v
	}
	return d.after, nil
}

// afterEvent writes the state after ev (stored as nid) given the state
// before it: the same state for a message, one more entry for a state
// event.
func (j *inputJob) afterEvent(ctx context.Context, ev gomatrixserverlib.PDU, nid int64, before *stateView) (*stateView, error) {
	sk := ev.StateKey()
	if sk == nil {
		return before, nil
	}
	return j.states.write(ctx, before, map[stateKey]int64{{ev.Type(), *sk}: nid})
}

// storeAccepted stores an event that passed every check: it joins the
// timeline, becomes a forward extremity and changes the current state.
func (j *inputJob) storeAccepted(ctx context.Context, it *inputItem, stored *dagEvent, before *stateView) error {
	ev := it.pdu
	if err := j.reserveHole(ctx, it); err != nil { // input_backfill.go
		return err
	}
	j.pos++
	row := newEventRow(ev, j.pos)
	row.setState(before, before)
	row.roomBefore, row.roomAfter = j.cur.nid, j.cur.nid
	row.replaces = replacedIn(ev, before)
	nid, err := j.store(ctx, stored, row)
	if err != nil {
		return err
	}
	after, err := j.afterEvent(ctx, ev, nid, before)
	if err != nil {
		return err
	}
	old := j.cur
	changed, err := j.advanceCurrent(ctx, ev, before, after)
	if err != nil {
		return err
	}
	if err := j.updateAfter(ctx, row, after.nid, j.cur.nid); err != nil {
		return err
	}
	if err := j.applyMembership(ctx, old, changed, j.pos); err != nil {
		return err
	}
	// advanceCurrent may have flushed the row: what follows reads its nid
	// from the row, never from the nid above.
	p, err := j.timelineEvent(ctx, row, before)
	if err != nil {
		return err
	}
	j.outs = append(j.outs, outputOf(j.h, p))
	j.remember(row, before, after)
	it.result.Status, it.result.Pos = InputAccepted, p.pos
	return nil
}

// advanceCurrent moves the room's current state and forward extremities
// past an accepted event. When the event's prev_events cover every
// extremity the current state becomes the state after it; otherwise the
// event opened or extends a branch, and the current state is the
// resolution of the current state and the state after the event. An
// event that stored events already descend from moves neither
// (lateAncestor). It returns the keys that changed (nil: unknown, compare
// the states).
func (j *inputJob) advanceCurrent(ctx context.Context, ev gomatrixserverlib.PDU, before, after *stateView) (map[stateKey]int64, error) {
	if j.lateAncestor(ev) { // fork.go
		return j.passLateAncestor(ev), nil
	}
	prevs := ev.PrevEventIDs()
	coversAll := true
	for _, id := range j.extremities {
		if !slices.Contains(prevs, id) {
			coversAll = false
			break
		}
	}
	j.extremities = slices.DeleteFunc(j.extremities, func(id string) bool { return slices.Contains(prevs, id) })
	j.extremities = append(j.extremities, ev.EventID())
	j.depth = max(j.depth, ev.Depth())
	j.headChanged = true
	old := j.cur
	switch {
	case coversAll && before.nid == old.nid && before.nid != 0:
		j.cur = after
		if sk := ev.StateKey(); sk != nil {
			return map[stateKey]int64{{ev.Type(), *sk}: after.get(stateKey{ev.Type(), *sk})}, nil
		}
		return map[stateKey]int64{}, nil
	case coversAll:
		j.cur = after
		return nil, nil
	}
	resolved, err := j.resolveViews(ctx, []*stateView{old, after})
	if err != nil {
		return nil, err
	}
	j.cur = resolved
	return nil, nil
}

// storeSoftFailed stores an event the current state does not allow: it
// keeps its place in the DAG (later events may build on it) but is not
// in the timeline, the current state or the extremities.
func (j *inputJob) storeSoftFailed(ctx context.Context, it *inputItem, stored *dagEvent, before *stateView) error {
	if stored != nil {
		it.result.Status = InputSoftFailed // an outlier stays one
		return nil
	}
	ev := it.pdu
	row := newEventRow(ev, j.rs.negativePos())
	row.softFailed = true
	after, err := j.storeBesideState(ctx, nil, row, before)
	if err != nil {
		return err
	}
	j.remember(row, before, after)
	it.result.Status = InputSoftFailed
	return nil
}

// storeBackfilled stores an older event with its state, at a position
// reserved below the room's join (or outside the timeline when there is
// none left): the current state and extremities do not change.
func (j *inputJob) storeBackfilled(ctx context.Context, it *inputItem, stored *dagEvent, before *stateView) error {
	ev := it.pdu
	pos := it.slot
	if pos == 0 {
		pos = j.rs.negativePos()
	}
	row := newEventRow(ev, pos)
	row.backfilled = true
	after, err := j.storeBesideState(ctx, stored, row, before)
	if err != nil {
		return err
	}
	if pos > 0 {
		if _, err := j.timelineEvent(ctx, row, before); err != nil {
			return err
		}
	}
	j.remember(row, before, after)
	it.result.Status = InputAccepted
	return nil
}

// storeBesideState stores an event that leaves the room's current state
// as it is (soft-failed, backfilled), with the state before and after it.
func (j *inputJob) storeBesideState(ctx context.Context, stored *dagEvent, row *eventRow, before *stateView) (*stateView, error) {
	row.setState(before, before)
	row.replaces = replacedIn(row.pdu, before)
	nid, err := j.store(ctx, stored, row)
	if err != nil {
		return nil, err
	}
	after, err := j.afterEvent(ctx, row.pdu, nid, before)
	if err != nil {
		return nil, err
	}
	if err := j.updateAfter(ctx, row, after.nid, after.nid); err != nil {
		return nil, err
	}
	return after, nil
}

// storeOutlier stores an event for its own sake.
func (j *inputJob) storeOutlier(ctx context.Context, it *inputItem) error {
	row := newEventRow(it.pdu, j.rs.negativePos())
	row.outlier = true
	if _, err := j.store(ctx, nil, row); err != nil {
		return err
	}
	j.remember(row, nil, nil)
	it.result.Status = InputAccepted
	return nil
}

// reject stores an event that fails the auth rules, so it is not fetched
// and checked again. An outlier being made part of the DAG stays as it
// was.
func (j *inputJob) reject(ctx context.Context, it *inputItem, stored *dagEvent, reason string) error {
	it.result.Status, it.result.Reason = InputRejected, reason
	if stored != nil {
		return nil
	}
	row := newEventRow(it.pdu, j.rs.negativePos())
	row.rejected = true
	row.outlier = it.in.Kind == InputKindOutlier
	if _, err := j.store(ctx, nil, row); err != nil {
		return err
	}
	j.remember(row, nil, nil)
	return nil
}

// store inserts the event's row, or turns the stored outlier into it. A
// new message event's row waits (nid 0) to go with others in one
// statement (flush): nothing reads it by nid before, and what would is
// preceded by a flush (auth and redaction targets, resolution, finish).
// An outlier made part of the DAG is updated by nid: one stored earlier in
// the same request may still be waiting.
func (j *inputJob) store(ctx context.Context, stored *dagEvent, row *eventRow) (int64, error) {
	ev := row.pdu
	if stored == nil && ev.StateKey() == nil && ev.Type() != spec.MRoomRedaction {
		j.deferred = append(j.deferred, row)
		j.waiting[ev.EventID()] = &waitingRow{}
		return 0, nil
	}
	if err := j.flushFor(ctx, stored); err != nil {
		return 0, err
	}
	if _, err := row.save(ctx, j.tx, j.h.nid, stored); err != nil {
		return 0, err
	}
	j.saved(row)
	return row.nid, nil
}

// waitingRow is what learns a deferred row's nid when it is stored.
type waitingRow struct {
	d *dagEvent
	p *pendingEvent
}

// flush stores the deferred rows.
func (j *inputJob) flush(ctx context.Context) error {
	if len(j.deferred) == 0 {
		return nil
	}
	rows := j.deferred
	j.deferred = nil
	if err := insertEventRows(ctx, j.tx, j.h.nid, rows); err != nil {
		return err
	}
	for _, r := range rows {
		id := r.pdu.EventID()
		if r.nid == 0 {
			return fmt.Errorf("event %s was not stored", id)
		}
		j.saved(r)
		if w := j.waiting[id]; w != nil {
			if w.d != nil {
				w.d.nid = r.nid
			}
			if w.p != nil {
				w.p.nid = r.nid
			}
		}
		delete(j.waiting, id)
	}
	return nil
}

// flushFor flushes when one of events waits to be stored.
func (j *inputJob) flushFor(ctx context.Context, events ...*dagEvent) error {
	for _, d := range events {
		if d != nil && d.nid == 0 {
			return j.flush(ctx)
		}
	}
	return nil
}

// saved records what a stored row brings: its prev_events (unless an
// outlier) and its parsed event.
func (j *inputJob) saved(r *eventRow) {
	if !r.outlier {
		for _, id := range r.pdu.PrevEventIDs() {
			j.edges = append(j.edges, edge{nid: r.nid, prevID: id})
		}
	}
	j.pdus.own[r.nid] = r.pdu
}

// updateAfter sets the snapshots after a stored (or waiting) event once
// they are known.
func (j *inputJob) updateAfter(ctx context.Context, row *eventRow, after, roomAfter int64) error {
	if after == row.snapAfter && roomAfter == row.roomAfter {
		return nil
	}
	row.snapAfter, row.roomAfter = after, roomAfter
	if row.nid == 0 {
		return nil // still waiting: stored with them
	}
	return updateStateAfter(ctx, j.tx, row.nid, after, roomAfter)
}

// remember makes a stored event of the request known to the later ones.
// The nid is read from the row here, not carried by the caller: a row that
// waited may have been flushed since it was stored (resolution flushes),
// and a copy taken before would stay 0 for good.
func (j *inputJob) remember(row *eventRow, before, after *stateView) {
	ev := row.pdu
	d := &dagEvent{
		nid: row.nid, id: ev.EventID(), roomNID: j.h.nid, evType: ev.Type(), stateKey: ev.StateKey(), depth: ev.Depth(),
		pos: row.pos, rejected: row.rejected, outlier: row.outlier, softFailed: row.softFailed, after: after,
	}
	if before != nil {
		d.snapBefore, d.snapAfter = before.nid, after.nid
	}
	j.known[d.id] = d
	if w := j.waiting[d.id]; w != nil && row.nid == 0 {
		w.d = d
	}
}

// timelineEvent records what an event of the timeline adds beside its
// row: a redaction it applies, its relation and its search text. Like
// remember, it reads the nid from the row once nothing more may flush.
func (j *inputJob) timelineEvent(ctx context.Context, row *eventRow, before *stateView) (*pendingEvent, error) {
	ev := row.pdu
	p := &pendingEvent{pdu: ev, pos: row.pos}
	if sk := ev.StateKey(); sk != nil {
		p.key = &stateKey{ev.Type(), *sk}
		if ev.Type() == spec.MRoomMember {
			p.membership, _ = ev.Membership()
		}
	}
	target, err := j.redactionTarget(ctx, row, before)
	if err != nil {
		return nil, err
	}
	if target != 0 {
		p.nid = row.nid // redacted_because; a redaction's row never waits (store)
		p.redacts = eventRef{nid: target}
		if err := applyRedaction(ctx, j.tx, p); err != nil {
			return nil, err
		}
		j.redacted = append(j.redacted, target)
	}
	p.nid = row.nid
	j.timeline = append(j.timeline, p)
	if w := j.waiting[ev.EventID()]; w != nil && row.nid == 0 {
		w.p = p
	}
	return p, nil
}

// replacedIn is the state event ev replaces in the state before it
// (unsigned.prev_content).
func replacedIn(ev gomatrixserverlib.PDU, before *stateView) int64 {
	if sk := ev.StateKey(); sk != nil {
		return before.get(stateKey{ev.Type(), *sk})
	}
	return 0
}

// applyMembership brings rs_membership in line with the current state
// after it moved from old: the changed member keys (all of them when
// changed is nil).
func (j *inputJob) applyMembership(ctx context.Context, old *stateView, changed map[stateKey]int64, pos int64) error {
	if changed == nil {
		changed = diffStates(old.full(), j.cur.full())
	}
	for k, nid := range changed {
		if k.Type != spec.MRoomMember {
			continue
		}
		if nid == 0 {
			if _, err := j.tx.ExecContext(ctx, `DELETE FROM rs_membership WHERE room_nid = $1 AND user_id = $2`, j.h.nid, k.StateKey); err != nil {
				return fmt.Errorf("remove membership of %s: %w", k.StateKey, err)
			}
			continue
		}
		ev, err := j.pdus.get(ctx, nid)
		if err != nil {
			return err
		}
		m, err := ev.Membership()
		if err != nil {
			continue // not a valid member event; the auth rules let nothing depend on it
		}
		if err := upsertMembership(ctx, j.tx, j.h.nid, k.StateKey, m, nid, pos); err != nil {
			return err
		}
	}
	return nil
}
