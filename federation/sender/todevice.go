package sender

import (
	"context"
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxMessageIDLength is m.direct_to_device's limit on message_id.
const maxMessageIDLength = 32

// QueueToDevice queues the to-device messages of one /sendToDevice for
// server's users (user → device or "*" → content) as one
// m.direct_to_device EDU. The message_id is derived from the request, so
// that a client retrying a /sendToDevice (same transaction ID and
// content) gives the same ID, which the destination recognises.
func (s *Sender) QueueToDevice(ctx context.Context, server, sender, eventType, txnID string, messages map[string]map[string]json.RawMessage) error {
	if !s.sendable(server) {
		return mxerr.Forbidden("%s is not a server this server federates with", server)
	}
	if len(messages) == 0 {
		return nil
	}
	body, err := json.Marshal(messages) // map keys sorted: stable
	if err != nil {
		return mxerr.BadJSON("to-device messages: %v", err)
	}
	messageID := digestOf([]byte(sender), []byte(eventType), []byte(txnID), body)[:maxMessageIDLength]
	content, err := json.Marshal(map[string]any{
		"sender": sender, "type": eventType, "message_id": messageID, "messages": messages,
	})
	if err != nil {
		return err
	}
	return s.queueEDUs(ctx, []queuedEDU{{destination: server, eduType: "m.direct_to_device", content: content}})
}
