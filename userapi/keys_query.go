package userapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxQueryUsers bounds one /keys/query or /keys/claim.
const maxQueryUsers = 1000

func (u *UserAPI) queryKeys(ctx context.Context, req *QueryKeysRequest) (*QueryKeysResponse, error) {
	if len(req.DeviceKeys) > maxQueryUsers {
		return nil, mxerr.InvalidParam("at most %d users per query", maxQueryUsers)
	}
	users := make([]string, 0, len(req.DeviceKeys))
	for userID := range req.DeviceKeys {
		users = append(users, userID)
	}
	ks, err := loadKeys(ctx, u.db.QueryContext, users, loadDevices|loadCrossSigning|loadSignatures)
	if err != nil {
		return nil, err
	}
	resp := &QueryKeysResponse{
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
	}
	for userID, devices := range req.DeviceKeys {
		keys, err := ks.deviceKeys(userID, devices)
		if err != nil {
			return nil, err
		}
		resp.DeviceKeys[userID] = keys
		cs, err := ks.crossSigning(userID, req.Requester)
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

type queryFunc func(ctx context.Context, query string, args ...any) (*sql.Rows, error)

// storedDevice is a device's stored keys and display name.
type storedDevice struct{ id, keyJSON, name string }

// sigMap holds the signatures uploaded over one user's keys: target key
// ID → signer → signer's key ID → signature.
type sigMap map[string]map[string]map[string]string

// storedKeys is what is stored about a set of users' keys, read with one
// query per table however many users there are (a /keys/query for a
// thousand users is three queries, not three thousand).
type storedKeys struct {
	devices map[string][]storedDevice
	sigs    map[string]sigMap
	cs      map[string]map[string]json.RawMessage // user → key type → key
}

// What loadKeys reads.
const (
	loadDevices = 1 << iota
	loadCrossSigning
	loadSignatures
)

func loadKeys(ctx context.Context, q queryFunc, users []string, what int) (*storedKeys, error) {
	ks := &storedKeys{
		devices: map[string][]storedDevice{},
		sigs:    map[string]sigMap{},
		cs:      map[string]map[string]json.RawMessage{},
	}
	err := chunks(users, func(padded []string) error {
		list, args := inList(1, len(padded)), stringArgs(padded)
		if what&loadDevices != 0 {
			if err := ks.readDevices(ctx, q, list, args); err != nil {
				return err
			}
		}
		if what&loadCrossSigning != 0 {
			if err := ks.readCrossSigning(ctx, q, list, args); err != nil {
				return err
			}
		}
		if what&loadSignatures != 0 {
			return ks.readSignatures(ctx, q, list, args)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ks, nil
}

// readDevices reads the device keys, with the device's display name (a
// session's, or the dehydrated device's).
func (ks *storedKeys) readDevices(ctx context.Context, q queryFunc, list string, args []any) error {
	rows, err := q(ctx, `
SELECT k.user_id, k.device_id, k.key_json, COALESCE(d.display_name, h.display_name, '')
FROM ua_device_keys k
LEFT JOIN ua_devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
LEFT JOIN ua_dehydrated_devices h ON h.user_id = k.user_id AND h.device_id = k.device_id
WHERE k.user_id IN (`+list+`)`, args...)
	if err != nil {
		return fmt.Errorf("read device keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user string
		var d storedDevice
		if err := rows.Scan(&user, &d.id, &d.keyJSON, &d.name); err != nil {
			return fmt.Errorf("scan device keys: %w", err)
		}
		ks.devices[user] = append(ks.devices[user], d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read device keys: %w", err)
	}
	return nil
}

func (ks *storedKeys) readCrossSigning(ctx context.Context, q queryFunc, list string, args []any) error {
	rows, err := q(ctx, `SELECT user_id, key_type, key_json FROM ua_cross_signing_keys WHERE user_id IN (`+list+`)`, args...)
	if err != nil {
		return fmt.Errorf("read cross-signing keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user, typ, js string
		if err := rows.Scan(&user, &typ, &js); err != nil {
			return fmt.Errorf("scan cross-signing key: %w", err)
		}
		if ks.cs[user] == nil {
			ks.cs[user] = map[string]json.RawMessage{}
		}
		ks.cs[user][typ] = json.RawMessage(js)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read cross-signing keys: %w", err)
	}
	return nil
}

// readSignatures reads the signatures uploaded over the users' keys.
func (ks *storedKeys) readSignatures(ctx context.Context, q queryFunc, list string, args []any) error {
	rows, err := q(ctx, `SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature FROM ua_key_signatures WHERE target_user_id IN (`+list+`)`, args...)
	if err != nil {
		return fmt.Errorf("read signatures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user, target, signer, keyID, sig string
		if err := rows.Scan(&user, &target, &signer, &keyID, &sig); err != nil {
			return fmt.Errorf("scan signature: %w", err)
		}
		m := ks.sigs[user]
		if m == nil {
			m = sigMap{}
			ks.sigs[user] = m
		}
		if m[target] == nil {
			m[target] = map[string]map[string]string{}
		}
		if m[target][signer] == nil {
			m[target][signer] = map[string]string{}
		}
		m[target][signer][keyID] = sig
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read signatures: %w", err)
	}
	return nil
}

// deviceKeys returns the user's devices' keys (the listed devices, or
// all), with the signatures uploaded since and the device's display name.
func (ks *storedKeys) deviceKeys(userID string, devices []string) (map[string]json.RawMessage, error) {
	want := map[string]bool{}
	for _, d := range devices {
		want[d] = true
	}
	sigs := ks.sigs[userID]
	out := map[string]json.RawMessage{}
	for _, r := range ks.devices[userID] {
		if len(want) > 0 && !want[r.id] {
			continue
		}
		merged, err := mergeSignatures([]byte(r.keyJSON), sigs[r.id])
		if err != nil {
			return nil, err
		}
		if r.name == "" {
			out[r.id] = merged
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(merged, &obj); err != nil {
			return nil, fmt.Errorf("stored device keys of %s/%s: %w", userID, r.id, err)
		}
		obj["unsigned"], _ = json.Marshal(map[string]string{"device_display_name": r.name})
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out[r.id] = b
	}
	return out, nil
}

// crossSigning returns the user's cross-signing keys by type. With a
// viewer, the signatures uploaded later are merged in: the owner's, and
// the viewer's own (another user's user-signing signature says whom they
// verified, which only they need to know, as Synapse also has it).
func (ks *storedKeys) crossSigning(userID, viewer string) (map[string]json.RawMessage, error) {
	stored := ks.cs[userID]
	out := make(map[string]json.RawMessage, len(stored))
	for typ, raw := range stored {
		if viewer == "" {
			out[typ] = raw
			continue
		}
		var o signedObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("stored %s key of %s: %w", typ, userID, err)
		}
		_, pub, _ := o.onlyKey()
		visible := map[string]map[string]string{}
		for signer, m := range ks.sigs[userID][pub] {
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

// deviceKeysOf returns one user's devices' keys (the listed devices, or
// all), as /keys/query does.
func (u *UserAPI) deviceKeysOf(ctx context.Context, userID string, devices []string) (map[string]json.RawMessage, error) {
	ks, err := loadKeys(ctx, u.db.QueryContext, []string{userID}, loadDevices|loadSignatures)
	if err != nil {
		return nil, err
	}
	return ks.deviceKeys(userID, devices)
}

// crossSigningKeys reads the user's cross-signing keys by type; with
// merged, the signatures uploaded later are added.
func (u *UserAPI) crossSigningKeys(ctx context.Context, userID string, merged bool) (map[string]json.RawMessage, error) {
	viewer := ""
	if merged {
		viewer = userID
	}
	return readCrossSigning(ctx, u.db.QueryContext, userID, viewer)
}

// readCrossSigning reads userID's cross-signing keys through q (a
// transaction's, or the pool's), merged for viewer (see crossSigning).
func readCrossSigning(ctx context.Context, q queryFunc, userID, viewer string) (map[string]json.RawMessage, error) {
	what := loadCrossSigning
	if viewer != "" {
		what |= loadSignatures
	}
	ks, err := loadKeys(ctx, q, []string{userID}, what)
	if err != nil {
		return nil, err
	}
	return ks.crossSigning(userID, viewer)
}

func (u *UserAPI) queryCrossSigning(ctx context.Context, req *QueryCrossSigningRequest) (*QueryCrossSigningResponse, error) {
	cs, err := u.crossSigningKeys(ctx, req.UserID, false)
	if err != nil {
		return nil, err
	}
	return &QueryCrossSigningResponse{Master: cs["master"], SelfSigning: cs["self_signing"], UserSigning: cs["user_signing"]}, nil
}
