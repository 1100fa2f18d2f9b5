package userapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Limits of one upload: a client tops its one-time keys up in batches of a
// few dozen (libolm and vodozemac keep at most 50 to 100), so more is a
// broken or hostile client.
const (
	maxOneTimeKeysPerUpload  = 100
	maxFallbackKeysPerUpload = 10
	maxKeyJSONBytes          = 4096
	maxKeyIDBytes            = 255
)

func invalidSignature(format string, args ...any) *mxerr.Error {
	return mxerr.New(http.StatusBadRequest, "M_INVALID_SIGNATURE", format, args...)
}

func (u *UserAPI) uploadKeys(ctx context.Context, req *UploadKeysRequest) (*UploadKeysResponse, error) {
	if len(req.OneTimeKeys) > maxOneTimeKeysPerUpload {
		return nil, mxerr.InvalidParam("at most %d one-time keys per upload", maxOneTimeKeysPerUpload)
	}
	if len(req.FallbackKeys) > maxFallbackKeysPerUpload {
		return nil, mxerr.InvalidParam("at most %d fallback keys per upload", maxFallbackKeysPerUpload)
	}
	otks, err := parseKeyMap("one_time_keys", req.OneTimeKeys)
	if err != nil {
		return nil, err
	}
	fallbacks, err := parseKeyMap("fallback_keys", req.FallbackKeys)
	if err != nil {
		return nil, err
	}
	changed := false
	err = u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
			var err error
			if changed, err = storeDeviceKeys(ctx, tx, req); err != nil {
				return err
			}
		}
		if err := storeOneTimeKeys(ctx, tx, req.UserID, req.DeviceID, otks); err != nil {
			return err
		}
		return storeFallbackKeys(ctx, tx, req.UserID, req.DeviceID, fallbacks)
	})
	if err != nil {
		return nil, err
	}
	if changed {
		u.nudgeOutbox()
	}
	counts, err := u.oneTimeKeyCounts(ctx, req.UserID, req.DeviceID)
	if err != nil {
		return nil, err
	}
	return &UploadKeysResponse{OneTimeKeyCounts: counts}, nil
}

// uploadedKey is one entry of one_time_keys or fallback_keys.
type uploadedKey struct {
	id, algorithm string
	json          []byte
}

// parseKeyMap checks "<algorithm>:<id>" key IDs and JSON values (a signed
// key object, or a bare string for the old unsigned curve25519).
func parseKeyMap(field string, m map[string]json.RawMessage) ([]uploadedKey, error) {
	out := make([]uploadedKey, 0, len(m))
	for id, v := range m {
		alg, name, ok := strings.Cut(id, ":")
		if !ok || alg == "" || name == "" || len(id) > maxKeyIDBytes {
			return nil, mxerr.InvalidParam("%s: key ID %q is not <algorithm>:<id>", field, truncateString(id, 64))
		}
		if len(v) > maxKeyJSONBytes {
			return nil, mxerr.InvalidParam("%s: key %s is over %d bytes", field, id, maxKeyJSONBytes)
		}
		var probe any
		if err := json.Unmarshal(v, &probe); err != nil {
			return nil, mxerr.BadJSON("%s: key %s is not JSON", field, id)
		}
		switch probe.(type) {
		case string, map[string]any:
		default:
			return nil, mxerr.BadJSON("%s: key %s must be an object or a string", field, id)
		}
		out = append(out, uploadedKey{id: id, algorithm: alg, json: v})
	}
	return out, nil
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// storeDeviceKeys checks and stores the device's identity keys. The same
// keys again (signatures may differ) are accepted; different keys for a
// device that has some are refused: a device's identity does not change,
// and a silent change would let a stolen token replace a device's keys.
func storeDeviceKeys(ctx context.Context, tx *sqlutil.Tx, req *UploadKeysRequest) (changed bool, err error) {
	if len(req.DeviceKeys) > 4*maxKeyJSONBytes {
		return false, mxerr.InvalidParam("device_keys is over %d bytes", 4*maxKeyJSONBytes)
	}
	var dk signedObject
	if err := json.Unmarshal(req.DeviceKeys, &dk); err != nil {
		return false, mxerr.BadJSON("device_keys: %v", err)
	}
	if dk.UserID != req.UserID || dk.DeviceID != req.DeviceID {
		return false, mxerr.InvalidParam("device_keys: user_id and device_id must be the uploading device's (%s, %s)", req.UserID, req.DeviceID)
	}
	if len(dk.Algorithms) == 0 {
		return false, mxerr.MissingParam("device_keys: algorithms is required")
	}
	edKey, ok := dk.Keys["ed25519:"+req.DeviceID]
	if !ok {
		return false, mxerr.MissingParam("device_keys: keys must hold ed25519:%s", req.DeviceID)
	}
	if err := verifySigned(req.DeviceKeys, req.UserID, "ed25519:"+req.DeviceID, edKey); err != nil {
		return false, invalidSignature("device_keys: the device's own signature does not verify: %v", err)
	}
	stored, err := clean(req.DeviceKeys)
	if err != nil {
		return false, err
	}
	var old string
	err = tx.QueryRowContext(ctx, `SELECT key_json FROM ua_device_keys WHERE user_id = $1 AND device_id = $2`,
		req.UserID, req.DeviceID).Scan(&old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO ua_device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)`,
			req.UserID, req.DeviceID, string(stored)); err != nil {
			return false, fmt.Errorf("store device keys of %s/%s: %w", req.UserID, req.DeviceID, err)
		}
	case err != nil:
		return false, fmt.Errorf("read device keys of %s/%s: %w", req.UserID, req.DeviceID, err)
	default:
		if !sameJSON([]byte(old), stored, true) {
			return false, mxerr.InvalidParam("device %s already has different identity keys; log in as a new device", req.DeviceID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ua_device_keys SET key_json = $3 WHERE user_id = $1 AND device_id = $2`,
			req.UserID, req.DeviceID, string(stored)); err != nil {
			return false, fmt.Errorf("store device keys of %s/%s: %w", req.UserID, req.DeviceID, err)
		}
	}
	// Announced even when unchanged: an upload retried after a crash
	// between the commit and the announcement announces it then.
	return true, recordKeyChange(ctx, tx, req.UserID)
}

// clean drops the client's "unsigned": the server fills it on query.
func clean(raw []byte) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	delete(obj, "unsigned")
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return b, nil
}

// storeOneTimeKeys adds keys; a key ID already stored with the same
// content is a retried upload, with other content an error (the client's
// state is broken and handing out either key would fail a session).
func storeOneTimeKeys(ctx context.Context, tx *sqlutil.Tx, userID, deviceID string, keys []uploadedKey) error {
	for _, k := range keys {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT key_json FROM ua_one_time_keys WHERE user_id = $1 AND device_id = $2 AND key_id = $3`,
			userID, deviceID, k.id).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO ua_one_time_keys (user_id, device_id, key_id, algorithm, key_json) VALUES ($1, $2, $3, $4, $5)`,
				userID, deviceID, k.id, k.algorithm, string(k.json)); err != nil {
				return fmt.Errorf("store one-time key of %s/%s: %w", userID, deviceID, err)
			}
		case err != nil:
			return fmt.Errorf("read one-time key of %s/%s: %w", userID, deviceID, err)
		case !sameJSON([]byte(old), k.json, false):
			return mxerr.InvalidParam("one-time key %s was already uploaded with other content", k.id)
		}
	}
	return nil
}

// storeFallbackKeys replaces the device's fallback key of each algorithm;
// the same key again keeps its used flag.
func storeFallbackKeys(ctx context.Context, tx *sqlutil.Tx, userID, deviceID string, keys []uploadedKey) error {
	for _, k := range keys {
		var oldID, oldJSON string
		err := tx.QueryRowContext(ctx, `SELECT key_id, key_json FROM ua_fallback_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3`,
			userID, deviceID, k.algorithm).Scan(&oldID, &oldJSON)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read fallback key of %s/%s: %w", userID, deviceID, err)
		}
		if err == nil && oldID == k.id && sameJSON([]byte(oldJSON), k.json, false) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `
INSERT INTO ua_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES ($1, $2, $3, $4, $5, FALSE)
ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE`,
			userID, deviceID, k.algorithm, k.id, string(k.json)); err != nil {
			return fmt.Errorf("store fallback key of %s/%s: %w", userID, deviceID, err)
		}
	}
	return nil
}

// oneTimeKeyCounts counts the device's unclaimed one-time keys per
// algorithm; signed_curve25519 is always present, as clients expect.
func (u *UserAPI) oneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	rows, err := u.db.QueryContext(ctx, `SELECT algorithm, COUNT(*) FROM ua_one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`,
		userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("count one-time keys of %s/%s: %w", userID, deviceID, err)
	}
	defer rows.Close()
	counts := map[string]int{"signed_curve25519": 0}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, fmt.Errorf("scan one-time key count: %w", err)
		}
		counts[alg] = n
	}
	return counts, rows.Err()
}

func (u *UserAPI) queryKeyCounts(ctx context.Context, req *QueryKeyCountsRequest) (*QueryKeyCountsResponse, error) {
	counts, err := u.oneTimeKeyCounts(ctx, req.UserID, req.DeviceID)
	if err != nil {
		return nil, err
	}
	rows, err := u.db.QueryContext(ctx, `SELECT algorithm FROM ua_fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used ORDER BY algorithm`,
		req.UserID, req.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("read fallback keys of %s/%s: %w", req.UserID, req.DeviceID, err)
	}
	defer rows.Close()
	resp := &QueryKeyCountsResponse{OneTimeKeyCounts: counts, UnusedFallbackKeys: []string{}}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, fmt.Errorf("scan fallback key: %w", err)
		}
		resp.UnusedFallbackKeys = append(resp.UnusedFallbackKeys, alg)
	}
	return resp, rows.Err()
}

// deleteDeviceKeys removes a deleted session's keys (all devices' when
// deviceID is "", the dehydrated device included), inside the deletion's
// transaction, and announces the change: other users' clients stop
// encrypting to the device. The dehydrated device is not a session: a
// session deletion naming it leaves it alone (DELETE /dehydrated_device
// removes it).
func deleteDeviceKeys(ctx context.Context, tx *sqlutil.Tx, userID, deviceID string) error {
	if deviceID == "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ua_dehydrated_devices WHERE user_id = $1`, userID); err != nil {
			return fmt.Errorf("delete dehydrated device of %s: %w", userID, err)
		}
	} else if dehydrated, err := isDehydratedDevice(ctx, tx, userID, deviceID); err != nil || dehydrated {
		return err
	}
	return dropDeviceKeys(ctx, tx, userID, deviceID)
}

// dropDeviceKeys deletes a device's keys and the signatures over them (all
// devices' keys when deviceID is "") and records the key change.
func dropDeviceKeys(ctx context.Context, tx *sqlutil.Tx, userID, deviceID string) error {
	cond, args := `user_id = $1`, []any{userID}
	if deviceID != "" {
		cond, args = `user_id = $1 AND device_id = $2`, []any{userID, deviceID}
	}
	for _, table := range []string{"ua_device_keys", "ua_one_time_keys", "ua_fallback_keys"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+cond, args...); err != nil {
			return fmt.Errorf("delete keys of %s/%s: %w", userID, deviceID, err)
		}
	}
	if deviceID != "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ua_key_signatures WHERE target_user_id = $1 AND target_key_id = $2`, userID, deviceID); err != nil {
			return fmt.Errorf("delete signatures of %s/%s: %w", userID, deviceID, err)
		}
	}
	return recordKeyChange(ctx, tx, userID)
}
