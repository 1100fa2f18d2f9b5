package roomserver

import (
	"context"
	"fmt"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxReasonBytes bounds a report's reason.
const maxReasonBytes = 2048

// report stores a content report for the server's moderators. The reporter
// must be in the room and, for an event, able to see it; otherwise the
// answer is M_NOT_FOUND, so that reports cannot probe for rooms or events.
func (rs *Roomserver) report(ctx context.Context, req *ReportRequest) (*Empty, error) {
	if len(req.Reason) > maxReasonBytes {
		return nil, mxerr.InvalidParam("reason is longer than %d bytes", maxReasonBytes)
	}
	if req.Score != nil && (*req.Score < -100 || *req.Score > 0) {
		return nil, mxerr.InvalidParam("score must be between -100 and 0")
	}
	room, ok, err := rs.reader.room(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("room %s not found", req.RoomID)
	}
	if err := rs.requireJoined(ctx, room, req.UserID); err != nil {
		return nil, mxerr.NotFound("room %s not found or you are not in it", req.RoomID)
	}
	if req.EventID != "" {
		ev, err := rs.visibleEvent(ctx, room, req.UserID, req.EventID)
		if err != nil {
			return nil, err
		}
		if ev == nil {
			return nil, mxerr.NotFound("event %s not found", req.EventID)
		}
	}
	_, err = rs.db.ExecContext(ctx, `INSERT INTO rs_reports (room_id, event_id, reporter, reason, score, received_ms)
		VALUES ($1, $2, $3, $4, $5, $6)`, room.id, req.EventID, req.UserID, req.Reason, req.Score, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store report: %w", err)
	}
	rs.log.Info("content reported", "room_id", room.id, "event_id", req.EventID, "reporter", req.UserID)
	return &Empty{}, nil
}
