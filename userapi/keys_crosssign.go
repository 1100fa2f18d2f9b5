package userapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// parseCrossSigningKey checks a cross-signing key's shape: the owner's,
// the expected usage, exactly one ed25519 key.
func parseCrossSigningKey(field string, raw json.RawMessage, userID, usage string) (*signedObject, string, error) {
	if len(raw) > maxKeyJSONBytes {
		return nil, "", mxerr.InvalidParam("%s is over %d bytes", field, maxKeyJSONBytes)
	}
	var o signedObject
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, "", mxerr.BadJSON("%s: %v", field, err)
	}
	if o.UserID != userID {
		return nil, "", mxerr.InvalidParam("%s: user_id must be %s", field, userID)
	}
	if !slices.Contains(o.Usage, usage) {
		return nil, "", mxerr.InvalidParam("%s: usage must include %s", field, usage)
	}
	_, pub, ok := o.onlyKey()
	if !ok {
		return nil, "", mxerr.InvalidParam("%s: keys must hold exactly one ed25519:<public key> entry", field)
	}
	if _, err := decodeKey(pub); err != nil {
		return nil, "", mxerr.InvalidParam("%s: %v", field, err)
	}
	return &o, pub, nil
}

func (u *UserAPI) uploadCrossSigning(ctx context.Context, req *UploadCrossSigningRequest) (*UploadCrossSigningResponse, error) {
	has := func(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		stored, err := readCrossSigning(ctx, tx.QueryContext, req.UserID, "")
		if err != nil {
			return err
		}
		masterRaw := stored["master"]
		if has(req.Master) {
			masterRaw = req.Master
		}
		if masterRaw == nil {
			return mxerr.MissingParam("no master key: upload one first or with these keys")
		}
		_, masterPub, err := parseCrossSigningKey("master_key", masterRaw, req.UserID, "master")
		if err != nil {
			return err
		}
		toStore := map[string]json.RawMessage{}
		if has(req.Master) {
			toStore["master"] = req.Master
		}
		pubs := []string{masterPub}
		for _, k := range []struct {
			field, usage string
			raw          json.RawMessage
		}{{"self_signing_key", "self_signing", req.SelfSigning}, {"user_signing_key", "user_signing", req.UserSigning}} {
			if !has(k.raw) {
				continue
			}
			_, pub, err := parseCrossSigningKey(k.field, k.raw, req.UserID, k.usage)
			if err != nil {
				return err
			}
			if err := verifySigned(k.raw, req.UserID, "ed25519:"+masterPub, masterPub); err != nil {
				return invalidSignature("%s is not signed by the master key: %v", k.field, err)
			}
			toStore[k.usage] = k.raw
			pubs = append(pubs, pub)
		}
		// A key named like a device would make signatures ambiguous
		// (the spec's 403).
		for _, pub := range pubs {
			var n int
			if err := tx.QueryRowContext(ctx, `
SELECT (SELECT COUNT(*) FROM ua_devices WHERE user_id = $1 AND device_id = $2)
	+ (SELECT COUNT(*) FROM ua_dehydrated_devices WHERE user_id = $1 AND device_id = $2)`, req.UserID, pub).Scan(&n); err != nil {
				return fmt.Errorf("check device IDs of %s: %w", req.UserID, err)
			}
			if n > 0 {
				return mxerr.New(http.StatusForbidden, "M_FORBIDDEN", "a cross-signing key has the same ID as a device")
			}
		}
		for typ, raw := range toStore {
			cleaned, err := clean(raw)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `
INSERT INTO ua_cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)
ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json`, req.UserID, typ, string(cleaned)); err != nil {
				return fmt.Errorf("store %s key of %s: %w", typ, req.UserID, err)
			}
		}
		return recordKeyChange(ctx, tx, req.UserID)
	})
	if err != nil {
		return nil, err
	}
	u.nudgeOutbox()
	return &UploadCrossSigningResponse{}, nil
}

// sigFailure is one entry of the failures map.
func sigFailure(code, format string, args ...any) map[string]string {
	return map[string]string{"errcode": code, "error": fmt.Sprintf(format, args...)}
}

// maxSignedObjects bounds one /keys/signatures/upload.
const maxSignedObjects = 1000

// uploadSignatures stores the caller's new signatures over keys: their
// self-signing key over their devices, their devices (or master key) over
// their master key, their user-signing key over other users' master keys.
// Each object is checked on its own; failures are reported per item.
func (u *UserAPI) uploadSignatures(ctx context.Context, req *UploadSignaturesRequest) (*UploadSignaturesResponse, error) {
	n := 0
	for _, m := range req.Signatures {
		n += len(m)
	}
	if n > maxSignedObjects {
		return nil, mxerr.InvalidParam("at most %d signed objects at once", maxSignedObjects)
	}
	resp := &UploadSignaturesResponse{Failures: map[string]map[string]map[string]string{}}
	fail := func(user, key string, f map[string]string) {
		if resp.Failures[user] == nil {
			resp.Failures[user] = map[string]map[string]string{}
		}
		resp.Failures[user][key] = f
	}
	own, err := u.crossSigningKeys(ctx, req.UserID, false)
	if err != nil {
		return nil, err
	}
	changed := map[string]bool{}
	for target, objs := range req.Signatures {
		for keyID, raw := range objs {
			stored, err := u.signOne(ctx, req.UserID, own, target, keyID, raw)
			if err != nil {
				if me, ok := mxerr.As(err); ok {
					fail(target, keyID, sigFailure(me.Code, "%s", me.Message))
					continue
				}
				return nil, err
			}
			if stored {
				changed[target] = true
			}
		}
	}
	if len(changed) > 0 {
		err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
			for user := range changed {
				if err := recordKeyChange(ctx, tx, user); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		u.nudgeOutbox()
	}
	return resp, nil
}

// signOne checks and stores the caller's signatures in one signed object.
func (u *UserAPI) signOne(ctx context.Context, caller string, own map[string]json.RawMessage, target, keyID string, raw json.RawMessage) (bool, error) {
	if len(raw) > maxKeyJSONBytes*4 {
		return false, mxerr.InvalidParam("signed object is too large")
	}
	var obj signedObject
	if err := json.Unmarshal(raw, &obj); err != nil {
		return false, mxerr.BadJSON("signed object: %v", err)
	}
	// The object signed must be the key stored, signatures aside.
	storedKey, err := u.keyFor(ctx, target, keyID)
	if err != nil {
		return false, err
	}
	if storedKey == nil {
		return false, mxerr.NotFound("no key %s of %s", keyID, target)
	}
	if !sameJSON(storedKey, raw, true) {
		return false, mxerr.InvalidParam("the signed object is not the key stored for %s", keyID)
	}
	// Signing keys the caller may use over this target.
	allowed := map[string]string{} // key ID → public key
	addCS := func(typ string) {
		if k := own[typ]; k != nil {
			var o signedObject
			if json.Unmarshal(k, &o) == nil {
				if id, pub, ok := o.onlyKey(); ok {
					allowed[id] = pub
				}
			}
		}
	}
	var targetIsMaster bool
	if cs, err := u.crossSigningKeys(ctx, target, false); err == nil {
		var o signedObject
		if json.Unmarshal(cs["master"], &o) == nil {
			_, pub, _ := o.onlyKey()
			targetIsMaster = pub != "" && pub == keyID
		}
	} else {
		return false, err
	}
	switch {
	case target == caller && targetIsMaster:
		// The caller's devices sign their own master key (verification).
		addCS("master")
		devKeys, err := u.deviceKeysOf(ctx, caller, nil)
		if err != nil {
			return false, err
		}
		for devID, dk := range devKeys {
			var o signedObject
			if json.Unmarshal(dk, &o) == nil {
				if pub := o.Keys["ed25519:"+devID]; pub != "" {
					allowed["ed25519:"+devID] = pub
				}
			}
		}
	case target == caller:
		addCS("self_signing")
		addCS("master")
	case targetIsMaster:
		addCS("user_signing")
	default:
		return false, mxerr.New(http.StatusBadRequest, "M_INVALID_PARAM", "only another user's master key can be signed")
	}
	stored := false
	for sigKeyID, sig := range obj.Signatures[caller] {
		pub, ok := allowed[sigKeyID]
		if !ok {
			continue // signatures already there, or by keys not allowed here
		}
		if err := verifySigned(raw, caller, sigKeyID, pub); err != nil {
			return false, invalidSignature("signature %s does not verify: %v", sigKeyID, err)
		}
		if _, err := u.db.ExecContext(ctx, `
INSERT INTO ua_key_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id) DO UPDATE SET signature = excluded.signature`,
			target, keyID, caller, sigKeyID, sig); err != nil {
			return false, fmt.Errorf("store signature over %s/%s: %w", target, keyID, err)
		}
		stored = true
	}
	if !stored {
		return false, invalidSignature("no signature by a key allowed to sign %s", keyID)
	}
	return true, nil
}

// keyFor is the stored JSON of target's device keyID, or of its
// cross-signing key whose public key is keyID; nil when there is none.
func (u *UserAPI) keyFor(ctx context.Context, target, keyID string) (json.RawMessage, error) {
	devs, err := u.deviceKeysOf(ctx, target, []string{keyID})
	if err != nil {
		return nil, err
	}
	if k, ok := devs[keyID]; ok {
		return k, nil
	}
	cs, err := u.crossSigningKeys(ctx, target, false)
	if err != nil {
		return nil, err
	}
	for _, raw := range cs {
		var o signedObject
		if json.Unmarshal(raw, &o) == nil {
			if _, pub, ok := o.onlyKey(); ok && pub == keyID {
				return raw, nil
			}
		}
	}
	return nil, nil
}
