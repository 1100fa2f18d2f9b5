package syncapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Receipt types. m.fully_read is not a receipt but a marker, kept as room
// account data: clients read it there.
const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	markerFullyRead    = "m.fully_read"
	threadMain         = "main"
)

// receiptRow is one stored receipt; ThreadID is "" when unthreaded.
type receiptRow struct {
	RoomID, Type, UserID, ThreadID, EventID string
	TS, Pos                                 int64
}

// postReceipt serves POST /rooms/{roomId}/receipt/{receiptType}/{eventId}.
func (s *SyncAPI) postReceipt(req *httputil.Request) (any, error) {
	roomID, eventID, typ := req.PathValue("roomId"), req.PathValue("eventId"), req.PathValue("receiptType")
	if !mxid.RoomID(roomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	switch typ {
	case receiptRead, receiptReadPrivate, markerFullyRead:
	default:
		return nil, mxerr.InvalidParam("receipt type must be m.read, m.read.private or m.fully_read, not %q", typ)
	}
	if !mxid.EventID(eventID) {
		return nil, mxerr.InvalidParam("%q is not an event ID", eventID)
	}
	body, err := readOptionalObject(req, 4<<10)
	if err != nil {
		return nil, err
	}
	var opts struct {
		ThreadID *json.RawMessage `json:"thread_id"`
	}
	if err := json.Unmarshal(body, &opts); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	threadID := ""
	if opts.ThreadID != nil {
		if err := json.Unmarshal(*opts.ThreadID, &threadID); err != nil || threadID == "" {
			return nil, mxerr.InvalidParam("thread_id must be a non-empty string")
		}
		if typ == markerFullyRead {
			return nil, mxerr.InvalidParam("thread_id is not allowed for m.fully_read")
		}
		if threadID != threadMain && !mxid.EventID(threadID) {
			return nil, mxerr.InvalidParam("thread_id must be main or an event ID")
		}
	}
	ctx := req.Context()
	userID := req.Device.UserID
	if err := s.checkJoined(ctx, roomID, userID); err != nil {
		return nil, err
	}
	ev, pos, err := s.roomEventPos(ctx, roomID, userID, eventID)
	if err != nil {
		return nil, err
	}
	if threadID != "" && threadID != threadMain && ev.EventID != threadID && threadOf(ev) != threadID {
		return nil, mxerr.InvalidParam("event %s is not in thread %s", eventID, threadID)
	}
	if err := s.storeMarkerAt(ctx, roomID, userID, typ, threadID, eventID, pos); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// postReadMarkers serves POST /rooms/{roomId}/read_markers. Every given
// event is checked before anything is stored.
func (s *SyncAPI) postReadMarkers(req *httputil.Request) (any, error) {
	roomID := req.PathValue("roomId")
	if !mxid.RoomID(roomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	body, err := readOptionalObject(req, 4<<10)
	if err != nil {
		return nil, err
	}
	var markers map[string]json.RawMessage
	if err := json.Unmarshal(body, &markers); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	ctx := req.Context()
	userID := req.Device.UserID
	if err := s.checkJoined(ctx, roomID, userID); err != nil {
		return nil, err
	}
	type marker struct {
		eventID string
		pos     int64
	}
	todo := map[string]marker{}
	for _, typ := range []string{markerFullyRead, receiptRead, receiptReadPrivate} {
		raw, ok := markers[typ]
		if !ok || string(raw) == "null" {
			continue
		}
		var eventID string
		if err := json.Unmarshal(raw, &eventID); err != nil || !mxid.EventID(eventID) {
			return nil, mxerr.BadJSON("%s must be an event ID", typ)
		}
		_, pos, err := s.roomEventPos(ctx, roomID, userID, eventID)
		if err != nil {
			return nil, err
		}
		todo[typ] = marker{eventID, pos}
	}
	for typ, m := range todo {
		if err := s.storeMarkerAt(ctx, roomID, userID, typ, "", m.eventID, m.pos); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

// storeMarker is storeMarkerAt for a caller that has not read the event
// (a receipt from another server): its position is looked up first. An
// event that cannot be read here has none, and its receipt only counts
// when the user has none of that type and thread yet.
func (s *SyncAPI) storeMarker(ctx context.Context, roomID, userID, typ, threadID, eventID string) error {
	var pos int64
	if typ != markerFullyRead {
		_, p, err := s.roomEventPos(ctx, roomID, userID, eventID)
		if _, isMatrix := mxerr.As(err); err != nil && !isMatrix {
			return err
		}
		pos = p
	}
	return s.storeMarkerAt(ctx, roomID, userID, typ, threadID, eventID, pos)
}

// storeMarkerAt stores a receipt, or the m.fully_read marker as room
// account data, and wakes the syncs concerned. eventPos is the event's
// stream position: a receipt for an event older than the one the user's
// receipt of that type and thread names is ignored (receipts never move
// back).
func (s *SyncAPI) storeMarkerAt(ctx context.Context, roomID, userID, typ, threadID, eventID string, eventPos int64) error {
	if typ == markerFullyRead {
		content, _ := json.Marshal(map[string]string{"event_id": eventID})
		return s.updateAccountData(ctx, userID, roomID, markerFullyRead, func([]byte) ([]byte, error) { return content, nil })
	}
	// Before the receipt is published: the syncs it wakes read the counts.
	if err := s.markReadReceipt(ctx, roomID, userID, typ, threadID, eventPos); err != nil {
		return err
	}
	var pos int64
	moved := true
	err := s.store.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var err error
		if pos, err = nextPos(ctx, tx); err != nil {
			return err
		}
		var stored int64
		err = tx.QueryRowContext(ctx, `INSERT INTO sy_receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, pos, event_pos)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (room_id, receipt_type, user_id, thread_id)
			DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, pos = excluded.pos, event_pos = excluded.event_pos
			WHERE excluded.event_pos > sy_receipts.event_pos
			RETURNING pos`,
			roomID, typ, userID, threadID, eventID, time.Now().UnixMilli(), pos, eventPos).Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			moved = false // an older (or the same) event: nothing changes
			return nil
		case err != nil:
			return fmt.Errorf("store receipt: %w", err)
		}
		return nil
	})
	if err != nil || !moved {
		return err
	}
	s.publish(ctx, &OutputMessage{Kind: kindReceipt, Pos: pos, UserID: userID, RoomID: roomID, Private: typ == receiptReadPrivate})
	return nil
}

// checkJoined is M_FORBIDDEN unless userID is joined to roomID now.
func (s *SyncAPI) checkJoined(ctx context.Context, roomID, userID string) error {
	now, err := s.reader.MaxPos(ctx)
	if err != nil {
		return err
	}
	m, err := s.reader.MembershipAt(ctx, roomID, userID, now)
	if err != nil {
		return err
	}
	if m != roomserver.MembershipJoin {
		return mxerr.Forbidden("%s is not joined to %s", userID, roomID)
	}
	return nil
}

// roomEventPos is roomEvent with the event's stream position, which a
// receipt needs to be ordered against the one it replaces.
func (s *SyncAPI) roomEventPos(ctx context.Context, roomID, userID, eventID string) (*roomserver.ClientEvent, int64, error) {
	resp, err := roomserver.QueryEvent.Call(ctx, s.bus, &roomserver.QueryEventRequest{UserID: userID, RoomID: roomID, EventID: eventID})
	if err != nil {
		return nil, 0, err
	}
	return &resp.Event, resp.Pos, nil
}

// roomEvent asks the roomserver for an event of the room the user may see;
// M_NOT_FOUND when there is none.
func (s *SyncAPI) roomEvent(ctx context.Context, roomID, userID, eventID string) (*roomserver.ClientEvent, error) {
	ev, _, err := s.roomEventPos(ctx, roomID, userID, eventID)
	return ev, err
}

// threadOf is the thread root an event belongs to ("" for none).
func threadOf(ev *roomserver.ClientEvent) string {
	var c struct {
		RelatesTo struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(ev.Content, &c) != nil || c.RelatesTo.RelType != "m.thread" {
		return ""
	}
	return c.RelatesTo.EventID
}

// readOptionalObject is readObject where an empty body counts as {}: some
// clients send none for receipts.
func readOptionalObject(req *httputil.Request, limit int64) ([]byte, error) {
	if req.ContentLength == 0 {
		return []byte("{}"), nil
	}
	return readObject(req, limit)
}

// receiptsOfRoom lists roomID's receipts up to position to.
func (st *store) receiptsOfRoom(ctx context.Context, roomID string, to int64) ([]receiptRow, error) {
	return st.receipts(ctx, `WHERE room_id = $1 AND pos <= $2`, roomID, to)
}

// receiptChanges lists the receipts of every room written with
// from < pos <= to.
func (st *store) receiptChanges(ctx context.Context, from, to int64) ([]receiptRow, error) {
	return st.receipts(ctx, `WHERE pos > $1 AND pos <= $2`, from, to)
}

func (st *store) receipts(ctx context.Context, where string, args ...any) ([]receiptRow, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, pos
		FROM sy_receipts `+where+` ORDER BY pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("read receipts: %w", err)
	}
	defer rows.Close()
	var out []receiptRow
	for rows.Next() {
		var r receiptRow
		if err := rows.Scan(&r.RoomID, &r.Type, &r.UserID, &r.ThreadID, &r.EventID, &r.TS, &r.Pos); err != nil {
			return nil, fmt.Errorf("read receipts: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read receipts: %w", err)
	}
	return out, nil
}

// receiptEvent builds the m.receipt event of a room from its receipts, as
// viewer may see them: others' private receipts are left out. nil when
// nothing is left.
func receiptEvent(rows []receiptRow, viewer string) json.RawMessage {
	type receipt struct {
		TS       int64  `json:"ts"`
		ThreadID string `json:"thread_id,omitempty"`
	}
	content := map[string]map[string]map[string]receipt{} // event → type → user
	for _, r := range rows {
		if r.Type == receiptReadPrivate && r.UserID != viewer {
			continue
		}
		if content[r.EventID] == nil {
			content[r.EventID] = map[string]map[string]receipt{}
		}
		if content[r.EventID][r.Type] == nil {
			content[r.EventID][r.Type] = map[string]receipt{}
		}
		content[r.EventID][r.Type][r.UserID] = receipt{TS: r.TS, ThreadID: r.ThreadID}
	}
	if len(content) == 0 {
		return nil
	}
	out, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
	return out
}
