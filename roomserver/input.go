package roomserver

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Events of other servers (api_federation.go): the files input*.go apply
// InputEvents to a room's DAG, fork.go resolves the state where branches
// meet (and keeps late ancestors out of the extremities), outlier*.go
// store what is not part of a room's timeline (the state of a room joined
// through send_join, a local user's membership in a room this server is
// not in), redaction_pending.go applies redactions that came before their
// target.
//
// Input runs on the room's worker like local sends (queue.go, a job that
// runs alone), and a request is one transaction taken under the position
// mutex: positions are assigned as events are accepted.

// fedState is the roomserver's state for events of other servers.
type fedState struct {
	// neg is the last negative stream position handed out: outliers,
	// rejected and soft-failed events each take a unique one, outside any
	// range the timeline is read in.
	neg atomic.Int64
	// pendingRedactions are the rooms with redactions waiting for their
	// target (redaction_pending.go).
	pendingRedactions *pendingRooms
}

// serveFederation serves the endpoints of api_federation.go that store
// events (BuildEvent is served by buildevent.go).
func (rs *Roomserver) serveFederation() error {
	var low int64
	err := rs.db.QueryRowContext(context.Background(), `SELECT COALESCE(MIN(stream_pos), 0) FROM rs_events WHERE stream_pos < 0`).Scan(&low)
	if err != nil {
		return fmt.Errorf("read lowest stream position: %w", err)
	}
	pending, err := loadPendingRooms(context.Background(), rs.db)
	if err != nil {
		return err
	}
	rs.fed = &fedState{pendingRedactions: pending}
	rs.fed.neg.Store(low)
	for _, err := range []error{
		InputEvents.Serve(rs.bus, rs.inputEvents),
		StoreJoinedRoom.Serve(rs.bus, rs.storeJoinedRoom),
		StoreInvite.Serve(rs.bus, rs.storeInvite),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// negativePos hands out a position for an event outside the timeline.
func (rs *Roomserver) negativePos() int64 { return rs.fed.neg.Add(-1) }

// inputEvents stores events of other servers in a known room (InputEvents).
func (rs *Roomserver) inputEvents(ctx context.Context, req *InputEventsRequest) (*InputEventsResponse, error) {
	if req.RoomID == "" || req.RoomID[0] != '!' {
		return nil, mxerr.InvalidParam("%q is not a room ID", req.RoomID)
	}
	for _, ev := range req.Events {
		switch ev.Kind {
		case InputKindNew, InputKindOutlier, InputKindBackfill:
		default:
			return nil, mxerr.InvalidParam("unknown input kind %q", ev.Kind)
		}
	}
	if len(req.Events) == 0 {
		return &InputEventsResponse{Results: []InputResult{}}, nil
	}
	resp, err := rs.queue.submitAlone(ctx, req.RoomID, func(h *roomHead) (any, error) {
		if h == nil {
			return nil, mxerr.NotFound("room %s is not known here", req.RoomID)
		}
		return rs.applyInput(h, req.Events)
	})
	if err != nil {
		return nil, err
	}
	return resp.(*InputEventsResponse), nil
}

// inputItem is one event of a request and what became of it.
type inputItem struct {
	in     *InputEvent
	pdu    gomatrixserverlib.PDU
	result InputResult
	slot   int64 // the backfill position reserved for it (input_backfill.go)
	// late: a new event the room's timeline already descends from, input
	// as history (lateAsHistory, input_backfill.go).
	late bool
}

// inputJob applies one request to its room, inside one transaction.
type inputJob struct {
	rs     *Roomserver
	h      *roomHead
	tx     *sqlutil.Tx
	known  map[string]*dagEvent // events of the room met so far, by ID
	pdus   *pduCache
	states *stateStore

	cur         *stateView // the room's current state as the job changes it
	extremities []string
	named       map[string]bool // events of the DAG named as prev_events (lateAncestor, fork.go)
	depth       int64
	pos         int64 // last positive position assigned
	headChanged bool

	timeline  []*pendingEvent // accepted and backfilled events: relations, search
	deferred  []*eventRow     // rows waiting to be stored together (flush)
	waiting   map[string]*waitingRow
	edges     []edge
	outs      []OutputEvent
	redacted  []int64
	backfill  backfillSlots
	processed int
	// noPendingLeft: the room's last pending redactions were applied.
	noPendingLeft bool
}

// applyInput parses the events, then applies them in order in one
// transaction under the position mutex.
func (rs *Roomserver) applyInput(h *roomHead, events []InputEvent) (*InputEventsResponse, error) {
	ctx := context.Background()
	items := parseInputEvents(h, events)
	known := map[string]*dagEvent{}
	if err := lookupEvents(ctx, rs.db, referencedIDs(h, items), known); err != nil {
		return nil, err
	}
	rs.commitMu.Lock()
	defer rs.commitMu.Unlock()
	started := time.Now()
	j := &inputJob{rs: rs, h: h, known: known, extremities: slices.Clone(h.extremities), depth: h.depth, pos: rs.lastPos,
		waiting: map[string]*waitingRow{}}
	err := rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		// Federated events land in bulk: lookups must not keep a plan made
		// when the tables were small (sqlutil/plancache.go).
		if err := tx.PlanEachQuery(ctx); err != nil {
			return err
		}
		j.tx = tx
		j.pdus = newPDUCache(rs, h.version, tx)
		j.states = newStateStore(rs, h, tx)
		cur, err := j.states.view(ctx, h.snapshot)
		if err != nil {
			return err
		}
		j.cur = cur
		if j.named, err = namedAsPrev(ctx, tx, h.nid, newEventIDs(items)); err != nil {
			return err
		}
		lateAsHistory(items, j.named)
		if err := j.backfill.reserve(ctx, tx, h.nid, items); err != nil {
			return err
		}
		for _, it := range items {
			if err := j.apply(ctx, it); err != nil {
				return fmt.Errorf("input %s: %w", it.result.EventID, err)
			}
		}
		return j.finish(ctx, items)
	})
	if err != nil {
		return nil, err
	}
	j.committed()
	rs.metrics.observeCommit(j.processed, time.Since(started))
	resp := &InputEventsResponse{Results: make([]InputResult, len(items))}
	for i, it := range items {
		resp.Results[i] = it.result
	}
	return resp, nil
}

// parseInputEvents parses each event with the room's version; a malformed
// event or one of another room is rejected without being stored.
func parseInputEvents(h *roomHead, events []InputEvent) []*inputItem {
	items := make([]*inputItem, len(events))
	parallelFor(len(events), func(i int) {
		it := &inputItem{in: &events[i]}
		items[i] = it
		pdu, err := h.version.NewEventFromTrustedJSON(events[i].Event, false)
		if err != nil {
			it.result = InputResult{Status: InputRejected, Reason: fmt.Sprintf("malformed event: %v", err)}
			return
		}
		it.result.EventID = pdu.EventID()
		if pdu.RoomID().String() != h.id {
			it.result.Status, it.result.Reason = InputRejected, "event of another room"
			return
		}
		it.pdu = pdu
	})
	return items
}

// referencedIDs lists every event ID the request may need to look up.
func referencedIDs(h *roomHead, items []*inputItem) []string {
	var ids []string
	if id := createEventIDOf(h); id != "" {
		ids = append(ids, id)
	}
	for _, it := range items {
		if it.pdu == nil {
			continue
		}
		ids = append(ids, it.pdu.EventID())
		ids = append(ids, it.pdu.PrevEventIDs()...)
		ids = append(ids, it.pdu.AuthEventIDs()...)
		ids = append(ids, it.in.StateBefore...)
	}
	return ids
}

// finish stores what waited, the edges, relations and search text of the
// request's events, the redactions that waited for them, and the room's
// new head.
func (j *inputJob) finish(ctx context.Context, items []*inputItem) error {
	if err := j.flush(ctx); err != nil {
		return err
	}
	if err := insertEdgeRows(ctx, j.tx, j.edges); err != nil {
		return err
	}
	c := &commitRequest{head: j.h, events: j.timeline}
	if err := commitExtras(ctx, j.tx, c); err != nil { // relations
		return err
	}
	if err := indexSearch(ctx, j.tx, c); err != nil {
		return err
	}
	// After the indexing, which a redaction undoes.
	if err := j.applyPendingRedactions(ctx, items); err != nil { // redaction_pending.go
		return err
	}
	if err := j.backfill.save(ctx, j.tx, j.h.nid); err != nil {
		return err
	}
	if !j.headChanged {
		return nil
	}
	return updateRoomHead(ctx, j.tx, j.h.nid, j.cur.nid, j.cur.chain, j.extremities, j.depth)
}

// committed updates what is kept in memory once the transaction has
// committed, and publishes the accepted events (still under the position
// mutex, so in position order).
func (j *inputJob) committed() {
	rs, h := j.rs, j.h
	j.pdus.flush()
	for _, nid := range j.redacted {
		rs.events.remove(nid)
	}
	if j.headChanged {
		if j.cur.onHead {
			for k, nid := range j.cur.delta {
				if nid == 0 {
					delete(h.state, k)
				} else {
					h.state[k] = nid
				}
			}
		} else {
			h.state = j.cur.full()
		}
		h.snapshot, h.chainLen = j.cur.nid, j.cur.chain
		h.extremities, h.depth = j.extremities, j.depth
	}
	if j.noPendingLeft {
		rs.fed.pendingRedactions.drop(h.nid)
	}
	rs.lastPos = j.pos
	if len(j.outs) > 0 {
		rs.publisher.enqueue(j.outs)
	}
}
