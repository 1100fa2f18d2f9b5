package userapi

import (
	"context"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// maxDeviceDisplayNameBytes bounds device names.
const maxDeviceDisplayNameBytes = 255

// maxDeleteDevices bounds one /delete_devices request.
const maxDeleteDevices = 1000

func (u *UserAPI) queryDevices(ctx context.Context, req *QueryDevicesRequest) (*QueryDevicesResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no such user %s on this server", req.UserID)
	}
	// Times not yet flushed would make a device look idle; write them first.
	u.flushLastSeen()
	query := `SELECT device_id, display_name, last_seen_ms FROM ua_devices WHERE user_id = $1 ORDER BY device_id`
	args := []any{userID}
	if req.DeviceID != "" {
		query = `SELECT device_id, display_name, last_seen_ms FROM ua_devices WHERE user_id = $1 AND device_id = $2`
		args = append(args, req.DeviceID)
	}
	rows, err := u.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	defer rows.Close()
	resp := &QueryDevicesResponse{Devices: []DeviceInfo{}}
	for rows.Next() {
		var d DeviceInfo
		if err := rows.Scan(&d.DeviceID, &d.DisplayName, &d.LastSeenTS); err != nil {
			return nil, fmt.Errorf("scan device of %s: %w", userID, err)
		}
		resp.Devices = append(resp.Devices, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	return resp, nil
}

func (u *UserAPI) updateDevice(ctx context.Context, req *UpdateDeviceRequest) (*UpdateDeviceResponse, error) {
	if len(req.DisplayName) > maxDeviceDisplayNameBytes {
		return nil, mxerr.InvalidParam("display_name is longer than %d bytes", maxDeviceDisplayNameBytes)
	}
	res, err := u.db.ExecContext(ctx, `UPDATE ua_devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2`,
		req.UserID, req.DeviceID, req.DisplayName)
	if err != nil {
		return nil, fmt.Errorf("rename device %s of %s: %w", req.DeviceID, req.UserID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("rename device %s of %s: %w", req.DeviceID, req.UserID, err)
	}
	if n == 0 {
		return nil, mxerr.NotFound("no such device %s", req.DeviceID)
	}
	return &UpdateDeviceResponse{}, nil
}

func (u *UserAPI) deleteDevices(ctx context.Context, req *DeleteDevicesRequest) (*DeleteDevicesResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no such user %s on this server", req.UserID)
	}
	if len(req.DeviceIDs) > maxDeleteDevices {
		return nil, mxerr.InvalidParam("at most %d devices at once", maxDeleteDevices)
	}
	var revoked [][]byte
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		for _, id := range req.DeviceIDs {
			if id == "" {
				continue // "" would mean every device to deleteDevices
			}
			r, err := deleteDevices(ctx, tx, userID, id)
			if err != nil {
				return err
			}
			revoked = append(revoked, r...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.revoke(revoked)
	u.log.Debug("devices deleted", "user_id", userID, "devices", len(req.DeviceIDs), "tokens_revoked", len(revoked))
	return &DeleteDevicesResponse{}, nil
}
