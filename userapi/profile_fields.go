package userapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// The spec's limits on extended profiles (v1.16).
const (
	MaxProfileKeyBytes = 255
	MaxProfileBytes    = 64 * 1024
)

// queryProfileFields reads a local user's extended fields; M_NOT_FOUND
// for an unknown account. A deactivated one keeps its profile, as with
// QueryProfile, unless it was erased.
func (u *UserAPI) queryProfileFields(ctx context.Context, req *QueryProfileRequest) (*ProfileFields, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.NotFound("no profile for %s on this server", req.UserID)
	}
	var resp ProfileFields
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_accounts WHERE user_id = $1`, userID).Scan(&n); err != nil {
			return fmt.Errorf("look up account %s: %w", userID, err)
		}
		if n == 0 {
			return mxerr.NotFound("no such user %s", userID)
		}
		fields, err := readProfileFields(ctx, tx, userID)
		resp.Fields = fields
		return err
	})
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

func readProfileFields(ctx context.Context, tx *sqlutil.Tx, userID string) (map[string]json.RawMessage, error) {
	rows, err := tx.QueryContext(ctx, `SELECT field, value FROM ua_profile_fields WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read profile fields of %s: %w", userID, err)
	}
	defer rows.Close()
	fields := map[string]json.RawMessage{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("scan profile field: %w", err)
		}
		fields[k] = json.RawMessage(v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile fields of %s: %w", userID, err)
	}
	return fields, nil
}

// activeAccount is M_NOT_FOUND unless userID is an active account.
func activeAccount(ctx context.Context, tx *sqlutil.Tx, userID string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ua_accounts WHERE user_id = $1 AND NOT is_deactivated`, userID).Scan(&n); err != nil {
		return fmt.Errorf("look up account %s: %w", userID, err)
	}
	if n == 0 {
		return mxerr.NotFound("no such user %s", userID)
	}
	return nil
}

// setProfileField writes or deletes one extended field. The whole
// profile, as GET /profile/{userId} would encode it, must stay within
// 64 KiB: checked in the transaction so two concurrent writes cannot
// both squeeze under the limit.
func (u *UserAPI) setProfileField(ctx context.Context, req *SetProfileFieldRequest) (*Empty, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.Forbidden("%s is not a user of this server", req.UserID)
	}
	if err := CheckProfileField(req.Field); err != nil {
		return nil, err
	}
	if req.Field == "displayname" || req.Field == "avatar_url" {
		return nil, mxerr.InvalidParam("%s is set with SetProfile", req.Field)
	}
	if !req.Delete && !json.Valid(req.Value) {
		return nil, mxerr.BadJSON("the value of %s is not JSON", req.Field)
	}
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if err := activeAccount(ctx, tx, userID); err != nil {
			return err
		}
		if req.Delete {
			_, err := tx.ExecContext(ctx, `DELETE FROM ua_profile_fields WHERE user_id = $1 AND field = $2`, userID, req.Field)
			if err != nil {
				return fmt.Errorf("delete profile field: %w", err)
			}
			return nil
		}
		fields, err := readProfileFields(ctx, tx, userID)
		if err != nil {
			return err
		}
		var name, avatar string
		if err := tx.QueryRowContext(ctx, `SELECT displayname, avatar_url FROM ua_profiles WHERE user_id = $1`, userID).
			Scan(&name, &avatar); err != nil {
			return fmt.Errorf("read profile of %s: %w", userID, err)
		}
		fields[req.Field] = req.Value
		if size := profileSize(name, avatar, fields); size > MaxProfileBytes {
			return mxerr.New(400, "M_PROFILE_TOO_LARGE", "the profile would be %d bytes, over %d", size, MaxProfileBytes)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ua_profile_fields (user_id, field, value) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value`, userID, req.Field, string(req.Value))
		if err != nil {
			return fmt.Errorf("store profile field: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// CheckProfileField validates a field name: 1 to 255 bytes
// (M_KEY_TOO_LARGE past that, as the spec says).
func CheckProfileField(field string) error {
	if field == "" {
		return mxerr.MissingParam("the profile field name is empty")
	}
	if len(field) > MaxProfileKeyBytes {
		return mxerr.New(400, "M_KEY_TOO_LARGE", "profile field names are at most %d bytes", MaxProfileKeyBytes)
	}
	return nil
}

// profileSize is the length of the profile's JSON encoding.
func profileSize(name, avatar string, fields map[string]json.RawMessage) int {
	all := make(map[string]json.RawMessage, len(fields)+2)
	for k, v := range fields {
		all[k] = v
	}
	for k, v := range map[string]string{"displayname": name, "avatar_url": avatar} {
		if v != "" {
			all[k], _ = json.Marshal(v)
		}
	}
	data, err := json.Marshal(all)
	if err != nil {
		return MaxProfileBytes + 1 // not encodable: refuse rather than store
	}
	return len(data)
}
