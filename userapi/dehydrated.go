package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// maxDeviceDataBytes bounds a dehydrated device's data: an encrypted
// pickle of an Olm account with its one-time keys is a few kilobytes.
const maxDeviceDataBytes = 64 * 1024

// putAttempts bounds the retries of a put that lost a race with another
// put of the same user (the second insert of the user's row fails).
const putAttempts = 3

func (u *UserAPI) dehydratedDevice(ctx context.Context, req *DehydratedDeviceRequest) (*DehydratedDeviceResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no such user %s on this server", req.UserID)
	}
	switch req.Op {
	case DehydratedPut:
		return u.putDehydratedDevice(ctx, userID, req)
	case DehydratedGet:
		var resp DehydratedDeviceResponse
		var data string
		err := u.db.QueryRowContext(ctx, `SELECT device_id, device_data FROM ua_dehydrated_devices WHERE user_id = $1`, userID).
			Scan(&resp.DeviceID, &data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errNoDehydratedDevice()
		}
		if err != nil {
			return nil, fmt.Errorf("read dehydrated device of %s: %w", userID, err)
		}
		resp.DeviceData = []byte(data)
		return &resp, nil
	case DehydratedDelete:
		var removed string
		err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
			var err error
			removed, err = removeDehydratedDevice(ctx, tx, userID)
			if err == nil && removed == "" {
				err = errNoDehydratedDevice()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		u.nudgeOutbox()
		return &DehydratedDeviceResponse{DeviceID: removed, Removed: removed}, nil
	}
	return nil, mxerr.InvalidParam("unknown dehydrated device operation %q", req.Op)
}

func errNoDehydratedDevice() error { return mxerr.NotFound("no dehydrated device") }

// putDehydratedDevice stores the device and its keys in one transaction,
// after removing the user's previous dehydrated device and its keys. The
// same device again (a retried upload) keeps its to-device messages.
func (u *UserAPI) putDehydratedDevice(ctx context.Context, userID string, req *DehydratedDeviceRequest) (*DehydratedDeviceResponse, error) {
	if err := checkDehydratedPut(req); err != nil {
		return nil, err
	}
	otks, err := parseKeyMap("one_time_keys", req.OneTimeKeys)
	if err != nil {
		return nil, err
	}
	fallbacks, err := parseKeyMap("fallback_keys", req.FallbackKeys)
	if err != nil {
		return nil, err
	}
	keys := &UploadKeysRequest{UserID: userID, DeviceID: req.DeviceID, DeviceKeys: req.DeviceKeys}
	var old string
	for attempt := 1; ; attempt++ {
		err = u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
			var err error
			if old, err = removeDehydratedDevice(ctx, tx, userID); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_devices WHERE user_id = $1 AND device_id = $2`, userID, req.DeviceID).Scan(&n); err != nil {
				return fmt.Errorf("check device ID %s of %s: %w", req.DeviceID, userID, err)
			}
			if n > 0 {
				return mxerr.InvalidParam("device_id %s is one of your sessions", req.DeviceID)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO ua_dehydrated_devices (user_id, device_id, device_data, display_name, created_ms) VALUES ($1, $2, $3, $4, $5)`,
				userID, req.DeviceID, string(req.DeviceData), req.DisplayName, u.now().UnixMilli()); err != nil {
				return fmt.Errorf("store dehydrated device of %s: %w", userID, err)
			}
			if _, err := storeDeviceKeys(ctx, tx, keys); err != nil {
				return err
			}
			if err := storeOneTimeKeys(ctx, tx, userID, req.DeviceID, otks); err != nil {
				return err
			}
			return storeFallbackKeys(ctx, tx, userID, req.DeviceID, fallbacks)
		})
		if err == nil || attempt == putAttempts || !sqlutil.IsUniqueViolation(err) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	u.nudgeOutbox()
	u.log.Debug("dehydrated device stored", "user_id", userID, "device_id", req.DeviceID, "replaced", old)
	resp := &DehydratedDeviceResponse{DeviceID: req.DeviceID}
	if old != req.DeviceID {
		resp.Removed = old
	}
	return resp, nil
}

// checkDehydratedPut checks what the key checks of /keys/upload do not.
func checkDehydratedPut(req *DehydratedDeviceRequest) error {
	switch {
	case req.DeviceID == "":
		return mxerr.MissingParam("device_id is required")
	case len(req.DeviceID) > maxDeviceIDBytes:
		return mxerr.InvalidParam("device_id is longer than %d bytes", maxDeviceIDBytes)
	case len(req.DeviceData) == 0 || req.DeviceData[0] != '{':
		return mxerr.MissingParam("device_data must be an object")
	case len(req.DeviceData) > maxDeviceDataBytes:
		return mxerr.TooLarge("device_data is over %d bytes", maxDeviceDataBytes)
	case len(req.DisplayName) > maxDeviceDisplayNameBytes:
		return mxerr.InvalidParam("initial_device_display_name is longer than %d bytes", maxDeviceDisplayNameBytes)
	case len(req.DeviceKeys) == 0 || req.DeviceKeys[0] != '{':
		return mxerr.MissingParam("device_keys must be an object")
	case len(req.OneTimeKeys) > maxOneTimeKeysPerUpload:
		return mxerr.InvalidParam("at most %d one-time keys per upload", maxOneTimeKeysPerUpload)
	case len(req.FallbackKeys) > maxFallbackKeysPerUpload:
		return mxerr.InvalidParam("at most %d fallback keys per upload", maxFallbackKeysPerUpload)
	}
	return nil
}

// removeDehydratedDevice deletes the user's dehydrated device and its
// keys, announcing the change, and returns its ID ("" when there was
// none). Deleting the row first takes its lock, so that concurrent puts
// of one user replace each other in turn.
func removeDehydratedDevice(ctx context.Context, tx *sqlutil.Tx, userID string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `DELETE FROM ua_dehydrated_devices WHERE user_id = $1 RETURNING device_id`, userID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("delete dehydrated device of %s: %w", userID, err)
	}
	return id, dropDeviceKeys(ctx, tx, userID, id)
}

// isDehydratedDevice says whether deviceID is the user's dehydrated device.
func isDehydratedDevice(ctx context.Context, q sqlutil.Querier, userID, deviceID string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_dehydrated_devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID).Scan(&n); err != nil {
		return false, fmt.Errorf("check dehydrated device of %s: %w", userID, err)
	}
	return n > 0, nil
}

// refuseDehydratedLogin refuses a login that names the user's dehydrated
// device: it is not a session, and a token for it would let /sync take its
// to-device messages (the room keys it holds for a later session).
func (u *UserAPI) refuseDehydratedLogin(ctx context.Context, userID, deviceID string) error {
	if deviceID == "" {
		return nil
	}
	dehydrated, err := isDehydratedDevice(ctx, u.db, userID, deviceID)
	if err != nil {
		return err
	}
	if dehydrated {
		return mxerr.Forbidden("device %s is your dehydrated device; it cannot log in", deviceID)
	}
	return nil
}
