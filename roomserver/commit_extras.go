package roomserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// commitExtras writes, in the commit's transaction, what the room features
// of api_rooms.go keep beside the events: the relations index (and its
// clean-up when a relation is redacted) and, for a room created public,
// its directory entry.
func commitExtras(ctx context.Context, tx *sqlutil.Tx, c *commitRequest) error {
	for _, p := range c.events {
		if err := indexRelation(ctx, tx, c.head.nid, p); err != nil {
			return err
		}
		if !p.redacts.isZero() {
			// A redacted event loses its content, m.relates_to included.
			if _, err := tx.ExecContext(ctx, `DELETE FROM rs_relations WHERE event_nid = $1`, p.redacts.resolve()); err != nil {
				return fmt.Errorf("unindex redacted relation: %w", err)
			}
		}
	}
	if c.newRoom && c.publish {
		if err := publishRoom(ctx, tx, c.head.id); err != nil {
			return err
		}
	}
	return nil
}

// maxRelTypeBytes bounds what is indexed: a longer rel_type is kept in the
// event but not indexed.
const maxRelTypeBytes = 255

// relatesTo is an event content's m.relates_to.
type relatesTo struct {
	RelType string `json:"rel_type"`
	EventID string `json:"event_id"`
}

// relationOf reads an event's relation; ok is false when it has none
// (a reply without rel_type is not a relation).
func relationOf(content []byte) (relatesTo, bool) {
	var c struct {
		RelatesTo *relatesTo `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || c.RelatesTo == nil {
		return relatesTo{}, false
	}
	r := *c.RelatesTo
	if r.RelType == "" || r.EventID == "" || len(r.RelType) > maxRelTypeBytes || len(r.EventID) > 255 {
		return relatesTo{}, false
	}
	return r, true
}

func indexRelation(ctx context.Context, tx *sqlutil.Tx, roomNID int64, p *pendingEvent) error {
	ev := p.pdu
	if ev.StateKey() != nil {
		return nil // state events do not take part in relations here
	}
	rel, ok := relationOf(ev.Content())
	if !ok {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO rs_relations (event_nid, event_id, room_nid, relates_to_id, rel_type,
		event_type, sender, stream_pos, origin_server_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		p.nid, ev.EventID(), roomNID, rel.EventID, rel.RelType, ev.Type(), string(ev.SenderID()), p.pos,
		int64(ev.OriginServerTS()))
	if err != nil {
		return fmt.Errorf("index relation of %s: %w", ev.EventID(), err)
	}
	return nil
}
