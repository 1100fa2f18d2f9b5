package userapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// claimRounds bounds the retries of devices whose chosen one-time key a
// concurrent claim took first.
const claimRounds = 10

// claimTarget is one device whose key is claimed.
type claimTarget struct{ user, device, alg string }

// claimKeys hands out one key per requested device: a one-time key, else
// the fallback key (marked used; it is handed out again until replaced).
// However many devices are asked for, it takes one statement per round of
// one-time keys and one for the fallback keys.
func (u *UserAPI) claimKeys(ctx context.Context, req *ClaimKeysRequest) (*ClaimKeysResponse, error) {
	if len(req.OneTimeKeys) > maxQueryUsers {
		return nil, mxerr.InvalidParam("at most %d users per claim", maxQueryUsers)
	}
	var targets []claimTarget
	for userID, devices := range req.OneTimeKeys {
		for deviceID, alg := range devices {
			targets = append(targets, claimTarget{userID, deviceID, alg})
		}
	}
	resp := &ClaimKeysResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}}
	give := func(t claimTarget, id, key string) {
		if resp.OneTimeKeys[t.user] == nil {
			resp.OneTimeKeys[t.user] = map[string]map[string]json.RawMessage{}
		}
		resp.OneTimeKeys[t.user][t.device] = map[string]json.RawMessage{id: json.RawMessage(key)}
	}
	left := targets
	for round := 0; len(left) > 0 && round < claimRounds; round++ {
		got, err := u.claimOneTimeKeys(ctx, left)
		if err != nil {
			return nil, err
		}
		var missed []claimTarget
		for _, t := range left {
			if k, ok := got[devKey(t)]; ok {
				give(t, k.id, k.key)
			} else {
				missed = append(missed, t)
			}
		}
		// A device not served had no key left (the fallback key below), or
		// a concurrent claim took the key chosen (try again).
		if left, err = u.withOneTimeKeys(ctx, missed); err != nil {
			return nil, err
		}
	}
	var noOTK []claimTarget
	for _, t := range targets {
		if resp.OneTimeKeys[t.user][t.device] == nil {
			noOTK = append(noOTK, t)
		}
	}
	fallbacks, err := u.claimFallbackKeys(ctx, noOTK)
	if err != nil {
		return nil, err
	}
	for _, t := range noOTK {
		if k, ok := fallbacks[devKey(t)]; ok {
			give(t, k.id, k.key)
		}
	}
	return resp, nil
}

// claimedKey is a key handed out.
type claimedKey struct{ id, key string }

// devKey is the (user, device) of a target, what results are keyed by.
func devKey(t claimTarget) claimTarget { return claimTarget{t.user, t.device, ""} }

// claimArgs are the arguments of a VALUES list of targets.
func claimArgs(padded []claimTarget) []any {
	args := make([]any, 0, 3*len(padded))
	for _, t := range padded {
		args = append(args, t.user, t.device, t.alg)
	}
	return args
}

// claimOneTimeKeys deletes, for each target device, its one-time key of
// the algorithm with the lowest ID, and returns the keys by devKey. The
// DELETE decides: of two claims racing for the same row only one gets it
// back, and the other finds the device missing from its result.
func (u *UserAPI) claimOneTimeKeys(ctx context.Context, targets []claimTarget) (map[claimTarget]claimedKey, error) {
	got := map[claimTarget]claimedKey{}
	err := chunks(targets, func(padded []claimTarget) error {
		return u.returnKeys(ctx, got, "claim one-time keys", `
DELETE FROM ua_one_time_keys
WHERE (user_id, device_id, key_id) IN (
	SELECT user_id, device_id, MIN(key_id) FROM ua_one_time_keys
	WHERE (user_id, device_id, algorithm) IN (VALUES `+tupleList(1, 3, len(padded))+`)
	GROUP BY user_id, device_id, algorithm)
RETURNING user_id, device_id, key_id, key_json`, claimArgs(padded))
	})
	return got, err
}

// withOneTimeKeys keeps the targets that still have a one-time key of
// their algorithm.
func (u *UserAPI) withOneTimeKeys(ctx context.Context, targets []claimTarget) ([]claimTarget, error) {
	has := map[claimTarget]bool{}
	err := chunks(targets, func(padded []claimTarget) error {
		rows, err := u.db.QueryContext(ctx, `
SELECT DISTINCT user_id, device_id FROM ua_one_time_keys
WHERE (user_id, device_id, algorithm) IN (VALUES `+tupleList(1, 3, len(padded))+`)`, claimArgs(padded)...)
		if err != nil {
			return fmt.Errorf("find one-time keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k claimTarget
			if err := rows.Scan(&k.user, &k.device); err != nil {
				return fmt.Errorf("scan one-time key: %w", err)
			}
			has[k] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	var out []claimTarget
	for _, t := range targets {
		if has[devKey(t)] {
			out = append(out, t)
		}
	}
	return out, nil
}

// returnKeys runs a statement returning (user_id, device_id, key_id,
// key_json) rows and adds them to got.
func (u *UserAPI) returnKeys(ctx context.Context, got map[claimTarget]claimedKey, what, query string, args []any) error {
	rows, err := u.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t claimTarget
		var k claimedKey
		if err := rows.Scan(&t.user, &t.device, &k.id, &k.key); err != nil {
			return fmt.Errorf("%s: scan: %w", what, err)
		}
		got[t] = k
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// claimFallbackKeys marks the targets' fallback keys used and returns them
// by devKey.
func (u *UserAPI) claimFallbackKeys(ctx context.Context, targets []claimTarget) (map[claimTarget]claimedKey, error) {
	got := map[claimTarget]claimedKey{}
	err := chunks(targets, func(padded []claimTarget) error {
		return u.returnKeys(ctx, got, "claim fallback keys", `
UPDATE ua_fallback_keys SET used = TRUE
WHERE (user_id, device_id, algorithm) IN (VALUES `+tupleList(1, 3, len(padded))+`)
RETURNING user_id, device_id, key_id, key_json`, claimArgs(padded))
	})
	return got, err
}
