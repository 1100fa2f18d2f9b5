package syncapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// DehydratedToDevice reads, or deletes, the to-device messages of a
// user's dehydrated device (MSC3814). They are stored like any device's
// (sendToDevice), but the device never syncs: a new session of the user
// reads them in batches through POST /dehydrated_device/{id}/events,
// which the client API checks and forwards here. Reading deletes nothing,
// as the MSC asks, so that an interrupted rehydration can start again;
// the messages are deleted when the device is replaced or deleted.
var DehydratedToDevice = bus.Endpoint[DehydratedToDeviceRequest, DehydratedToDeviceResponse]{Subject: "syncapi.dehydrated_to_device"}

// DehydratedToDeviceRequest reads up to Limit messages after position
// Since, or, with Purge, deletes all the device's messages.
type DehydratedToDeviceRequest struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Purge    bool   `json:"purge,omitempty"`
	Since    int64  `json:"since,omitempty"`
	Limit    int    `json:"limit,omitempty"`
}

// DehydratedToDeviceResponse: Next is the position of the last message
// returned (Since when there is none), to read on from.
type DehydratedToDeviceResponse struct {
	Events []json.RawMessage `json:"events"`
	Next   int64             `json:"next"`
}

func (s *SyncAPI) dehydratedToDevice(ctx context.Context, req *DehydratedToDeviceRequest) (*DehydratedToDeviceResponse, error) {
	if req.Purge {
		if _, err := s.store.db.ExecContext(ctx, `DELETE FROM sy_to_device WHERE user_id = $1 AND device_id = $2`, req.UserID, req.DeviceID); err != nil {
			return nil, fmt.Errorf("delete to-device messages of %s/%s: %w", req.UserID, req.DeviceID, err)
		}
		return &DehydratedToDeviceResponse{Events: []json.RawMessage{}, Next: req.Since}, nil
	}
	limit := req.Limit
	if limit <= 0 || limit > toDeviceLimit {
		limit = toDeviceLimit
	}
	rows, err := s.store.db.QueryContext(ctx, `SELECT pos, sender, type, content FROM sy_to_device WHERE user_id = $1 AND device_id = $2 AND pos > $3 ORDER BY pos LIMIT $4`,
		req.UserID, req.DeviceID, req.Since, limit)
	if err != nil {
		return nil, fmt.Errorf("read to-device messages of %s/%s: %w", req.UserID, req.DeviceID, err)
	}
	defer rows.Close()
	resp := &DehydratedToDeviceResponse{Events: []json.RawMessage{}, Next: req.Since}
	for rows.Next() {
		var sender, typ, content string
		if err := rows.Scan(&resp.Next, &sender, &typ, &content); err != nil {
			return nil, fmt.Errorf("scan to-device message: %w", err)
		}
		ev, err := toDeviceEvent(sender, typ, content)
		if err != nil {
			return nil, err
		}
		resp.Events = append(resp.Events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read to-device messages of %s/%s: %w", req.UserID, req.DeviceID, err)
	}
	return resp, nil
}
