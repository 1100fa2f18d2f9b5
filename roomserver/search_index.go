package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Searchable keys and the event types that carry them, as the spec's
// /search lists them.
const (
	SearchKeyBody  = "content.body"
	SearchKeyName  = "content.name"
	SearchKeyTopic = "content.topic"
)

// maxIndexedBytes bounds what is indexed of one value: a longer body is
// still stored whole, only its first 64 KiB are searchable.
const maxIndexedBytes = 64 * 1024

// indexSearch writes, in the commit's transaction, the searchable text of
// the batch's events, and drops that of the events it redacts. The rows
// go in multi-row statements (a federation transaction brings 50
// messages at once); those pending are written before a redaction's
// delete, which may target one of them.
func indexSearch(ctx context.Context, tx *sqlutil.Tx, c *commitRequest) error {
	var rows []searchRow
	for _, p := range c.events {
		if !p.redacts.isZero() {
			if err := insertSearchRows(ctx, tx, c.head.nid, rows); err != nil {
				return err
			}
			rows = rows[:0]
			if _, err := tx.ExecContext(ctx, `DELETE FROM rs_search WHERE event_nid = $1`, p.redacts.resolve()); err != nil {
				return fmt.Errorf("unindex redacted event: %w", err)
			}
		}
		if key, value := searchableText(p.pdu.Type(), p.pdu.Content()); key != "" {
			rows = append(rows, searchRow{p: p, key: key, value: value})
		}
	}
	return insertSearchRows(ctx, tx, c.head.nid, rows)
}

// searchRow is an rs_search row to write.
type searchRow struct {
	p          *pendingEvent
	key, value string
}

func insertSearchRows(ctx context.Context, tx *sqlutil.Tx, roomNID int64, rows []searchRow) error {
	const cols = 7
	return inRowChunks(len(rows), func(from, to int) error {
		args := make([]any, 0, (to-from)*cols)
		for _, r := range rows[from:to] {
			args = append(args, r.p.nid, r.key, roomNID, r.p.pos, string(r.p.pdu.SenderID()), r.p.pdu.Type(), r.value)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO rs_search (event_nid, search_key, room_nid, stream_pos, sender, event_type, value)
			VALUES `+valuesList(to-from, cols, "")+` ON CONFLICT (event_nid, search_key) DO NOTHING`, args...)
		if err != nil {
			return fmt.Errorf("index %d events for search: %w", to-from, err)
		}
		return nil
	})
}

// searchableText picks the key an event is searched under and its
// lower-cased text ("" when the event has none).
func searchableText(eventType string, content []byte) (string, string) {
	var c struct {
		Body  *string `json:"body"`
		Name  *string `json:"name"`
		Topic *string `json:"topic"`
	}
	var key string
	var text **string
	switch eventType {
	case "m.room.message":
		key, text = SearchKeyBody, &c.Body
	case "m.room.name":
		key, text = SearchKeyName, &c.Name
	case "m.room.topic":
		key, text = SearchKeyTopic, &c.Topic
	default:
		return "", ""
	}
	if json.Unmarshal(content, &c) != nil || *text == nil || **text == "" {
		return "", ""
	}
	v := **text
	if len(v) > maxIndexedBytes {
		v = v[:maxIndexedBytes]
	}
	return key, strings.ToLower(v)
}
