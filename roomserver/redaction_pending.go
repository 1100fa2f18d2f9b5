package roomserver

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Redactions that arrive before the event they redact. From room version
// 3 the auth rules accept a redaction whatever its target ("Handling
// redactions" in the room versions' spec), and over federation a
// redaction may come before its target, which comes later by backfill,
// gap filling, as an outlier or in a joined room's state. Such a
// redaction is stored and shown as any other, and a row of
// rs_redactions_pending remembers it until its target is stored, by any
// of those paths: in that transaction the redaction applies as it would
// have to a stored target (redactionTarget): the target is marked
// redacted, its relation and search text dropped, its parsed copy
// forgotten.
//
// It applies when the redaction's sender has the redact power level in
// the state before the redaction, or when both events' senders are of
// one server. The state before the redaction is at hand only when the
// redaction is accepted, so that half of the answer is recorded then
// (any_sender); the other half waits for the target's sender. A target
// that is rejected, in another room, or that the redaction may not
// redact drops the row: the answer will not change.

// mayRedactAny tells whether a redaction may redact events of any sender:
// its sender has the redact level in the state before it. In room
// versions 1 and 2 the auth rules checked that, or that the target's ID
// is of the sender's server, before accepting the redaction: an accepted
// one may redact its target.
func (j *inputJob) mayRedactAny(ctx context.Context, ev gomatrixserverlib.PDU, before *stateView) (bool, error) {
	switch j.h.version.Version() {
	case gomatrixserverlib.RoomVersionV1, gomatrixserverlib.RoomVersionV2:
		return true, nil
	}
	create, pl, err := j.stateEvents(ctx, before, stateKey{spec.MRoomCreate, ""}, stateKey{spec.MRoomPowerLevels, ""})
	if err != nil {
		return false, err
	}
	level, content, err := levelIn(j.h.version, create, pl, string(ev.SenderID()))
	// Power levels the library cannot read grant nothing.
	return err == nil && level >= content.Redact, nil
}

// sameServer tells whether two user IDs are of one server.
func sameServer(a, b string) bool { return domainOf(a) == domainOf(b) }

// pendingRooms are the rooms that may have rows in rs_redactions_pending:
// a request of any other room has no redaction waiting for its events,
// and skips the query that looks for them. It holds every room with rows
// when the roomserver starts, and each room a redaction is recorded in
// after (a superset if the transaction rolls back); a room leaves it once
// the request that applies its last pending redactions has committed.
// One roomserver process serves a database (architecture.md), so no
// other process adds rows behind it.
type pendingRooms struct {
	mu    sync.Mutex
	rooms map[int64]bool
}

func loadPendingRooms(ctx context.Context, q sqlutil.Querier) (*pendingRooms, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT room_nid FROM rs_redactions_pending`)
	if err != nil {
		return nil, fmt.Errorf("read rooms with pending redactions: %w", err)
	}
	defer rows.Close()
	p := &pendingRooms{rooms: map[int64]bool{}}
	for rows.Next() {
		var nid int64
		if err := rows.Scan(&nid); err != nil {
			return nil, fmt.Errorf("scan room with pending redactions: %w", err)
		}
		p.rooms[nid] = true
	}
	return p, rows.Err()
}

func (p *pendingRooms) add(roomNID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rooms[roomNID] = true
}

func (p *pendingRooms) has(roomNID int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rooms[roomNID]
}

func (p *pendingRooms) drop(roomNID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.rooms, roomNID)
}

// recordPendingRedaction remembers a redaction (stored as redactionNID)
// of an event not stored yet, and that the room has one.
func (j *inputJob) recordPendingRedaction(ctx context.Context, redactionNID int64, targetID string, anySender bool) error {
	j.rs.fed.pendingRedactions.add(j.h.nid)
	return recordPendingRedaction(ctx, j.tx, j.h.nid, redactionNID, targetID, anySender)
}

// recordPendingRedaction remembers a redaction (stored as redactionNID)
// of an event not stored yet.
func recordPendingRedaction(ctx context.Context, tx *sqlutil.Tx, roomNID, redactionNID int64, targetID string, anySender bool) error {
	if redactionNID == 0 {
		return fmt.Errorf("redaction of %s recorded before its own row", targetID)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO rs_redactions_pending (redaction_nid, room_nid, target_id, any_sender)
		VALUES ($1, $2, $3, $4) ON CONFLICT (redaction_nid) DO NOTHING`, redactionNID, roomNID, targetID, anySender)
	if err != nil {
		return fmt.Errorf("record redaction of %s: %w", targetID, err)
	}
	return nil
}

// redactedEvent is an event a pending redaction was applied to.
type redactedEvent struct {
	nid int64
	id  string
}

// pendingRedaction is a row of rs_redactions_pending whose target is
// stored, with what deciding needs of both events.
type pendingRedaction struct {
	redactionNID   int64
	targetID       string
	anySender      bool
	sender         string // the redaction's
	targetNID      int64
	targetRoomNID  int64
	targetSender   string
	targetRejected bool
}

// allows tells whether the redaction applies to its (stored) target.
func (p *pendingRedaction) allows(roomNID int64) bool {
	if p.targetRejected || p.targetRoomNID != roomNID {
		return false
	}
	return p.anySender || sameServer(p.sender, p.targetSender)
}

const pendingRedactionSelect = `SELECT p.redaction_nid, p.target_id, p.any_sender, r.sender, t.event_nid, t.room_nid, t.sender, t.rejected
	FROM rs_redactions_pending p
	JOIN rs_events r ON r.event_nid = p.redaction_nid
	JOIN rs_events t ON t.event_id = p.target_id
	WHERE p.room_nid = $1`

// applyPendingRedactions applies the room's pending redactions whose
// target is stored now, among ids (nil: the whole room's, one query, for
// a join's thousands of state events), and drops their rows. The first
// redaction stored wins when several may apply.
func applyPendingRedactions(ctx context.Context, tx *sqlutil.Tx, roomNID int64, ids []string) ([]redactedEvent, error) {
	var found []*pendingRedaction
	read := func(query string, args []any) error {
		rows, err := tx.QueryContext(ctx, query+` ORDER BY p.redaction_nid`, args...)
		if err != nil {
			return fmt.Errorf("read pending redactions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			p := &pendingRedaction{}
			if err := rows.Scan(&p.redactionNID, &p.targetID, &p.anySender, &p.sender, &p.targetNID, &p.targetRoomNID,
				&p.targetSender, &p.targetRejected); err != nil {
				return fmt.Errorf("scan pending redaction: %w", err)
			}
			found = append(found, p)
		}
		return rows.Err()
	}
	var err error
	if ids == nil {
		err = read(pendingRedactionSelect, []any{roomNID})
	} else {
		err = inChunks(ids, 2, "", func(list string, args []any) error {
			return read(pendingRedactionSelect+` AND p.target_id IN (`+list+`)`, append([]any{roomNID}, args...))
		})
	}
	if err != nil || len(found) == 0 {
		return nil, err
	}
	var (
		out     []redactedEvent
		targets []string
	)
	for _, p := range found {
		if !slices.Contains(targets, p.targetID) {
			targets = append(targets, p.targetID)
		}
		if !p.allows(roomNID) || slices.ContainsFunc(out, func(r redactedEvent) bool { return r.id == p.targetID }) {
			continue
		}
		if err := markRedacted(ctx, tx, p.redactionNID, p.targetNID); err != nil {
			return nil, err
		}
		if err := unindexRedacted(ctx, tx, p.targetNID); err != nil {
			return nil, err
		}
		out = append(out, redactedEvent{nid: p.targetNID, id: p.targetID})
	}
	for _, id := range targets {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rs_redactions_pending WHERE room_nid = $1 AND target_id = $2`, roomNID, id); err != nil {
			return nil, fmt.Errorf("drop pending redactions of %s: %w", id, err)
		}
	}
	return out, nil
}

// unindexRedacted drops a redacted event's relation and search text (what
// commitExtras and indexSearch do for a redaction committed with them).
func unindexRedacted(ctx context.Context, tx *sqlutil.Tx, nid int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM rs_relations WHERE event_nid = $1`, nid); err != nil {
		return fmt.Errorf("unindex redacted relation: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rs_search WHERE event_nid = $1`, nid); err != nil {
		return fmt.Errorf("unindex redacted event: %w", err)
	}
	return nil
}

// applyPendingRedactions applies, once the request's events are stored
// and indexed (finish), the redactions that waited for them. A target
// published by this request goes out redacted, so that consumers of the
// output (pushes, application services) never see its content. Nothing
// is read for a room without pending redactions (pendingRooms).
func (j *inputJob) applyPendingRedactions(ctx context.Context, items []*inputItem) error {
	if !j.rs.fed.pendingRedactions.has(j.h.nid) {
		return nil
	}
	var ids []string
	for _, it := range items {
		if it.pdu != nil && it.result.Status != InputDuplicate && it.result.Status != InputMissing {
			ids = append(ids, it.pdu.EventID())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	applied, err := applyPendingRedactions(ctx, j.tx, j.h.nid, ids)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		// Those may have been the room's last. (Rows dropped without
		// applying keep the room in the set: a query per request, as
		// before, until the next start.)
		var left bool
		err := j.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM rs_redactions_pending WHERE room_nid = $1)`, j.h.nid).Scan(&left)
		if err != nil {
			return fmt.Errorf("look for pending redactions left: %w", err)
		}
		j.noPendingLeft = !left
	}
	for _, r := range applied {
		j.redacted = append(j.redacted, r.nid) // dropped from the cache once committed
		delete(j.pdus.own, r.nid)
		for i := range j.outs {
			if j.outs[i].EventID != r.id {
				continue
			}
			data, err := j.h.version.RedactEventJSON(j.outs[i].Event)
			if err != nil {
				return fmt.Errorf("redact %s for the output: %w", r.id, err)
			}
			j.outs[i].Event = data
		}
	}
	return nil
}

// forgetRedacted drops events redacted by a transaction that committed
// from the parsed-event cache, which may hold their unredacted copy.
func (rs *Roomserver) forgetRedacted(events []redactedEvent) {
	for _, r := range events {
		rs.events.remove(r.nid)
	}
}
