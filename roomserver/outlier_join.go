package roomserver

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// outlierTxRows is how many state and auth events of a joined room are
// stored per transaction, so other rooms' commits get the database in
// between on a big join.
const outlierTxRows = 5000

// storeJoinedRoom stores a room this server joined through send_join
// (StoreJoinedRoom): its state and auth chain as outliers, each checked
// against its auth events (a bad one is rejected or dropped, only a bad
// create event fails the join), then the join as the room's first
// timeline event (in a room known before, its next one), whose state
// before is the state given. A big answer comes in parts: each Partial
// one stores its events and records the state given so far as a snapshot
// no event points at, which the next part builds on and the last one
// reads; only the last one writes what readers see (memberships, the
// join, the room's head).
func (rs *Roomserver) storeJoinedRoom(ctx context.Context, req *StoreJoinedRoomRequest) (*StoreJoinedRoomResponse, error) {
	version, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return nil, mxerr.UnsupportedRoomVersion("room version %q is not supported", req.RoomVersion)
	}
	join, err := version.NewEventFromTrustedJSON(req.JoinEvent, false)
	if err != nil {
		return nil, mxerr.BadJSON("malformed join event: %v", err)
	}
	if m, err := join.Membership(); join.Type() != spec.MRoomMember || join.StateKey() == nil || err != nil || m != spec.Join {
		return nil, mxerr.BadJSON("the join event is not a join")
	}
	if domainOf(*join.StateKey()) != rs.serverName {
		return nil, mxerr.BadJSON("%s is not a user of this server", *join.StateKey())
	}
	if (len(req.StateEventIDs) > 0 && len(req.StateEventIDs) != len(req.State)) ||
		(len(req.AuthChainEventIDs) > 0 && len(req.AuthChainEventIDs) != len(req.AuthChain)) {
		return nil, mxerr.BadJSON("event IDs do not match the events")
	}
	roomID := join.RoomID().String()
	snapshot, err := rs.queue.submitAlone(ctx, roomID, func(h *roomHead) (any, error) {
		if h != nil && h.version.Version() != version.Version() {
			return nil, mxerr.BadJSON("room %s has version %s, not %s", roomID, h.version.Version(), req.RoomVersion)
		}
		jr := &joinedRoom{rs: rs, version: version, roomID: roomID, join: join, head: h, known: map[string]*dagEvent{}}
		return jr.store(req)
	})
	if err != nil {
		return nil, err
	}
	resp := &StoreJoinedRoomResponse{RoomID: roomID, EventID: join.EventID()}
	resp.StateSnapshot, _ = snapshot.(int64)
	return resp, nil
}

// joinedRoom is a send_join answer being stored.
type joinedRoom struct {
	rs      *Roomserver
	version gomatrixserverlib.IRoomVersion
	roomID  string
	join    gomatrixserverlib.PDU
	head    *roomHead // nil for a room unknown so far
	roomNID int64

	known    map[string]*dagEvent             // stored events among those referenced
	events   map[string]gomatrixserverlib.PDU // the answer's events, by ID
	accepted map[string]bool                  // events of the answer that passed their checks
	rows     []*eventRow                      // what to store, auth events first
	pdus     *pduCache
}

// store stores one request's events; a Partial one returns the state
// given so far (a snapshot), the last one joins the room.
func (jr *joinedRoom) store(req *StoreJoinedRoomRequest) (int64, error) {
	ctx := context.Background()
	if jr.head != nil {
		jr.roomNID = jr.head.nid
	}
	stateEvents := parseParallel(jr.version, req.State, req.StateEventIDs)
	jr.events = map[string]gomatrixserverlib.PDU{}
	for _, ev := range slices.Concat(parseParallel(jr.version, req.AuthChain, req.AuthChainEventIDs), stateEvents) {
		if ev != nil && ev.RoomID().String() == jr.roomID {
			jr.events[ev.EventID()] = ev
		}
	}
	ids := []string{jr.join.EventID()}
	for id, ev := range jr.events {
		ids = append(ids, id)
		ids = append(ids, ev.AuthEventIDs()...)
	}
	ids = append(ids, jr.join.AuthEventIDs()...)
	if err := lookupEvents(ctx, jr.rs.db, ids, jr.known); err != nil {
		return 0, err
	}
	if d := jr.known[jr.join.EventID()]; d != nil && !d.outlier {
		return 0, nil // stored already
	}
	jr.pdus = newPDUCache(jr.rs, jr.version, jr.rs.db)
	baseChain, err := jr.baseSnapshot(ctx, req.BaseState)
	if err != nil {
		return 0, err
	}
	if err := jr.check(ctx); err != nil {
		return 0, err
	}
	given := jr.givenState(stateEvents)
	if req.Partial {
		if err := jr.storeOutliers(ctx); err != nil {
			return 0, err
		}
		return jr.storePartialState(ctx, req.BaseState, baseChain, given)
	}
	if id := jr.createID(); id == "" || !jr.isAccepted(id) {
		return 0, mxerr.BadJSON("the room's create event is missing or invalid")
	}
	base, _, err := loadSnapshot(ctx, jr.rs.db, req.BaseState) // read here: not shared
	if err != nil {
		return 0, err
	}
	createKey := stateKey{spec.MRoomCreate, ""}
	if given[createKey] == "" && base[createKey] == 0 {
		return 0, mxerr.BadJSON("the state has no valid create event")
	}
	if err := jr.checkJoin(ctx, base, given); err != nil {
		return 0, err
	}
	if err := jr.storeOutliers(ctx); err != nil {
		return 0, err
	}
	state := base
	for k, nid := range jr.nidsOf(given) {
		state[k] = nid
	}
	return 0, jr.storeJoin(ctx, state, given)
}

// parseParallel parses events on every core (nil for a malformed one),
// with the IDs given when there are (else each event is hashed for its ID).
func parseParallel(version gomatrixserverlib.IRoomVersion, raws []json.RawMessage, ids []string) []gomatrixserverlib.PDU {
	out := make([]gomatrixserverlib.PDU, len(raws))
	parallelFor(len(raws), func(i int) {
		var ev gomatrixserverlib.PDU
		var err error
		if len(ids) == len(raws) {
			ev, err = version.NewEventFromTrustedJSONWithEventID(ids[i], raws[i], false)
		} else if ev, err = version.NewEventFromTrustedJSON(raws[i], false); err == nil {
			ev.EventID() // the hash, computed on first use: here, in parallel
		}
		if err == nil {
			out[i] = ev
		}
	})
	return out
}

// parallelFor runs fn for 0..n-1 on every core (parsing an event, which
// hashes it, is most of the CPU input takes).
func parallelFor(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), max(1, n/16))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// createID is the ID of the room's create event.
func (jr *joinedRoom) createID() string {
	if jr.version.DomainlessRoomIDs() {
		return "$" + jr.roomID[1:]
	}
	for id, ev := range jr.events {
		if ev.Type() == spec.MRoomCreate && ev.StateKeyEquals("") {
			return id
		}
	}
	for id, d := range jr.known {
		if k, ok := d.key(); ok && k == (stateKey{spec.MRoomCreate, ""}) && d.roomNID == jr.roomNID {
			return id
		}
	}
	return ""
}

// check orders the answer's new events with auth events first and checks
// each against its auth events: one that fails is stored as rejected, one
// whose auth events are missing is dropped.
func (jr *joinedRoom) check(ctx context.Context) error {
	jr.accepted = map[string]bool{}
	createID := jr.createID()
	v12Create := ""
	if jr.version.DomainlessRoomIDs() {
		v12Create = createID
	}
	for _, ev := range authOrder(jr.events) {
		id := ev.EventID()
		if d := jr.known[id]; d != nil {
			continue // stored before; its checks were made then
		}
		auth, ok, err := jr.authEvents(ctx, ev)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		row := newEventRow(ev, jr.rs.negativePos())
		row.outlier = true
		if reason := authEventsAllow(ev, v12Create, auth); reason != "" {
			row.rejected = true
			jr.rs.log.Warn("state event of a joined room rejected", "room_id", jr.roomID, "event_id", id, "reason", reason)
		} else {
			jr.accepted[id] = true
		}
		jr.rows = append(jr.rows, row)
	}
	return nil
}

// isAccepted tells whether the event passed its checks, now or when it
// was stored.
func (jr *joinedRoom) isAccepted(id string) bool {
	if d := jr.known[id]; d != nil {
		return d.roomNID == jr.roomNID && jr.roomNID != 0 && !d.rejected
	}
	return jr.accepted[id]
}

// authEvents gathers ev's accepted auth events; ok is false when one is
// missing or was not accepted.
func (jr *joinedRoom) authEvents(ctx context.Context, ev gomatrixserverlib.PDU) ([]gomatrixserverlib.PDU, bool, error) {
	ids := ev.AuthEventIDs() // with the create event in room version 12
	out := make([]gomatrixserverlib.PDU, 0, len(ids))
	for _, id := range ids {
		if !jr.isAccepted(id) {
			return nil, false, nil
		}
		a, err := jr.event(ctx, id)
		if err != nil {
			return nil, false, err
		}
		out = append(out, a)
	}
	return out, true, nil
}

// event is an event of the answer or a stored one.
func (jr *joinedRoom) event(ctx context.Context, id string) (gomatrixserverlib.PDU, error) {
	if d := jr.known[id]; d != nil {
		return jr.pdus.get(ctx, d.nid)
	}
	if ev := jr.events[id]; ev != nil {
		return ev, nil
	}
	return nil, fmt.Errorf("event %s is not known", id)
}

// authOrder sorts events so that each comes after those of its auth
// events that are among them (depth, then ID, order the rest).
func authOrder(events map[string]gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	all := make([]gomatrixserverlib.PDU, 0, len(events))
	for _, ev := range events {
		all = append(all, ev)
	}
	slices.SortFunc(all, func(a, b gomatrixserverlib.PDU) int {
		if c := cmp.Compare(a.Depth(), b.Depth()); c != 0 {
			return c
		}
		return cmp.Compare(a.EventID(), b.EventID())
	})
	out := make([]gomatrixserverlib.PDU, 0, len(all))
	done := make(map[string]bool, len(all))
	var visit func(ev gomatrixserverlib.PDU)
	visit = func(ev gomatrixserverlib.PDU) {
		done[ev.EventID()] = true // set first: a cycle (bad input) ends here
		for _, id := range ev.AuthEventIDs() {
			if a := events[id]; a != nil && !done[id] {
				visit(a)
			}
		}
		out = append(out, ev)
	}
	for _, ev := range all {
		if !done[ev.EventID()] {
			visit(ev)
		}
	}
	return out
}

// givenState is the state this request gives: its accepted state events
// (stored before or now), by event ID.
func (jr *joinedRoom) givenState(stateEvents []gomatrixserverlib.PDU) map[stateKey]string {
	state := map[stateKey]string{}
	for _, ev := range stateEvents {
		if ev == nil || ev.StateKey() == nil || ev.RoomID().String() != jr.roomID || !jr.isAccepted(ev.EventID()) {
			continue
		}
		state[keyOf(ev)] = ev.EventID()
	}
	return state
}

// nidsOf maps a state by event ID to the events' nids (those stored now
// and before).
func (jr *joinedRoom) nidsOf(state map[stateKey]string) stateMap {
	nids := jr.storedNIDs()
	out := make(stateMap, len(state))
	for k, id := range state {
		if d := jr.known[id]; d != nil {
			out[k] = d.nid
		} else if nid := nids[id]; nid != 0 {
			out[k] = nid
		}
	}
	return out
}

// baseSnapshot checks that nid, given as the state the earlier parts of
// the answer gave, is a snapshot of this room (one storePartialState
// wrote), and returns its chain length.
func (jr *joinedRoom) baseSnapshot(ctx context.Context, nid int64) (int, error) {
	if nid == 0 {
		return 0, nil
	}
	var roomNID int64
	var chainLen int
	err := jr.rs.db.QueryRowContext(ctx, `SELECT room_nid, chain_len FROM rs_state_snapshots WHERE snapshot_nid = $1`, nid).Scan(&roomNID, &chainLen)
	if isNoRows(err) || (err == nil && (roomNID != jr.roomNID || roomNID == 0)) {
		return 0, mxerr.BadJSON("state snapshot %d is not one of room %s", nid, jr.roomID)
	}
	if err != nil {
		return 0, fmt.Errorf("read state snapshot %d: %w", nid, err)
	}
	return chainLen, nil
}

// storePartialState records the state a part gives on top of the earlier
// parts' as a snapshot of the room (a delta on base), which no event
// points at: the last part reads it.
func (jr *joinedRoom) storePartialState(ctx context.Context, base int64, baseChain int, given map[stateKey]string) (int64, error) {
	state := jr.nidsOf(given)
	if len(state) == 0 {
		return base, nil
	}
	chainLen := 0
	if base != 0 {
		chainLen = baseChain + 1
	}
	var nid int64
	err := jr.rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var err error
		nid, err = insertSnapshot(ctx, tx, jr.roomNID, base, chainLen, fullEntries(state))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store the state of %s given so far: %w", jr.roomID, err)
	}
	return nid, nil
}

// checkJoin checks the join against its auth events and the state given
// (by the earlier parts, by nid, and by this request, by ID).
func (jr *joinedRoom) checkJoin(ctx context.Context, base stateMap, given map[stateKey]string) error {
	v12Create := ""
	if jr.version.DomainlessRoomIDs() {
		v12Create = jr.createID()
	}
	auth, ok, err := jr.authEvents(ctx, jr.join)
	if err != nil {
		return err
	}
	if !ok {
		return mxerr.BadJSON("the join's auth events are missing from the answer")
	}
	if reason := authEventsAllow(jr.join, v12Create, auth); reason != "" {
		return mxerr.Forbidden("the join is not valid: %s", reason)
	}
	var list []gomatrixserverlib.PDU
	for _, t := range gomatrixserverlib.StateNeededForAuth([]gomatrixserverlib.PDU{jr.join}).Tuples() {
		k := stateKey{t.EventType, t.StateKey}
		var ev gomatrixserverlib.PDU
		var err error
		if id := given[k]; id != "" {
			ev, err = jr.event(ctx, id)
		} else if nid := base[k]; nid != 0 {
			ev, err = jr.pdus.get(ctx, nid)
		}
		if err != nil {
			return err
		}
		if ev != nil {
			list = append(list, ev)
		}
	}
	provider, err := gomatrixserverlib.NewAuthEvents(list)
	if err != nil {
		return mxerr.BadJSON("state: %v", err)
	}
	if err := gomatrixserverlib.Allowed(jr.join, provider, userIDForSender); err != nil {
		return mxerr.Forbidden("the join is not allowed by the room's state: %v", err)
	}
	return nil
}

// storeOutliers stores the answer's new events, a few thousand per
// transaction, outside the position mutex (they take negative positions).
// The first transaction creates the room when it is new.
func (jr *joinedRoom) storeOutliers(ctx context.Context) error {
	start := 0
	for first := true; first || start < len(jr.rows); first = false {
		chunk := jr.rows[start:min(start+outlierTxRows, len(jr.rows))]
		err := jr.rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
			if err := tx.PlanEachQuery(ctx); err != nil { // sqlutil/plancache.go
				return err
			}
			if jr.roomNID == 0 {
				h := &roomHead{id: jr.roomID, version: jr.version}
				if err := insertRoom(ctx, tx, h, nil); err != nil {
					return err
				}
				jr.roomNID = h.nid
			}
			return insertEventRows(ctx, tx, jr.roomNID, chunk)
		})
		if err != nil {
			return fmt.Errorf("store the state of %s: %w", jr.roomID, err)
		}
		start += len(chunk)
	}
	return nil
}

// storedNIDs maps the answer's stored events to their nids.
func (jr *joinedRoom) storedNIDs() map[string]int64 {
	out := make(map[string]int64, len(jr.rows))
	for _, r := range jr.rows {
		out[r.pdu.EventID()] = r.nid
	}
	return out
}

// storeJoin stores the state (event nids) as one full snapshot, the join
// as a timeline event on it, the memberships of the state, and the room's
// new head, under the position mutex. given is the part of the state this
// request carried.
func (jr *joinedRoom) storeJoin(ctx context.Context, state stateMap, given map[stateKey]string) error {
	rs := jr.rs
	members, err := jr.memberRows(ctx, state)
	if err != nil {
		return err
	}
	joinKey := keyOf(jr.join)
	rs.commitMu.Lock()
	defer rs.commitMu.Unlock()
	floor := rs.lastPos
	pos := floor + backfillGap + 1
	p := &pendingEvent{pdu: jr.join, pos: pos, key: &joinKey, membership: spec.Join}
	for i := range members {
		if members[i].pos == 0 {
			members[i].pos = pos
		}
	}
	var before, after int64
	var redacted []redactedEvent
	err = rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if err := tx.PlanEachQuery(ctx); err != nil { // sqlutil/plancache.go
			return err
		}
		var err error
		if before, err = insertSnapshot(ctx, tx, jr.roomNID, 0, 0, fullEntries(state)); err != nil {
			return err
		}
		row := newEventRow(jr.join, pos)
		row.snapBefore, row.snapAfter, row.roomBefore, row.roomAfter = before, before, before, before
		row.replaces = state[joinKey]
		if p.nid, err = row.save(ctx, tx, jr.roomNID, jr.known[jr.join.EventID()]); err != nil {
			return err
		}
		if err := insertEdges(ctx, tx, p.nid, jr.join.PrevEventIDs()); err != nil {
			return err
		}
		entry := []snapshotEntry{{T: joinKey.Type, K: joinKey.StateKey, E: p.nid}}
		if after, err = insertSnapshot(ctx, tx, jr.roomNID, before, 1, entry); err != nil {
			return err
		}
		if err := updateStateAfter(ctx, tx, p.nid, after, after); err != nil {
			return err
		}
		members = append(members, memberRow{userID: joinKey.StateKey, membership: spec.Join, nid: p.nid, pos: pos})
		if err := upsertMembers(ctx, tx, jr.roomNID, members); err != nil {
			return err
		}
		// Redactions that waited for the room's events (redaction_pending.go).
		if redacted, err = applyPendingRedactions(ctx, tx, jr.roomNID, nil); err != nil {
			return err
		}
		if err := updateRoomHead(ctx, tx, jr.roomNID, after, 1, []string{jr.join.EventID()}, jr.join.Depth()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE rs_rooms SET backfill_next = $1, backfill_floor = $2 WHERE room_nid = $3`, pos, floor, jr.roomNID)
		return err
	})
	if err != nil {
		rs.heads.remove(jr.roomID)
		return fmt.Errorf("store the join of %s: %w", jr.roomID, err)
	}
	rs.lastPos = pos
	state[joinKey] = p.nid
	h := &roomHead{nid: jr.roomNID, id: jr.roomID, version: jr.version, extremities: []string{jr.join.EventID()},
		depth: jr.join.Depth(), snapshot: after, chainLen: 1, state: state}
	rs.heads.put(jr.roomID, h)
	rs.events.put(p.nid, jr.join)
	for k, id := range given {
		if ev := jr.events[id]; ev != nil && k.Type != spec.MRoomMember {
			rs.events.put(state[k], ev)
		}
	}
	rs.forgetRedacted(redacted)
	rs.publisher.enqueue([]OutputEvent{outputOf(h, p)})
	return nil
}

// memberRows are the memberships of the state, for rs_membership. A
// membership stored before with a position (a local user's invite) keeps
// it; the others take the join's, as changes seen at the join.
func (jr *joinedRoom) memberRows(ctx context.Context, state stateMap) ([]memberRow, error) {
	stored := make(map[int64]*dagEvent, len(jr.known))
	for _, d := range jr.known {
		stored[d.nid] = d
	}
	fresh := make(map[int64]gomatrixserverlib.PDU, len(jr.rows))
	for _, r := range jr.rows {
		fresh[r.nid] = r.pdu
	}
	joinKey := keyOf(jr.join)
	var earlier []int64 // stored by earlier parts (or before): read back
	for k, nid := range state {
		if k.Type == spec.MRoomMember && k != joinKey && stored[nid] == nil && fresh[nid] == nil {
			earlier = append(earlier, nid)
		}
	}
	err := inChunks(earlier, 1, int64(0), func(list string, args []any) error {
		rows, err := jr.rs.db.QueryContext(ctx, dagEventSelect+`WHERE event_nid IN (`+list+`)`, args...)
		if err != nil {
			return fmt.Errorf("read the members of %s: %w", jr.roomID, err)
		}
		return scanDAGEvents(rows, func(d *dagEvent) { stored[d.nid] = d })
	})
	if err != nil {
		return nil, err
	}
	var out []memberRow
	for k, nid := range state {
		if k.Type != spec.MRoomMember || k == joinKey {
			continue
		}
		r := memberRow{userID: k.StateKey, nid: nid}
		if d := stored[nid]; d != nil {
			r.membership = d.membership
			if d.pos > 0 {
				r.pos = d.pos
			}
		} else if m := membershipOf(fresh[nid]); m != nil {
			r.membership = *m
		}
		if r.membership != "" {
			out = append(out, r)
		}
	}
	return out, nil
}
