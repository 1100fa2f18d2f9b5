package federation

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// userIDForSender maps a sender to its user ID: the room versions served
// have no pseudonymous senders.
func userIDForSender(_ spec.RoomID, sender spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(sender), true)
}

// roomVersionImpl is the library's implementation of a room version;
// M_UNSUPPORTED_ROOM_VERSION for one it does not know.
func roomVersionImpl(version string) (gomatrixserverlib.IRoomVersion, error) {
	impl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		return nil, mxerr.UnsupportedRoomVersion("room version %q is not supported", version)
	}
	return impl, nil
}

// verifyPDU is the checks of a received PDU before the auth rules (the
// spec's "Checks performed on receipt of a PDU", 1 to 3): a valid event of
// the room version, signed by the servers that must sign it (else it is
// dropped, with an error), and its content hash (else it is redacted: the
// library then keeps only the redacted copy).
func (f *Federation) verifyPDU(ctx context.Context, roomVersion string, raw []byte) (gomatrixserverlib.PDU, error) {
	ev, err := parsePDU(roomVersion, raw)
	if err != nil {
		return nil, err
	}
	// The event is returned with the error, for its ID in answers.
	return ev, f.verifySignatures(ctx, ev)
}

// parsePDU reads an event of a room version, redacted when its content
// hash is wrong.
func parsePDU(roomVersion string, raw []byte) (gomatrixserverlib.PDU, error) {
	impl, err := roomVersionImpl(roomVersion)
	if err != nil {
		return nil, err
	}
	ev, err := impl.NewEventFromUntrustedJSON(raw)
	if err != nil {
		return nil, mxerr.BadJSON("invalid event: %v", err)
	}
	return ev, nil
}

// verifySignatures checks the signatures an event needs (its sender's
// server; for an invite, the invitee's too; for a restricted join, the
// authorising server's).
func (f *Federation) verifySignatures(ctx context.Context, ev gomatrixserverlib.PDU) error {
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, ev, f.keys.ring, userIDForSender); err != nil {
		return mxerr.Forbidden("signatures of %s: %v", ev.EventID(), err)
	}
	return nil
}

// verifyPDUs verifies events fetched from another server for roomID,
// dropping (and logging) those that fail or belong to another room. The
// checks (hashes, ed25519) are most of a big join's time: they run on
// every core.
func (f *Federation) verifyPDUs(ctx context.Context, roomID, roomVersion string, raws [][]byte) []gomatrixserverlib.PDU {
	checked := make([]gomatrixserverlib.PDU, len(raws))
	onEveryCore(len(raws), func(i int) {
		ev, err := f.verifyPDU(ctx, roomVersion, raws[i])
		if err != nil {
			f.log.Warn("dropped a fetched event", "room", roomID, "err", err)
			return
		}
		// The ID hashes the event: computed here, on every core, rather
		// than by the first caller wanting it.
		if id := ev.EventID(); ev.RoomID().String() != roomID {
			f.log.Warn("dropped a fetched event of another room", "room", roomID, "event", id)
			return
		}
		checked[i] = ev
	})
	out := make([]gomatrixserverlib.PDU, 0, len(raws))
	for _, ev := range checked {
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out
}

// onEveryCore calls fn(0) … fn(n-1), spread over GOMAXPROCS goroutines.
func onEveryCore(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// asBytes lists JSON values of any raw type (json.RawMessage, spec.RawJSON).
func asBytes[T ~[]byte](in []T) [][]byte {
	out := make([][]byte, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

// byDepth sorts events oldest first (by depth, then ID for stability).
func byDepth(evs []gomatrixserverlib.PDU) {
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].Depth() != evs[j].Depth() {
			return evs[i].Depth() < evs[j].Depth()
		}
		return evs[i].EventID() < evs[j].EventID()
	})
}

// authOrder orders events so that each comes after those of its auth
// events that are among them (what outliers need: their auth events
// stored first), keeping depth order otherwise.
func authOrder(evs []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	byDepth(evs)
	index := make(map[string]gomatrixserverlib.PDU, len(evs))
	for _, ev := range evs {
		index[ev.EventID()] = ev
	}
	out := make([]gomatrixserverlib.PDU, 0, len(evs))
	done := make(map[string]bool, len(evs))
	var visit func(ev gomatrixserverlib.PDU, seen map[string]bool)
	visit = func(ev gomatrixserverlib.PDU, seen map[string]bool) {
		id := ev.EventID()
		if done[id] || seen[id] { // seen: a cycle, which auth chains never have
			return
		}
		seen[id] = true
		for _, a := range ev.AuthEventIDs() {
			if dep, ok := index[a]; ok {
				visit(dep, seen)
			}
		}
		done[id] = true
		out = append(out, ev)
	}
	for _, ev := range evs {
		visit(ev, map[string]bool{})
	}
	return out
}

// inputEvents hands events of one room to the roomserver, all of one kind.
func (f *Federation) inputEvents(ctx context.Context, roomID, kind, origin string, evs []gomatrixserverlib.PDU) (*roomserver.InputEventsResponse, error) {
	return f.callInput(ctx, inputRequest(roomID, kind, origin, evs))
}

// inputRequest is the request that inputs evs, of one kind and origin.
func inputRequest(roomID, kind, origin string, evs []gomatrixserverlib.PDU) *roomserver.InputEventsRequest {
	req := &roomserver.InputEventsRequest{RoomID: roomID, Events: make([]roomserver.InputEvent, len(evs))}
	for i, ev := range evs {
		req.Events[i] = roomserver.InputEvent{Kind: kind, Event: ev.JSON(), Origin: origin}
	}
	return req
}

// inputNew hands one new event to the roomserver, with the state before
// it when its prev_events could not be had.
func (f *Federation) inputNew(ctx context.Context, roomID, origin string, ev gomatrixserverlib.PDU, stateBefore []string) (*roomserver.InputResult, error) {
	resp, err := f.callInput(ctx, &roomserver.InputEventsRequest{RoomID: roomID, Events: []roomserver.InputEvent{{
		Kind: roomserver.InputKindNew, Event: ev.JSON(), Origin: origin, StateBefore: stateBefore,
	}}})
	if err != nil {
		return nil, err
	}
	return &resp.Results[0], nil
}

func (f *Federation) callInput(ctx context.Context, req *roomserver.InputEventsRequest) (*roomserver.InputEventsResponse, error) {
	resp, err := roomserver.InputEvents.Call(ctx, f.bus, req)
	if err != nil {
		return nil, fmt.Errorf("input %d events of %s: %w", len(req.Events), req.RoomID, err)
	}
	if len(resp.Results) != len(req.Events) {
		return nil, fmt.Errorf("input events of %s: %d results for %d events", req.RoomID, len(resp.Results), len(req.Events))
	}
	return resp, nil
}

// storedIDs tells which of ids the roomserver has (rejected ones too).
func (f *Federation) storedIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	have := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return have, nil
	}
	stored, err := f.reader.Events(ctx, ids, true)
	if err != nil {
		return nil, fmt.Errorf("read stored events: %w", err)
	}
	for _, s := range stored {
		have[s.EventID] = true
	}
	return have, nil
}
