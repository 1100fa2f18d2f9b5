package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// maxTypingTimeout caps how long one request keeps a user typing: clients
// ask again while the user types, and a client that dies should not leave
// them typing for long.
const maxTypingTimeout = 30 * time.Second

// putTyping serves PUT /rooms/{roomId}/typing/{userId}. The change goes
// out on the output stream; every process, this one included, applies it
// from there (notifier.onOutput).
func (s *SyncAPI) putTyping(req *httputil.Request) (any, error) {
	userID, err := selfOnly(req, "set the typing state")
	if err != nil {
		return nil, err
	}
	roomID := req.PathValue("roomId")
	if !mxid.RoomID(roomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	body, err := readObject(req, 4<<10)
	if err != nil {
		return nil, err
	}
	var in struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if in.Typing == nil {
		return nil, mxerr.BadJSON("typing is required")
	}
	msg := &OutputMessage{Kind: kindTyping, UserID: userID, RoomID: roomID, Typing: *in.Typing}
	timeout := maxTypingTimeout
	if *in.Typing {
		if in.Timeout == nil {
			return nil, mxerr.BadJSON("timeout is required when typing is true")
		}
		if *in.Timeout < 0 {
			return nil, mxerr.BadJSON("timeout must not be negative")
		}
		timeout = min(time.Duration(*in.Timeout)*time.Millisecond, maxTypingTimeout)
		msg.UntilMS = time.Now().Add(timeout).UnixMilli()
	}
	ctx := req.Context()
	if err := s.checkJoined(ctx, roomID, userID); err != nil {
		return nil, err
	}
	// Not stored anywhere else: a message that did not go out is a failure.
	if _, err := Output.Publish(ctx, s.bus, msg); err != nil {
		return nil, fmt.Errorf("publish typing: %w", err)
	}
	if *in.Typing {
		s.expireTyping(roomID, userID, msg.UntilMS, timeout)
	}
	return struct{}{}, nil
}

// expireTyping publishes the end of a typing notification when it runs out,
// unless the user typed again (a later end) or stopped since. Processes
// drop ended entries from what they send anyway; the message is what wakes
// the syncs that should be told. If this process dies first, no message
// goes: the others stop showing the user at untilMS, but do not wake.
func (s *SyncAPI) expireTyping(roomID, userID string, untilMS int64, after time.Duration) {
	time.AfterFunc(after, func() {
		select {
		case <-s.done:
			return
		default:
		}
		// The message was applied long ago, unless the stream lags: then
		// the entry is compared with what this process has seen so far.
		if end := s.notifier.typing.endsAt(roomID, userID); end != untilMS {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.publish(ctx, &OutputMessage{Kind: kindTyping, UserID: userID, RoomID: roomID, Typing: false})
	})
}
