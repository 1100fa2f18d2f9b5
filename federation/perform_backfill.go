package federation

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

const (
	// maxBackfill bounds one backfill request.
	maxBackfill = 100
	// backfillTimeout bounds a whole backfill, every server asked: a
	// client's /messages waits for it (and the bus gives 30 s).
	backfillTimeout = 20 * time.Second
	// maxBackfillGaps bounds the states (/state_ids) fetched for one
	// answer: one per branch that starts in it, usually one.
	maxBackfillGaps = 4
	// maxBackfillInput bounds the JSON input at once: one request on the
	// bus (1 MB), so that the events get their positions in one go.
	maxBackfillInput = 768 << 10
)

// backfill asks the other servers in the room, in turn, for the events
// before FromEventIDs, and stores what the first that has something new
// sends (verified like the PDUs of /send) as history.
func (f *Federation) backfill(ctx context.Context, req *fedapi.BackfillRequest) (*fedapi.BackfillResponse, error) {
	if len(req.FromEventIDs) == 0 {
		return &fedapi.BackfillResponse{}, nil
	}
	version, ok, err := f.reader.RoomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("room %s is unknown here", req.RoomID)
	}
	ctx, cancel := context.WithTimeout(ctx, backfillTimeout)
	defer cancel()
	servers, err := f.backfillServers(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	limit := min(max(req.Limit, 1), maxBackfill)
	for _, server := range servers {
		if ctx.Err() != nil {
			break
		}
		stored, err := f.backfillFrom(ctx, server, req.RoomID, version, req.FromEventIDs, limit)
		if err != nil {
			f.log.Info("backfill failed", "room", req.RoomID, "from", server, "err", err)
		}
		if stored > 0 {
			return &fedapi.BackfillResponse{Stored: stored}, nil
		}
	}
	return &fedapi.BackfillResponse{}, nil
}

// backfillServers are the other servers joined to the room that we may
// talk to, the room creator's first: it has the whole history unless it
// left.
func (f *Federation) backfillServers(ctx context.Context, roomID string) ([]string, error) {
	joined, err := f.reader.JoinedServers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	joined = slices.DeleteFunc(joined, func(s string) bool { return f.allowed(s) != nil })
	create, err := f.reader.CurrentState(ctx, roomID, spec.MRoomCreate, "")
	if err != nil || create == nil {
		return joined, err
	}
	var ev struct {
		Sender string `json:"sender"`
	}
	if json.Unmarshal(create.JSON, &ev) == nil {
		creator := mxid.ServerOf(ev.Sender)
		if i := slices.Index(joined, creator); i > 0 {
			joined = slices.Insert(slices.Delete(joined, i, i+1), 0, creator)
		}
	}
	return joined, nil
}

// backfillFrom asks one server and stores its answer; it returns how many
// events were added to the room's history.
func (f *Federation) backfillFrom(ctx context.Context, server, roomID, version string, from []string, limit int) (int, error) {
	txn, err := f.client.Backfill(ctx, spec.ServerName(f.serverName), spec.ServerName(server), roomID, limit, from)
	if err != nil {
		return 0, remoteErr(server, err)
	}
	evs, err := f.newHistory(ctx, f.verifyPDUs(ctx, roomID, version, asBytes(txn.PDUs)))
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	input := inputRequest(roomID, roomserver.InputKindBackfill, server, evs)
	if err := f.backfillGaps(ctx, server, roomID, version, evs, input); err != nil {
		return 0, err
	}
	res, err := f.callInput(ctx, input)
	if err != nil {
		return 0, err
	}
	stored := 0
	for i, r := range res.Results {
		switch r.Status {
		case roomserver.InputAccepted:
			stored++
		case roomserver.InputMissing, roomserver.InputRejected, roomserver.InputNoPosition:
			f.log.Info("a backfilled event was not stored", "room", roomID, "event", r.EventID, "type", evs[i].Type(),
				"status", r.Status, "reason", r.Reason, "missing", r.Missing)
		}
	}
	return stored, nil
}

// newHistory keeps the events not yet part of the room's DAG (new ones,
// and outliers, which backfill makes history), oldest first, the newest
// of them that fit in one input request.
func (f *Federation) newHistory(ctx context.Context, evs []gomatrixserverlib.PDU) ([]gomatrixserverlib.PDU, error) {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.EventID()
	}
	stored, err := f.reader.Events(ctx, ids, true)
	if err != nil {
		return nil, err
	}
	inDAG := map[string]bool{}
	for _, s := range stored {
		inDAG[s.EventID] = !s.Outlier || s.Rejected
	}
	evs = slices.DeleteFunc(evs, func(ev gomatrixserverlib.PDU) bool { return inDAG[ev.EventID()] })
	byDepth(evs)
	// The oldest are left for the next backfill when too big: the next
	// page starts where this one stops.
	size := 0
	for i := len(evs) - 1; i >= 0; i-- {
		if size += len(evs[i].JSON()); size > maxBackfillInput {
			return evs[i+1:], nil
		}
	}
	return evs, nil
}

// backfillGaps gives the state before them to the events whose
// prev_events are neither in the answer nor in the room's DAG (the oldest
// event of the answer, and the first of any other branch): the state is
// asked of server (/state_ids) and its unknown events stored as outliers.
func (f *Federation) backfillGaps(ctx context.Context, server, roomID, version string, evs []gomatrixserverlib.PDU, input *roomserver.InputEventsRequest) error {
	inAnswer := make(map[string]bool, len(evs))
	var outside []string
	for _, ev := range evs {
		// The room's create event, stored since the join as an outlier,
		// may not become history (the roomserver refuses a second create
		// in a room that has one): what follows it gets its state.
		inAnswer[ev.EventID()] = ev.Type() != spec.MRoomCreate
	}
	for _, ev := range evs {
		for _, p := range ev.PrevEventIDs() {
			if !inAnswer[p] {
				outside = append(outside, p)
			}
		}
	}
	stored, err := f.reader.Events(ctx, outside, false)
	if err != nil {
		return err
	}
	inDAG := map[string]bool{}
	for _, s := range stored {
		inDAG[s.EventID] = !s.Outlier
	}
	gaps := 0
	for i, ev := range evs {
		if !slices.ContainsFunc(ev.PrevEventIDs(), func(p string) bool { return !inAnswer[p] && !inDAG[p] }) {
			continue
		}
		if gaps == maxBackfillGaps {
			break // input anyway: those events come back missing
		}
		gaps++
		state, err := f.fetchStateBefore(ctx, server, roomID, version, ev.EventID())
		if err != nil {
			return err
		}
		input.Events[i].StateBefore = state
	}
	return nil
}
