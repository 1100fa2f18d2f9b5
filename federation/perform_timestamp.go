package federation

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// A client's timestamp_to_event in a room joined over federation may ask
// for a time before the local history begins: the other servers are then
// asked (GET /timestamp_to_event), and an answer closer than the local
// one is made known here, as the spec asks ("backfill this event via
// /event"), so that the client can read it. An answer close to the
// local history is reached by ordinary backfill, which stores it at its
// place in the timeline (/messages, /context); one further back is
// fetched alone and stored as an outlier, which a later backfill turns
// into history.

const (
	// timestampTimeout bounds asking the servers and fetching the
	// answer: a client waits for it (and the bus gives 30 s).
	timestampTimeout = 20 * time.Second
	// maxTimestampGap is how many generations (depth) before the start of
	// the local history an answer may be to be reached by backfill.
	maxTimestampGap = 250
	// timestampBackfillRounds bounds the backfills toward an answer
	// (maxBackfill events each).
	timestampBackfillRounds = 5
	// timestampBackfillFrom bounds the backward extremities named in one
	// backfill, the shallowest first.
	timestampBackfillFrom = 5
)

// timestampToEvent serves fedapi.TimestampToEvent.
func (f *Federation) timestampToEvent(ctx context.Context, req *fedapi.TimestampToEventRequest) (*fedapi.TimestampToEventResponse, error) {
	version, ok, err := f.reader.RoomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("room %s is unknown here", req.RoomID)
	}
	// The local history misses nothing before its start when it starts
	// with the room's creation, and the gap before its start cannot hold
	// anything closer when it has events on the far side of ts.
	start, err := f.reader.TimelineStart(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if start.Complete || (!start.Empty && start.EarliestTS <= req.TS) {
		return nil, mxerr.NotFound("the history of %s stored here reaches %d", req.RoomID, req.TS)
	}
	ctx, cancel := context.WithTimeout(ctx, timestampTimeout)
	defer cancel()
	// The room's creator first, then the others: those in the room the
	// longest have the most history.
	servers, err := f.backfillServers(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	for _, server := range servers {
		if ctx.Err() != nil {
			break
		}
		resp, err := f.timestampFrom(ctx, server, version, req)
		if err != nil {
			f.log.Info("timestamp_to_event from another server failed", "room", req.RoomID, "server", server, "err", err)
			continue
		}
		if resp != nil {
			return resp, nil
		}
	}
	return nil, mxerr.NotFound("no server of %s has an event closer to %d", req.RoomID, req.TS)
}

// timestampFrom asks one server and makes its answer known here; nil
// when the answer is no closer than the local one.
func (f *Federation) timestampFrom(ctx context.Context, server, version string, req *fedapi.TimestampToEventRequest) (*fedapi.TimestampToEventResponse, error) {
	answer, err := f.askTimestamp(ctx, server, req)
	if err != nil {
		return nil, err
	}
	if !closerAnswer(req, answer) {
		return nil, nil
	}
	inHistory, err := f.makeKnown(ctx, server, version, req.RoomID, answer)
	if err != nil {
		return nil, err
	}
	return &fedapi.TimestampToEventResponse{TimestampedEvent: *answer, Server: server, InHistory: inHistory}, nil
}

// askTimestamp is GET /timestamp_to_event on server.
func (f *Federation) askTimestamp(ctx context.Context, server string, req *fedapi.TimestampToEventRequest) (*fedapi.TimestampedEvent, error) {
	dir := "f"
	if req.Backwards {
		dir = "b"
	}
	q := url.Values{"ts": {strconv.FormatInt(req.TS, 10)}, "dir": {dir}}
	var answer fedapi.TimestampedEvent
	path := v1 + "/timestamp_to_event/" + url.PathEscape(req.RoomID) + "?" + q.Encode()
	if err := f.doSigned(ctx, "GET", server, path, nil, &answer); err != nil {
		return nil, remoteErr(server, err)
	}
	if answer.EventID == "" {
		return nil, fmt.Errorf("%s answered no event ID", server)
	}
	return &answer, nil
}

// closerAnswer tells whether a remote answer is in the direction asked
// and closer to the timestamp than the local answer.
func closerAnswer(req *fedapi.TimestampToEventRequest, answer *fedapi.TimestampedEvent) bool {
	if req.Backwards {
		return answer.OriginServerTS <= req.TS && (req.Local == nil || answer.OriginServerTS > req.Local.OriginServerTS)
	}
	return answer.OriginServerTS >= req.TS && (req.Local == nil || answer.OriginServerTS < req.Local.OriginServerTS)
}

// makeKnown makes a remote answer an event stored here: history when
// backfill reaches it (inHistory), else an outlier. The event must be
// what the server said: its ID and timestamp.
func (f *Federation) makeKnown(ctx context.Context, server, version, roomID string, answer *fedapi.TimestampedEvent) (inHistory bool, err error) {
	stored, err := f.reader.Events(ctx, []string{answer.EventID}, true)
	if err != nil {
		return false, err
	}
	var ev gomatrixserverlib.PDU
	if len(stored) == 1 {
		if stored[0].RoomID != roomID || stored[0].Rejected {
			return false, fmt.Errorf("%s named %s, which is rejected or of another room here", server, answer.EventID)
		}
		if !stored[0].Outlier {
			return true, nil
		}
		if ev, err = parsePDU(version, stored[0].JSON); err != nil {
			return false, err
		}
	} else if ev, err = f.fetchEvent(ctx, server, version, roomID, answer.EventID); err != nil {
		return false, err
	}
	if ev.OriginServerTS() != spec.Timestamp(answer.OriginServerTS) {
		return false, fmt.Errorf("%s named %s at %d, which the event says is at %d", server, answer.EventID, answer.OriginServerTS, ev.OriginServerTS())
	}
	if reached, err := f.backfillToward(ctx, roomID, ev); err != nil || reached {
		return reached, err
	}
	if len(stored) == 1 {
		return false, nil // already an outlier
	}
	return false, f.storeOutlier(ctx, server, version, roomID, ev)
}

// fetchEvent is GET /event on server, verified.
func (f *Federation) fetchEvent(ctx context.Context, server, version, roomID, eventID string) (gomatrixserverlib.PDU, error) {
	txn, err := f.client.GetEvent(ctx, spec.ServerName(f.serverName), spec.ServerName(server), eventID)
	if err != nil {
		return nil, fmt.Errorf("event %s from %s: %w", eventID, server, remoteErr(server, err))
	}
	for _, ev := range f.verifyPDUs(ctx, roomID, version, asBytes(txn.PDUs)) {
		if ev.EventID() == eventID {
			return ev, nil
		}
	}
	return nil, fmt.Errorf("%s did not send a valid %s", server, eventID)
}

// backfillToward backfills the room from the start of its history until
// ev is part of it, when ev is close enough to that start; it tells
// whether ev was reached.
func (f *Federation) backfillToward(ctx context.Context, roomID string, ev gomatrixserverlib.PDU) (bool, error) {
	for range timestampBackfillRounds {
		from, err := f.shallowestExtremities(ctx, roomID)
		if err != nil || len(from) == 0 || from[0].Depth-ev.Depth() > maxTimestampGap {
			return false, err
		}
		ids := make([]string, len(from))
		for i, e := range from {
			ids[i] = e.EventID
		}
		resp, err := f.backfill(ctx, &fedapi.BackfillRequest{RoomID: roomID, FromEventIDs: ids, Limit: maxBackfill})
		if err != nil {
			return false, err
		}
		stored, err := f.reader.Events(ctx, []string{ev.EventID()}, false)
		if err != nil {
			return false, err
		}
		if len(stored) == 1 && !stored[0].Outlier {
			return true, nil
		}
		if resp.Stored == 0 {
			return false, nil
		}
	}
	return false, nil
}

// shallowestExtremities are the room's backward extremities, shallowest
// (oldest) first, at most timestampBackfillFrom: deeper ones are gaps in
// the middle of the history.
func (f *Federation) shallowestExtremities(ctx context.Context, roomID string) ([]roomserver.StoredPDU, error) {
	ids, err := f.reader.BackwardExtremities(ctx, roomID)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	evs, err := f.reader.Events(ctx, ids, false)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b roomserver.StoredPDU) int { return cmp.Compare(a.Depth, b.Depth) })
	return evs[:min(len(evs), timestampBackfillFrom)], nil
}

// storeOutlier stores ev as an outlier, after the events of its auth
// chain not stored yet (asked of server with /event_auth).
func (f *Federation) storeOutlier(ctx context.Context, server, version, roomID string, ev gomatrixserverlib.PDU) error {
	chain, err := f.client.GetEventAuth(ctx, spec.ServerName(f.serverName), spec.ServerName(server),
		gomatrixserverlib.RoomVersion(version), roomID, ev.EventID())
	if err != nil {
		return fmt.Errorf("auth chain of %s from %s: %w", ev.EventID(), server, remoteErr(server, err))
	}
	authEvs := f.verifyPDUs(ctx, roomID, version, asBytes(chain.AuthEvents))
	ids := make([]string, len(authEvs))
	for i, a := range authEvs {
		ids[i] = a.EventID()
	}
	have, err := f.storedIDs(ctx, ids)
	if err != nil {
		return err
	}
	evs := []gomatrixserverlib.PDU{ev}
	for _, a := range authEvs {
		if !have[a.EventID()] {
			evs = append(evs, a)
			have[a.EventID()] = true // once
		}
	}
	res, err := f.inputEvents(ctx, roomID, roomserver.InputKindOutlier, server, authOrder(evs))
	if err != nil {
		return err
	}
	for _, r := range res.Results {
		if r.EventID != ev.EventID() {
			continue
		}
		if r.Status != roomserver.InputAccepted && r.Status != roomserver.InputDuplicate {
			return fmt.Errorf("%s was not stored: %s %s %v", ev.EventID(), r.Status, r.Reason, r.Missing)
		}
		return nil
	}
	return fmt.Errorf("%s was not stored", ev.EventID())
}
