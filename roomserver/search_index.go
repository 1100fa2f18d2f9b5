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
// the batch's events, and drops that of the events it redacts.
func indexSearch(ctx context.Context, tx *sqlutil.Tx, c *commitRequest) error {
	for _, p := range c.events {
		if !p.redacts.isZero() {
			if _, err := tx.ExecContext(ctx, `DELETE FROM rs_search WHERE event_nid = $1`, p.redacts.resolve()); err != nil {
				return fmt.Errorf("unindex redacted event: %w", err)
			}
		}
		key, value := searchableText(p.pdu.Type(), p.pdu.Content())
		if key == "" {
			continue
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO rs_search (event_nid, search_key, room_nid, stream_pos, sender, event_type, value)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_nid, search_key) DO NOTHING`,
			p.nid, key, c.head.nid, p.pos, string(p.pdu.SenderID()), p.pdu.Type(), value)
		if err != nil {
			return fmt.Errorf("index %s for search: %w", p.pdu.EventID(), err)
		}
	}
	return nil
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
