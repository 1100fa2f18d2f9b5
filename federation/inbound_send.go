package federation

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Limits of one transaction (spec: at most 50 PDUs and 100 EDUs).
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
	// txnMemory is how long a transaction's answer is kept for a retry.
	txnMemory = 24 * time.Hour
)

type transaction struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []edu             `json:"edus"`
}

type edu struct {
	Type    string          `json:"edu_type"`
	Content json.RawMessage `json:"content"`
}

// pduResult is one entry of the answer's pdus map: {} or {"error": ...}.
type pduResult struct {
	Error string `json:"error,omitempty"`
}

type sendResponse struct {
	PDUs map[string]pduResult `json:"pdus"`
}

// onSend serves PUT /send/{txnID}. A transaction is processed once per
// (origin, txnID): a retry gets the stored answer.
func (f *Federation) onSend(r *InboundRequest) (any, error) {
	txnID := r.HTTP.PathValue("txnID")
	var txn transaction
	if err := json.Unmarshal(r.Body, &txn); err != nil {
		return nil, mxerr.BadJSON("transaction: %v", err)
	}
	if txn.Origin != "" && txn.Origin != r.Origin {
		return nil, mxerr.Forbidden("transaction origin %q is not the sending server %q", txn.Origin, r.Origin)
	}
	if len(txn.PDUs) > maxTxnPDUs || len(txn.EDUs) > maxTxnEDUs {
		return nil, mxerr.BadJSON("a transaction has at most %d PDUs and %d EDUs", maxTxnPDUs, maxTxnEDUs)
	}
	lock := f.inbound.originLock(r.Origin)
	lock.Lock()
	defer lock.Unlock()
	ctx := r.HTTP.Context()
	if prev, err := f.storedTxn(ctx, r.Origin, txnID); err != nil || prev != nil {
		return prev, err
	}
	resp := &sendResponse{PDUs: f.processPDUs(ctx, r.Origin, txn.PDUs)}
	for _, e := range txn.EDUs {
		if err := f.processEDU(ctx, r.Origin, e); err != nil {
			// EDUs are not answered one by one: a bad one is dropped.
			f.log.Warn("dropped an EDU", "origin", r.Origin, "type", e.Type, "err", err)
		}
	}
	if err := f.storeTxn(ctx, r.Origin, txnID, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// storedTxn is the answer already given to (origin, txnID), or nil.
func (f *Federation) storedTxn(ctx context.Context, origin, txnID string) (json.RawMessage, error) {
	var resp string
	err := f.db.QueryRowContext(ctx, `SELECT response FROM fs_inbound_txns WHERE origin = $1 AND txn_id = $2`, origin, txnID).Scan(&resp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read transaction %s of %s: %w", txnID, origin, err)
	}
	return json.RawMessage(resp), nil
}

// storeTxn records an answer and forgets those past txnMemory.
func (f *Federation) storeTxn(ctx context.Context, origin, txnID string, resp *sendResponse) error {
	data, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode transaction answer: %w", err)
	}
	now := time.Now()
	if _, err := f.db.ExecContext(ctx, `INSERT INTO fs_inbound_txns (origin, txn_id, response, created_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (origin, txn_id) DO NOTHING`, origin, txnID, string(data), now.UnixMilli()); err != nil {
		return fmt.Errorf("record transaction %s of %s: %w", txnID, origin, err)
	}
	if _, err := f.db.ExecContext(ctx, `DELETE FROM fs_inbound_txns WHERE created_ms < $1`, now.Add(-txnMemory).UnixMilli()); err != nil {
		f.log.Warn("forget old transactions", "err", err)
	}
	return nil
}

// roomPDUs are the verified PDUs of one room in a transaction.
type roomPDUs struct {
	version string
	events  []gomatrixserverlib.PDU
}

// processPDUs checks each PDU and gives each room's to the roomserver;
// a PDU that fails gets its error in the answer, never the transaction.
// The checks (hashes, signatures) of a transaction's PDUs run on every
// core; each room's events keep the transaction's order.
func (f *Federation) processPDUs(ctx context.Context, origin string, raws []json.RawMessage) map[string]pduResult {
	results := make(map[string]pduResult, len(raws))
	rooms := map[string]*roomPDUs{}
	var order []string
	pduRoom := make([]string, len(raws)) // "" for a PDU dropped before its checks
	for i, raw := range raws {
		var head struct {
			RoomID string `json:"room_id"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.RoomID == "" {
			f.log.Warn("dropped a PDU without room_id", "origin", origin)
			continue
		}
		if _, ok := rooms[head.RoomID]; !ok {
			room, err := f.roomForPDUs(ctx, head.RoomID, origin)
			if err != nil {
				// No event ID without the room version: the PDU is dropped.
				f.log.Warn("dropped a PDU", "origin", origin, "room", head.RoomID, "err", err)
				continue
			}
			rooms[head.RoomID] = room
			order = append(order, head.RoomID)
		}
		pduRoom[i] = head.RoomID
	}
	evs := make([]gomatrixserverlib.PDU, len(raws))
	errs := make([]error, len(raws))
	onEveryCore(len(raws), func(i int) {
		if pduRoom[i] != "" {
			evs[i], errs[i] = f.verifyPDU(ctx, rooms[pduRoom[i]].version, raws[i])
			if evs[i] != nil {
				evs[i].EventID() // the hash, here on every core too
			}
		}
	})
	for i, ev := range evs {
		if errs[i] != nil {
			f.log.Warn("dropped a PDU", "origin", origin, "room", pduRoom[i], "err", errs[i])
			if ev != nil {
				results[ev.EventID()] = pduResult{Error: errs[i].Error()}
			}
			continue
		}
		if ev != nil {
			rooms[pduRoom[i]].events = append(rooms[pduRoom[i]].events, ev)
		}
	}
	for _, roomID := range order {
		room := rooms[roomID]
		for id, res := range f.processRoomPDUs(ctx, origin, roomID, room) {
			results[id] = res
		}
	}
	return results
}

// roomForPDUs is the version of a room this server knows and that origin
// may send to (its ACL).
func (f *Federation) roomForPDUs(ctx context.Context, roomID, origin string) (*roomPDUs, error) {
	version, ok, err := f.reader.RoomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("room %s is unknown here", roomID)
	}
	if err := f.checkServerACL(ctx, roomID, origin); err != nil {
		return nil, err
	}
	return &roomPDUs{version: version}, nil
}

// processRoomPDUs inputs one room's events, oldest first, filling the gaps
// before those whose prev_events or auth_events are not stored.
func (f *Federation) processRoomPDUs(ctx context.Context, origin, roomID string, room *roomPDUs) map[string]pduResult {
	results := make(map[string]pduResult, len(room.events))
	byDepth(room.events)
	resp, err := f.inputEvents(ctx, roomID, roomserver.InputKindNew, origin, room.events)
	if err != nil {
		for _, ev := range room.events {
			results[ev.EventID()] = pduResult{Error: err.Error()}
		}
		return results
	}
	filled := false             // a gap was filled: later missing events may now fit
	failed := map[string]bool{} // events whose gap could not be filled
	for i, res := range resp.Results {
		ev := room.events[i]
		if res.Status == roomserver.InputMissing {
			if onlyAmong(res.Missing, failed) {
				// Its parents are this transaction's failures: same fate.
				failed[ev.EventID()] = true
				results[ev.EventID()] = pduResult{Error: "missing prev events: their own were missing"}
				continue
			}
			r, err := f.fillGap(ctx, origin, roomID, room.version, ev, filled)
			if err != nil {
				f.log.Warn("could not fill a gap", "origin", origin, "room", roomID, "event", ev.EventID(), "err", err)
				failed[ev.EventID()] = true
				results[ev.EventID()] = pduResult{Error: "missing prev or auth events: " + err.Error()}
				continue
			}
			res, filled = *r, true
		}
		results[ev.EventID()] = resultOf(res)
	}
	return results
}

// onlyAmong says whether ids is not empty and all in set.
func onlyAmong(ids []string, set map[string]bool) bool {
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return len(ids) > 0
}

// resultOf turns the roomserver's verdict into the answer's entry: soft
// failed events were accepted (stored), rejected ones get their reason.
func resultOf(r roomserver.InputResult) pduResult {
	switch r.Status {
	case roomserver.InputAccepted, roomserver.InputDuplicate, roomserver.InputSoftFailed:
		return pduResult{}
	case roomserver.InputRejected:
		return pduResult{Error: "rejected: " + r.Reason}
	default:
		return pduResult{Error: fmt.Sprintf("%s: %s", r.Status, r.Reason)}
	}
}
