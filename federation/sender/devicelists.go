package sender

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/userapi"
)

// Device lists. The userapi announces on KEY_CHANGES that a local user's
// devices or cross-signing keys changed, without saying what changed. The
// sender reads the user's devices and keys, compares each device with
// what it last announced (a digest in fs_device_list_sent) and sends an
// m.device_list_update per new, changed or deleted device, and an
// m.signing_key_update when the master or self-signing key changed, to
// every server sharing a room with the user.
//
// The updates of a user form the sequence the spec asks for: each has the
// next stream_id of the user (fs_device_list_streams) and the previous one
// as its only prev_id, since one consumer emits them in series. A
// destination that missed one sees a prev_id it does not know and asks
// /user/devices, whose stream_id is DeviceListStreamID.

// signingKeysRow is the fs_device_list_sent device ID of the cross-signing
// keys' digest (no device has an empty ID).
const signingKeysRow = ""

// deviceState is what is announced of a device.
type deviceState struct {
	displayName string
	keys        json.RawMessage // nil: no E2E keys uploaded
}

func (d deviceState) digest() string { return digestOf([]byte(d.displayName), d.keys) }

// digestOf hashes parts, each ended by a NUL (no part can pass for the
// end of another).
func digestOf(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// onKeyChange announces the changes of a local user's devices and
// cross-signing keys.
func (s *Sender) onKeyChange(ctx context.Context, _ uint64, kc *userapi.KeyChange) error {
	if mxid.ServerOf(kc.UserID) != s.opts.ServerName {
		return nil
	}
	return s.announceDevices(ctx, kc.UserID)
}

func (s *Sender) announceDevices(ctx context.Context, userID string) error {
	devices, master, selfSigning, err := s.currentDevices(ctx, userID)
	if err != nil {
		return err
	}
	signing := signingDigest(master, selfSigning)
	servers, err := s.serversSharingRooms(ctx, userID)
	if err != nil {
		return err
	}
	return s.queueEDUsIn(ctx, func(tx *sqlutil.Tx) ([]queuedEDU, error) {
		sent, err := sentDigests(ctx, tx, userID)
		if err != nil {
			return nil, err
		}
		updates, digests := deviceUpdates(userID, devices, sent)
		if signing != sent[signingKeysRow] {
			digests[signingKeysRow] = signing
		}
		if err := recordDigests(ctx, tx, userID, digests); err != nil {
			return nil, err
		}
		if err := numberUpdates(ctx, tx, userID, updates); err != nil {
			return nil, err
		}
		var edus []queuedEDU
		for _, u := range updates {
			content, err := json.Marshal(u)
			if err != nil {
				return nil, err
			}
			edus = append(edus, eduFor(servers, "m.device_list_update", "", content)...)
		}
		if _, changed := digests[signingKeysRow]; changed && signing != "" {
			content, err := json.Marshal(signingKeyUpdate(userID, master, selfSigning))
			if err != nil {
				return nil, err
			}
			edus = append(edus, eduFor(servers, "m.signing_key_update", "", content)...)
		}
		return edus, nil
	})
}

// deviceUpdates compares the user's devices with what was announced: the
// m.device_list_update contents to send (stream IDs still to be given),
// in device order, and the digests to record ("" forgets a device).
func deviceUpdates(userID string, devices map[string]deviceState, sent map[string]string) ([]map[string]any, map[string]string) {
	var updates []map[string]any
	digests := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(devices)) {
		d := devices[id]
		digest := d.digest()
		if sent[id] == digest {
			continue
		}
		u := map[string]any{"user_id": userID, "device_id": id}
		if d.displayName != "" {
			u["device_display_name"] = d.displayName
		}
		if d.keys != nil {
			u["keys"] = d.keys
		}
		updates = append(updates, u)
		digests[id] = digest
	}
	for _, id := range slices.Sorted(maps.Keys(sent)) {
		if _, ok := devices[id]; ok || id == signingKeysRow {
			continue
		}
		updates = append(updates, map[string]any{"user_id": userID, "device_id": id, "deleted": true})
		digests[id] = ""
	}
	return updates, digests
}

// signingKeyUpdate is the m.signing_key_update content: the public
// cross-signing keys (the user-signing key is the user's own business).
func signingKeyUpdate(userID string, master, selfSigning json.RawMessage) map[string]any {
	c := map[string]any{"user_id": userID}
	if master != nil {
		c["master_key"] = master
	}
	if selfSigning != nil {
		c["self_signing_key"] = selfSigning
	}
	return c
}

// currentDevices reads the user's devices with their keys, and the
// public cross-signing keys, from the userapi.
func (s *Sender) currentDevices(ctx context.Context, userID string) (devices map[string]deviceState, master, selfSigning json.RawMessage, err error) {
	devices = map[string]deviceState{}
	list, err := userapi.QueryDevices.Call(ctx, s.opts.Bus, &userapi.QueryDevicesRequest{UserID: userID})
	if e, ok := mxerr.As(err); ok && e.Code == "M_NOT_FOUND" {
		list, err = &userapi.QueryDevicesResponse{}, nil // no account: every device is gone
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("devices of %s: %w", userID, err)
	}
	// Requester is the user: the owner's own signatures come with the
	// cross-signing keys (the user-signing key, private, is not used).
	keys, err := userapi.QueryKeys.Call(ctx, s.opts.Bus, &userapi.QueryKeysRequest{
		Requester: userID, DeviceKeys: map[string][]string{userID: {}},
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("keys of %s: %w", userID, err)
	}
	for _, d := range list.Devices {
		devices[d.DeviceID] = deviceState{displayName: d.DisplayName, keys: keys.DeviceKeys[userID][d.DeviceID]}
	}
	return devices, keys.MasterKeys[userID], keys.SelfSigningKeys[userID], nil
}

func signingDigest(master, selfSigning json.RawMessage) string {
	if master == nil && selfSigning == nil {
		return ""
	}
	return digestOf(master, selfSigning)
}

// sentDigests reads what was last announced of the user's devices.
func sentDigests(ctx context.Context, tx *sqlutil.Tx, userID string) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT device_id, digest FROM fs_device_list_sent WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read announced devices of %s: %w", userID, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, digest string
		if err := rows.Scan(&id, &digest); err != nil {
			return nil, fmt.Errorf("read announced devices of %s: %w", userID, err)
		}
		out[id] = digest
	}
	return out, rows.Err()
}

// recordDigests records what is now announced of the user's devices
// (device ID → digest, "" for a device gone).
func recordDigests(ctx context.Context, tx *sqlutil.Tx, userID string, digests map[string]string) error {
	for id, digest := range digests {
		var err error
		if digest == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM fs_device_list_sent WHERE user_id = $1 AND device_id = $2`, userID, id)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO fs_device_list_sent (user_id, device_id, digest) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, device_id) DO UPDATE SET digest = excluded.digest`, userID, id, digest)
		}
		if err != nil {
			return fmt.Errorf("record announced device %q of %s: %w", id, userID, err)
		}
	}
	return nil
}

// numberUpdates gives each update the user's next stream_id, and the one
// before as prev_id.
func numberUpdates(ctx context.Context, tx *sqlutil.Tx, userID string, updates []map[string]any) error {
	if len(updates) == 0 {
		return nil
	}
	prev, err := streamID(ctx, tx, userID)
	if err != nil {
		return err
	}
	for _, u := range updates {
		next := prev + 1
		u["stream_id"] = next
		if prev > 0 {
			u["prev_id"] = []int64{prev}
		}
		prev = next
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO fs_device_list_streams (user_id, stream_id) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id`, userID, prev)
	if err != nil {
		return fmt.Errorf("record device-list stream of %s: %w", userID, err)
	}
	return nil
}

func streamID(ctx context.Context, q sqlutil.Querier, userID string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT stream_id FROM fs_device_list_streams WHERE user_id = $1`, userID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read device-list stream of %s: %w", userID, err)
	}
	return id, nil
}

// DeviceListStreamID is the stream_id of the last m.device_list_update of
// a local user (0 before the first): what /user/devices answers, so that
// the asking server can tell which later updates follow from its copy.
func (s *Sender) DeviceListStreamID(ctx context.Context, userID string) (int64, error) {
	return streamID(ctx, s.opts.DB, userID)
}
