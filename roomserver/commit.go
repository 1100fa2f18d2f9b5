package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// commitRequest is a batch of one room's events to store in one
// transaction.
type commitRequest struct {
	head        *roomHead
	events      []*pendingEvent
	extremities []string
	depth       int64
	// For a room being created: its row and alias are inserted first.
	newRoom bool
	alias   *aliasRow
	publish bool // list the new room in the public directory
}

type aliasRow struct{ alias, creator string }

// errRoomIDTaken: a new room's ID is already a room's.
var errRoomIDTaken = errors.New("room ID already in use")

// commit stores a batch and publishes its events.
//
// Stream positions must become visible in order: a reader that sees
// position N must already see every position below N. Positions are
// therefore assigned and committed under one process-wide mutex, so
// transactions commit in position order. This holds for one roomserver
// process per database; several instances would need a shared sequencer
// (for example a PostgreSQL advisory lock around the same steps, or
// positions taken from a JetStream sequence) before they could split the
// rooms between them.
func (rs *Roomserver) commit(ctx context.Context, c *commitRequest) error {
	if len(c.events) == 0 {
		return nil
	}
	started := time.Now()
	rs.commitMu.Lock()
	defer rs.commitMu.Unlock()
	h := c.head
	pos := rs.lastPos
	snapshot, chainLen := h.snapshot, h.chainLen
	err := rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if c.newRoom {
			if err := insertRoom(ctx, tx, h, c.alias); err != nil {
				return err
			}
		}
		for _, p := range c.events {
			pos++
			p.pos = pos
			p.snapshotBefore = snapshot
			if err := insertEvent(ctx, tx, h.nid, p); err != nil {
				return err
			}
			if p.key != nil {
				var err error
				// The head's state is updated in place; if the transaction
				// fails the head is dropped and reloaded.
				h.state[*p.key] = p.nid
				snapshot, chainLen, err = appendSnapshot(ctx, tx, h, snapshot, chainLen, p)
				if err != nil {
					return err
				}
			}
			p.snapshotAfter = snapshot
			if err := applySideEffects(ctx, tx, h.nid, p); err != nil {
				return err
			}
		}
		if err := commitExtras(ctx, tx, c); err != nil { // commit_extras.go
			return err
		}
		if err := indexSearch(ctx, tx, c); err != nil { // search_index.go
			return err
		}
		return updateRoomHead(ctx, tx, h.nid, snapshot, chainLen, c.extremities, c.depth)
	})
	if err != nil {
		rs.heads.remove(h.id)
		return err
	}
	rs.lastPos = pos
	h.snapshot, h.chainLen = snapshot, chainLen
	h.extremities, h.depth = c.extremities, c.depth
	outs := make([]OutputEvent, 0, len(c.events))
	for _, p := range c.events {
		if p.key != nil {
			rs.events.put(p.nid, p.pdu)
		}
		if !p.redacts.isZero() {
			rs.events.remove(p.redacts.resolve())
		}
		if p.txnID != "" {
			rs.txns.put(txnKey{string(p.pdu.SenderID()), p.deviceID, p.txnID}, p.pdu.EventID())
		}
		outs = append(outs, outputOf(h, p))
	}
	rs.publisher.enqueue(outs)
	rs.metrics.observeCommit(len(c.events), time.Since(started))
	return nil
}

// appendSnapshot writes the state after p: a one-entry delta on the
// previous snapshot, or the full state when the delta chain is long.
func appendSnapshot(ctx context.Context, tx *sqlutil.Tx, h *roomHead, parent int64, parentChain int, p *pendingEvent) (int64, int, error) {
	var (
		entries  []snapshotEntry
		chainLen int
	)
	if parent == 0 || parentChain+1 >= fullSnapshotEvery {
		entries, chainLen, parent = fullEntries(h.state), 0, 0
	} else {
		entries = []snapshotEntry{{T: p.key.Type, K: p.key.StateKey, E: p.nid}}
		chainLen = parentChain + 1
	}
	nid, err := insertSnapshot(ctx, tx, h.nid, parent, chainLen, entries)
	if err != nil {
		return 0, 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rs_events SET snapshot_nid = $1, room_snapshot_nid = $1 WHERE event_nid = $2`, nid, p.nid); err != nil {
		return 0, 0, fmt.Errorf("link event %s to its state: %w", p.pdu.EventID(), err)
	}
	return nid, chainLen, nil
}

func insertRoom(ctx context.Context, tx *sqlutil.Tx, h *roomHead, alias *aliasRow) error {
	err := tx.QueryRowContext(ctx, `INSERT INTO rs_rooms (room_id, version) VALUES ($1, $2) RETURNING room_nid`,
		h.id, string(h.version.Version())).Scan(&h.nid)
	if sqlutil.IsUniqueViolation(err) {
		return fmt.Errorf("insert room %s: %w", h.id, errRoomIDTaken)
	}
	if err != nil {
		return fmt.Errorf("insert room %s: %w", h.id, err)
	}
	if alias == nil {
		return nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO rs_aliases (alias, room_id, creator) VALUES ($1, $2, $3)`,
		alias.alias, h.id, alias.creator)
	if sqlutil.IsUniqueViolation(err) {
		return errRoomInUse(alias.alias)
	}
	if err != nil {
		return fmt.Errorf("insert alias %s: %w", alias.alias, err)
	}
	return nil
}

func insertEvent(ctx context.Context, tx *sqlutil.Tx, roomNID int64, p *pendingEvent) error {
	ev := p.pdu
	var membership *string
	if p.membership != "" {
		membership = &p.membership
	}
	// A local event extends the room's current state: its state in DAG
	// terms and the room's are the same.
	err := tx.QueryRowContext(ctx, `INSERT INTO rs_events (event_id, room_nid, type, state_key, sender, membership,
		stream_pos, depth, origin_server_ts, json, sender_device_id, txn_id, replaces_nid, snapshot_before_nid, snapshot_nid,
		room_snapshot_before_nid, room_snapshot_nid)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14, $14) RETURNING event_nid`,
		ev.EventID(), roomNID, ev.Type(), ev.StateKey(), string(ev.SenderID()), membership,
		p.pos, ev.Depth(), int64(ev.OriginServerTS()), ev.JSON(), p.deviceID, p.txnID,
		p.replaces.resolve(), p.snapshotBefore).Scan(&p.nid)
	if err != nil {
		return fmt.Errorf("insert event %s: %w", ev.EventID(), err)
	}
	return insertEdges(ctx, tx, p.nid, ev.PrevEventIDs())
}

// insertEdges records an event's prev_events (rs_event_edges).
func insertEdges(ctx context.Context, tx *sqlutil.Tx, nid int64, prevIDs []string) error {
	for _, id := range prevIDs {
		_, err := tx.ExecContext(ctx, `INSERT INTO rs_event_edges (event_nid, prev_event_id) VALUES ($1, $2)
			ON CONFLICT (event_nid, prev_event_id) DO NOTHING`, nid, id)
		if err != nil {
			return fmt.Errorf("record prev event %s: %w", id, err)
		}
	}
	return nil
}

// applySideEffects updates what an event changes besides the event table:
// the membership table, a redacted event, the sender's transaction.
func applySideEffects(ctx context.Context, tx *sqlutil.Tx, roomNID int64, p *pendingEvent) error {
	ev := p.pdu
	if p.membership != "" && ev.Type() == spec.MRoomMember {
		if err := upsertMembership(ctx, tx, roomNID, p.key.StateKey, p.membership, p.nid, p.pos); err != nil {
			return err
		}
	}
	if err := applyRedaction(ctx, tx, p); err != nil {
		return err
	}
	if p.txnID != "" {
		_, err := tx.ExecContext(ctx, `INSERT INTO rs_txns (sender, device_id, txn_id, event_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (sender, device_id, txn_id) DO NOTHING`,
			string(ev.SenderID()), p.deviceID, p.txnID, ev.EventID())
		if err != nil {
			return fmt.Errorf("record transaction %s: %w", p.txnID, err)
		}
	}
	return nil
}

// applyRedaction marks the event p redacts (if any) as redacted by it.
func applyRedaction(ctx context.Context, tx *sqlutil.Tx, p *pendingEvent) error {
	if p.redacts.isZero() {
		return nil
	}
	return markRedacted(ctx, tx, p.nid, p.redacts.resolve())
}

// markRedacted marks the event target as redacted by the event by: readers
// then serve it redacted, with by as its redacted_because.
func markRedacted(ctx context.Context, tx *sqlutil.Tx, by, target int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE rs_events SET redacted = TRUE, redacted_by_nid = $1 WHERE event_nid = $2`, by, target)
	if err != nil {
		return fmt.Errorf("redact event: %w", err)
	}
	return nil
}

// upsertMembership sets userID's current membership in the room.
func upsertMembership(ctx context.Context, tx *sqlutil.Tx, roomNID int64, userID, membership string, nid, pos int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO rs_membership (room_nid, user_id, membership, event_nid, stream_pos, joined_since)
		VALUES ($1, $2, $3, $4, $5, $6)
		`+membershipUpsert,
		roomNID, userID, membership, nid, pos, pos)
	if err != nil {
		return fmt.Errorf("update membership of %s: %w", userID, err)
	}
	return nil
}

// membershipUpsert replaces a user's membership row; joined_since stays
// while a joined user stays joined (schema_federation.go).
const membershipUpsert = `ON CONFLICT (room_nid, user_id) DO UPDATE SET membership = excluded.membership,
	event_nid = excluded.event_nid, stream_pos = excluded.stream_pos,
	joined_since = CASE WHEN rs_membership.membership = 'join' AND excluded.membership = 'join'
		THEN rs_membership.joined_since ELSE excluded.stream_pos END`

func updateRoomHead(ctx context.Context, tx *sqlutil.Tx, roomNID, snapshot int64, chainLen int, extremities []string, depth int64) error {
	ext, err := json.Marshal(extremities)
	if err != nil {
		return fmt.Errorf("encode extremities: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE rs_rooms SET snapshot_nid = $1, chain_len = $2, extremities = $3, depth = $4
		WHERE room_nid = $5`, snapshot, chainLen, string(ext), depth, roomNID)
	if err != nil {
		return fmt.Errorf("update room head: %w", err)
	}
	return nil
}

func outputOf(h *roomHead, p *pendingEvent) OutputEvent {
	ev := p.pdu
	return OutputEvent{
		Pos:         p.pos,
		RoomID:      h.id,
		RoomVersion: string(h.version.Version()),
		EventID:     ev.EventID(),
		Type:        ev.Type(),
		Sender:      string(ev.SenderID()),
		StateKey:    ev.StateKey(),
		Membership:  p.membership,
		Event:       json.RawMessage(ev.JSON()),
	}
}
