package userapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
)

// Signatures are checked with gomatrixserverlib's canonical JSON and
// VerifyJSON (signatures and unsigned stripped), the same code that checks
// events, rather than a canonicaliser of our own.

// decodeKey reads an unpadded (or padded) base64 ed25519 public key.
func decodeKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("key is not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key is %d bytes, not %d", len(b), ed25519.PublicKeySize)
	}
	return b, nil
}

// verifySigned checks obj's signature by signer's key keyID ("ed25519:X")
// whose public key is pub (base64).
func verifySigned(obj []byte, signer, keyID, pub string) error {
	key, err := decodeKey(pub)
	if err != nil {
		return err
	}
	return gomatrixserverlib.VerifyJSON(signer, gomatrixserverlib.KeyID(keyID), key, obj)
}

// sameJSON compares two JSON values in canonical form, ignoring
// signatures and unsigned when strip is set.
func sameJSON(a, b []byte, strip bool) bool {
	ca, err1 := canonicalStripped(a, strip)
	cb, err2 := canonicalStripped(b, strip)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

func canonicalStripped(v []byte, strip bool) ([]byte, error) {
	if strip {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err == nil {
			delete(obj, "signatures")
			delete(obj, "unsigned")
			if v2, err := json.Marshal(obj); err == nil {
				v = v2
			}
		}
	}
	return gomatrixserverlib.CanonicalJSON(v)
}

// signedObject is the part of device keys and cross-signing keys that the
// server reads.
type signedObject struct {
	UserID     string                       `json:"user_id"`
	DeviceID   string                       `json:"device_id,omitempty"`
	Usage      []string                     `json:"usage,omitempty"`
	Algorithms []string                     `json:"algorithms,omitempty"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures,omitempty"`
}

// onlyKey is the single ed25519 key of a cross-signing key: its key ID
// ("ed25519:<pub>") and public key.
func (o *signedObject) onlyKey() (keyID, pub string, ok bool) {
	if len(o.Keys) != 1 {
		return "", "", false
	}
	for id, k := range o.Keys {
		if !strings.HasPrefix(id, "ed25519:") || id != "ed25519:"+k {
			return "", "", false
		}
		return id, k, true
	}
	return "", "", false
}

// mergeSignatures adds extra signatures (signer → key ID → signature) to
// the stored JSON object raw.
func mergeSignatures(raw []byte, extra map[string]map[string]string) ([]byte, error) {
	if len(extra) == 0 {
		return raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("stored key: %w", err)
	}
	sigs := map[string]map[string]string{}
	if s, ok := obj["signatures"]; ok {
		if err := json.Unmarshal(s, &sigs); err != nil {
			return nil, fmt.Errorf("stored signatures: %w", err)
		}
	}
	for signer, m := range extra {
		if sigs[signer] == nil {
			sigs[signer] = map[string]string{}
		}
		for k, v := range m {
			sigs[signer][k] = v
		}
	}
	b, err := json.Marshal(sigs)
	if err != nil {
		return nil, err
	}
	obj["signatures"] = b
	return json.Marshal(obj)
}
