package syncapi

import (
	"context"
	"time"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// Output carries syncapi's own changes to every syncapi process: the
// stored ones (account data, receipts, presence) only to wake the syncs
// that wait for them, as the rows are read from the database; typing
// notifications in full, as they are kept in each process's memory. The
// stream is kept an hour: it is a wake-up channel, not a record (a process
// reads it from the moment it starts, ConsumeNew).
var Output = bus.Topic[OutputMessage]{Stream: "SYNC_OUTPUT", Subject: "syncapi.output", MaxAge: time.Hour}

// Kinds of OutputMessage.
const (
	kindAccountData = "account_data"
	kindReceipt     = "receipt"
	kindPresence    = "presence"
	kindTyping      = "typing"
)

// OutputMessage is one change. Pos is its sy_stream position (0 for
// typing, which is not stored).
type OutputMessage struct {
	Kind   string `json:"kind"`
	Pos    int64  `json:"pos,omitempty"`
	UserID string `json:"user_id"`
	RoomID string `json:"room_id,omitempty"`
	// Private is set for an m.read.private receipt: only its author hears
	// of it.
	Private bool `json:"private,omitempty"`
	// Typing: whether the user types, and until when (Unix ms).
	Typing  bool  `json:"typing,omitempty"`
	UntilMS int64 `json:"until_ms,omitempty"`
}

// publish sends msg after its change was committed. A failure is logged,
// not returned: the change is stored and the next sync of anyone
// concerned reads it; only the wake-up of a sync already waiting is lost.
func (s *SyncAPI) publish(ctx context.Context, msg *OutputMessage) {
	if _, err := Output.Publish(ctx, s.bus, msg); err != nil {
		s.log.Warn("publish sync output failed", "kind", msg.Kind, "user", msg.UserID, "err", err)
	}
}
