package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Profile limits, Synapse's: a display name of 256 characters, an avatar
// URL of 1000 bytes.
const (
	MaxDisplayNameChars = 256
	MaxAvatarURLBytes   = 1000
	maxSearchTermBytes  = 256
	maxSearchLimit      = 100
	defaultSearchLimit  = 10
)

// CheckProfile validates profile values before they are stored or sent.
func CheckProfile(displayName, avatarURL *string) error {
	if displayName != nil && utf8.RuneCountInString(*displayName) > MaxDisplayNameChars {
		return mxerr.InvalidParam("displayname is longer than %d characters", MaxDisplayNameChars)
	}
	if avatarURL != nil {
		if len(*avatarURL) > MaxAvatarURLBytes {
			return mxerr.InvalidParam("avatar_url is longer than %d bytes", MaxAvatarURLBytes)
		}
		if *avatarURL != "" && !strings.HasPrefix(*avatarURL, "mxc://") {
			return mxerr.InvalidParam("avatar_url must be an mxc:// URI")
		}
	}
	return nil
}

func (u *UserAPI) setProfile(ctx context.Context, req *SetProfileRequest) (*SetProfileResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.Forbidden("%s is not a user of this server", req.UserID)
	}
	if err := CheckProfile(req.DisplayName, req.AvatarURL); err != nil {
		return nil, err
	}
	var resp SetProfileResponse
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var old Profile
		err := tx.QueryRowContext(ctx, `SELECT p.displayname, p.avatar_url FROM ua_profiles p
			JOIN ua_accounts a ON a.user_id = p.user_id WHERE p.user_id = $1 AND NOT a.is_deactivated`, userID).
			Scan(&old.DisplayName, &old.AvatarURL)
		if errors.Is(err, sql.ErrNoRows) {
			return mxerr.NotFound("no such user %s", userID)
		}
		if err != nil {
			return fmt.Errorf("read profile of %s: %w", userID, err)
		}
		resp.Profile = old
		if req.DisplayName != nil {
			resp.Profile.DisplayName = *req.DisplayName
		}
		if req.AvatarURL != nil {
			resp.Profile.AvatarURL = *req.AvatarURL
		}
		if resp.Profile == old {
			return nil
		}
		resp.Changed = true
		if _, err := tx.ExecContext(ctx, `UPDATE ua_profiles SET displayname = $2, avatar_url = $3 WHERE user_id = $1`,
			userID, resp.Profile.DisplayName, resp.Profile.AvatarURL); err != nil {
			return fmt.Errorf("update profile of %s: %w", userID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// searchUsers finds active local users whose ID or display name contains
// the term, case-insensitively. Every local user is searchable: the
// servers Chappe is built for are closed directories of colleagues.
func (u *UserAPI) searchUsers(ctx context.Context, req *SearchUsersRequest) (*SearchUsersResponse, error) {
	term := strings.ToLower(strings.TrimSpace(req.SearchTerm))
	if term == "" {
		return nil, mxerr.MissingParam("search_term is required")
	}
	if len(term) > maxSearchTermBytes {
		return nil, mxerr.InvalidParam("search_term is longer than %d bytes", maxSearchTermBytes)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	pattern := "%" + escapeLike(term) + "%"
	// One row more than the limit tells whether results were cut.
	rows, err := u.db.QueryContext(ctx, `SELECT p.user_id, p.displayname, p.avatar_url FROM ua_profiles p
		JOIN ua_accounts a ON a.user_id = p.user_id
		WHERE NOT a.is_deactivated AND (LOWER(p.user_id) LIKE $1 ESCAPE '\' OR LOWER(p.displayname) LIKE $1 ESCAPE '\')
		ORDER BY p.user_id LIMIT $2`, pattern, limit+1)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	resp := &SearchUsersResponse{Results: []UserSearchResult{}}
	for rows.Next() {
		var r UserSearchResult
		if err := rows.Scan(&r.UserID, &r.DisplayName, &r.AvatarURL); err != nil {
			return nil, fmt.Errorf("scan user: %w", err)
		}
		resp.Results = append(resp.Results, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	if len(resp.Results) > limit {
		resp.Results, resp.Limited = resp.Results[:limit], true
	}
	return resp, nil
}

// escapeLike makes LIKE's wildcards in s match themselves.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
