package userapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxQueryUsers bounds one /keys/query or /keys/claim.
const maxQueryUsers = 1000

func (u *UserAPI) queryKeys(ctx context.Context, req *QueryKeysRequest) (*QueryKeysResponse, error) {
	if len(req.DeviceKeys) > maxQueryUsers {
		return nil, mxerr.InvalidParam("at most %d users per query", maxQueryUsers)
	}
	resp := &QueryKeysResponse{
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
	}
	for userID, devices := range req.DeviceKeys {
		keys, err := u.deviceKeysOf(ctx, userID, devices)
		if err != nil {
			return nil, err
		}
		resp.DeviceKeys[userID] = keys
		cs, err := readCrossSigning(ctx, u.db.QueryContext, userID, req.Requester, u)
		if err != nil {
			return nil, err
		}
		if k := cs["master"]; k != nil {
			resp.MasterKeys[userID] = k
		}
		if k := cs["self_signing"]; k != nil {
			resp.SelfSigningKeys[userID] = k
		}
		// The user-signing key only ever goes to its owner.
		if k := cs["user_signing"]; k != nil && userID == req.Requester {
			resp.UserSigningKeys[userID] = k
		}
	}
	return resp, nil
}

// deviceKeysOf returns the user's devices' keys (the listed devices, or
// all), with the signatures uploaded since and the device's display name.
func (u *UserAPI) deviceKeysOf(ctx context.Context, userID string, devices []string) (map[string]json.RawMessage, error) {
	rows, err := u.db.QueryContext(ctx, `
SELECT k.device_id, k.key_json, COALESCE(d.display_name, '')
FROM ua_device_keys k LEFT JOIN ua_devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
WHERE k.user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read device keys of %s: %w", userID, err)
	}
	type row struct{ id, keyJSON, name string }
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.keyJSON, &r.name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan device keys of %s: %w", userID, err)
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read device keys of %s: %w", userID, err)
	}
	want := map[string]bool{}
	for _, d := range devices {
		want[d] = true
	}
	sigs, err := u.extraSignatures(ctx, u.db.QueryContext, userID)
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, r := range list {
		if len(want) > 0 && !want[r.id] {
			continue
		}
		merged, err := mergeSignatures([]byte(r.keyJSON), sigs[r.id])
		if err != nil {
			return nil, err
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(merged, &obj); err != nil {
			return nil, fmt.Errorf("stored device keys of %s/%s: %w", userID, r.id, err)
		}
		if r.name != "" {
			obj["unsigned"], _ = json.Marshal(map[string]string{"device_display_name": r.name})
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out[r.id] = b
	}
	return out, nil
}

type queryFunc func(ctx context.Context, query string, args ...any) (*sql.Rows, error)

// extraSignatures reads the uploaded signatures over userID's keys:
// target key ID → signer → signer's key ID → signature.
func (u *UserAPI) extraSignatures(ctx context.Context, q queryFunc, userID string) (map[string]map[string]map[string]string, error) {
	rows, err := q(ctx, `SELECT target_key_id, signer_user_id, signer_key_id, signature FROM ua_key_signatures WHERE target_user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read signatures over %s's keys: %w", userID, err)
	}
	defer rows.Close()
	out := map[string]map[string]map[string]string{}
	for rows.Next() {
		var target, signer, keyID, sig string
		if err := rows.Scan(&target, &signer, &keyID, &sig); err != nil {
			return nil, fmt.Errorf("scan signature: %w", err)
		}
		if out[target] == nil {
			out[target] = map[string]map[string]string{}
		}
		if out[target][signer] == nil {
			out[target][signer] = map[string]string{}
		}
		out[target][signer][keyID] = sig
	}
	return out, rows.Err()
}

// crossSigningKeys reads the user's cross-signing keys by type; with
// merged, the signatures uploaded later are added.
func (u *UserAPI) crossSigningKeys(ctx context.Context, userID string, merged bool) (map[string]json.RawMessage, error) {
	viewer := ""
	if merged {
		viewer = userID
	}
	return readCrossSigning(ctx, u.db.QueryContext, userID, viewer, u)
}

// readCrossSigning reads userID's cross-signing keys. With a viewer, the
// signatures uploaded later are merged in: the owner's, and the viewer's
// own (another user's user-signing signature says whom they verified,
// which only they need to know, as Synapse also has it).
func readCrossSigning(ctx context.Context, q queryFunc, userID, viewer string, u *UserAPI) (map[string]json.RawMessage, error) {
	rows, err := q(ctx, `SELECT key_type, key_json FROM ua_cross_signing_keys WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read cross-signing keys of %s: %w", userID, err)
	}
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var typ, js string
		if err := rows.Scan(&typ, &js); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan cross-signing key: %w", err)
		}
		out[typ] = json.RawMessage(js)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read cross-signing keys of %s: %w", userID, err)
	}
	if viewer == "" || len(out) == 0 {
		return out, nil
	}
	sigs, err := u.extraSignatures(ctx, q, userID)
	if err != nil {
		return nil, err
	}
	for typ, raw := range out {
		var o signedObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("stored %s key of %s: %w", typ, userID, err)
		}
		_, pub, _ := o.onlyKey()
		visible := map[string]map[string]string{}
		for signer, m := range sigs[pub] {
			if signer == userID || signer == viewer {
				visible[signer] = m
			}
		}
		m, err := mergeSignatures(raw, visible)
		if err != nil {
			return nil, err
		}
		out[typ] = m
	}
	return out, nil
}

func (u *UserAPI) queryCrossSigning(ctx context.Context, req *QueryCrossSigningRequest) (*QueryCrossSigningResponse, error) {
	cs, err := u.crossSigningKeys(ctx, req.UserID, false)
	if err != nil {
		return nil, err
	}
	return &QueryCrossSigningResponse{Master: cs["master"], SelfSigning: cs["self_signing"], UserSigning: cs["user_signing"]}, nil
}

// claimKeys hands out one key per requested device: a one-time key, else
// the fallback key (marked used; it is handed out again until replaced).
func (u *UserAPI) claimKeys(ctx context.Context, req *ClaimKeysRequest) (*ClaimKeysResponse, error) {
	if len(req.OneTimeKeys) > maxQueryUsers {
		return nil, mxerr.InvalidParam("at most %d users per claim", maxQueryUsers)
	}
	resp := &ClaimKeysResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}}
	for userID, devices := range req.OneTimeKeys {
		for deviceID, alg := range devices {
			id, key, err := u.claimOne(ctx, userID, deviceID, alg)
			if err != nil {
				return nil, err
			}
			if id == "" {
				continue
			}
			if resp.OneTimeKeys[userID] == nil {
				resp.OneTimeKeys[userID] = map[string]map[string]json.RawMessage{}
			}
			resp.OneTimeKeys[userID][deviceID] = map[string]json.RawMessage{id: json.RawMessage(key)}
		}
	}
	return resp, nil
}

// claimOne deletes one one-time key and returns it. The DELETE decides: of
// two claims racing for the same row only one gets it back, and the loser
// tries the next key, so a key is never handed out twice.
func (u *UserAPI) claimOne(ctx context.Context, userID, deviceID, alg string) (string, string, error) {
	for range 10 {
		var id string
		err := u.db.QueryRowContext(ctx, `SELECT key_id FROM ua_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1`,
			userID, deviceID, alg).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("find one-time key of %s/%s: %w", userID, deviceID, err)
		}
		var key string
		err = u.db.QueryRowContext(ctx, `DELETE FROM ua_one_time_keys WHERE user_id = $1 AND device_id = $2 AND key_id = $3 RETURNING key_json`,
			userID, deviceID, id).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			continue // claimed by a concurrent request
		}
		if err != nil {
			return "", "", fmt.Errorf("claim one-time key of %s/%s: %w", userID, deviceID, err)
		}
		return id, key, nil
	}
	var id, key string
	err := u.db.QueryRowContext(ctx, `UPDATE ua_fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 RETURNING key_id, key_json`,
		userID, deviceID, alg).Scan(&id, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("claim fallback key of %s/%s: %w", userID, deviceID, err)
	}
	return id, key, nil
}
