package userapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// maxDeviceIDBytes bounds client-chosen device IDs.
const maxDeviceIDBytes = 255

// errBadLogin is the one answer to a wrong user name or password, so that
// the answer does not tell which accounts exist.
func errBadLogin() error { return mxerr.Forbidden("Invalid username or password") }

func (u *UserAPI) login(ctx context.Context, req *LoginRequest) (*LoginResponse, error) {
	if err := checkPasswordLength(req.Password); err != nil {
		return nil, err
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return nil, err
	}
	if req.LoginToken != "" {
		userID, err := u.consumeLoginToken(ctx, req.LoginToken)
		if err != nil {
			return nil, err
		}
		return u.startSession(ctx, userID, req)
	}
	userID, err := u.loginUserID(req.User)
	if err != nil {
		return nil, err
	}
	var hash string
	var deactivated bool
	if userID != "" {
		err := u.db.QueryRowContext(ctx, `SELECT password_hash, is_deactivated FROM ua_accounts WHERE user_id = $1`, userID).
			Scan(&hash, &deactivated)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("look up account %s: %w", userID, err)
		}
	}
	// Unknown users and password-less accounts are checked against a dummy
	// hash (hash == ""), so they cost the same time as a wrong password.
	ok, err := checkPassword(ctx, hash, req.Password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBadLogin()
	}
	// Said only to whoever knows the password.
	if deactivated {
		return nil, errDeactivated()
	}
	return u.startSession(ctx, userID, req)
}

func errDeactivated() error {
	return mxerr.New(http.StatusForbidden, "M_USER_DEACTIVATED", "this account has been deactivated")
}

// startSession gives an authenticated user a device and its tokens.
func (u *UserAPI) startSession(ctx context.Context, userID string, req *LoginRequest) (*LoginResponse, error) {
	if err := u.refuseLocked(ctx, userID); err != nil { // admin_flags.go
		return nil, err
	}
	if err := u.refuseDehydratedLogin(ctx, userID, req.DeviceID); err != nil { // dehydrated.go
		return nil, err
	}
	var issued issuedToken
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var err error
		issued, err = issueToken(ctx, tx, userID, req.DeviceID, req.InitialDisplayName, u.now().UnixMilli(), u.tokenLife(req.RefreshToken))
		return err
	})
	if err != nil {
		return nil, err
	}
	u.revoke(issued.revoked)
	u.log.Debug("login", "user_id", userID, "device_id", issued.deviceID)
	return issued.response(userID), nil
}

// loginUserID turns the login's user (a localpart or a full user ID) into
// the user ID to look up. An identifier that cannot name a local account
// gives "" (and later the same "invalid username or password" as a wrong
// password); a user ID of another server is refused outright, as the spec
// asks.
func (u *UserAPI) loginUserID(user string) (string, error) {
	localpart := user
	if strings.HasPrefix(user, "@") {
		lp, server, ok := splitUserID(user)
		if !ok {
			return "", nil
		}
		if server != u.serverName {
			return "", mxerr.Forbidden("%s is not a user of this server", user)
		}
		localpart = lp
	}
	// Registration only creates lowercase localparts; clients often send
	// the name as the user typed it.
	userID, err := ValidateLocalpart(strings.ToLower(localpart), u.serverName)
	if err != nil {
		return "", nil
	}
	return userID, nil
}

func checkDeviceID(deviceID string) error {
	if len(deviceID) > maxDeviceIDBytes {
		return mxerr.InvalidParam("device_id is longer than %d bytes", maxDeviceIDBytes)
	}
	return nil
}

// issuedToken is a new access token and what it replaced.
type issuedToken struct {
	deviceID     string
	token        string
	expiresInMS  int64    // 0: the access token does not expire
	refreshToken string   // "" unless asked for
	revoked      [][]byte // hashes of the device's previous tokens
}

func (t issuedToken) response(userID string) *LoginResponse {
	return &LoginResponse{UserID: userID, DeviceID: t.deviceID, AccessToken: t.token,
		RefreshToken: t.refreshToken, ExpiresInMS: t.expiresInMS}
}

// tokenLife says whether a session gets a refresh token and how long its
// tokens live, in milliseconds (0: forever).
type tokenLife struct {
	refresh   bool
	accessMS  int64
	refreshMS int64
}

func (u *UserAPI) tokenLife(refresh bool) tokenLife {
	if !refresh {
		return tokenLife{}
	}
	return tokenLife{refresh: true, accessMS: u.accessLifetime.Milliseconds(), refreshMS: u.refreshLifetime.Milliseconds()}
}

// issueToken gives a device a new access token. With a device ID the device
// is created or, if the user already has it, reused: its earlier tokens are
// deleted (and returned, to be announced as revoked). Without one a new
// device with a random ID is created; initialDisplayName names new devices
// only, as the spec says.
func issueToken(ctx context.Context, tx *sqlutil.Tx, userID, deviceID, initialDisplayName string, nowMS int64, life tokenLife) (issuedToken, error) {
	out := issuedToken{deviceID: deviceID}
	if deviceID != "" {
		_, err := tx.ExecContext(ctx, `INSERT INTO ua_devices (user_id, device_id, display_name, created_ms, last_seen_ms)
			VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms`,
			userID, deviceID, initialDisplayName, nowMS)
		if err != nil {
			return out, fmt.Errorf("upsert device %s of %s: %w", deviceID, userID, err)
		}
		if out.revoked, err = deleteTokens(ctx, tx, userID, deviceID); err != nil {
			return out, err
		}
	} else {
		var err error
		if out.deviceID, err = insertRandomDevice(ctx, tx, userID, initialDisplayName, nowMS); err != nil {
			return out, err
		}
	}
	if err := insertTokens(ctx, tx, userID, &out, nowMS, life); err != nil {
		return out, err
	}
	return out, nil
}

// insertTokens stores a new access token for out.deviceID and, if life
// asks for one, a refresh token.
func insertTokens(ctx context.Context, tx *sqlutil.Tx, userID string, out *issuedToken, nowMS int64, life tokenLife) error {
	token, hash := newAccessToken()
	var expiresMS int64
	if life.refresh && life.accessMS > 0 {
		expiresMS = nowMS + life.accessMS
		out.expiresInMS = life.accessMS
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ua_access_tokens (token_hash, user_id, device_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)`,
		hash[:], userID, out.deviceID, nowMS, expiresMS); err != nil {
		return fmt.Errorf("insert access token for %s/%s: %w", userID, out.deviceID, err)
	}
	out.token = token
	if !life.refresh {
		return nil
	}
	refresh, rhash := newRefreshToken()
	var refreshExpiresMS int64
	if life.refreshMS > 0 {
		refreshExpiresMS = nowMS + life.refreshMS
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ua_refresh_tokens (token_hash, user_id, device_id, expires_ms) VALUES ($1, $2, $3, $4)`,
		rhash[:], userID, out.deviceID, refreshExpiresMS); err != nil {
		return fmt.Errorf("insert refresh token for %s/%s: %w", userID, out.deviceID, err)
	}
	out.refreshToken = refresh
	return nil
}

// insertRandomDevice creates a device with a fresh random ID. A collision
// with one of the user's devices is astronomically unlikely, but reusing
// that device silently would hand over its session, so it is checked.
func insertRandomDevice(ctx context.Context, tx *sqlutil.Tx, userID, displayName string, nowMS int64) (string, error) {
	for range 5 {
		deviceID := newDeviceID()
		res, err := tx.ExecContext(ctx, `INSERT INTO ua_devices (user_id, device_id, display_name, created_ms, last_seen_ms)
			VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, device_id) DO NOTHING`,
			userID, deviceID, displayName, nowMS)
		if err != nil {
			return "", fmt.Errorf("insert device of %s: %w", userID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return "", fmt.Errorf("insert device of %s: %w", userID, err)
		} else if n == 1 {
			return deviceID, nil
		}
	}
	return "", fmt.Errorf("no free device ID for %s after 5 attempts", userID)
}

// deleteTokens deletes a device's access and refresh tokens and returns
// the access tokens' hashes.
func deleteTokens(ctx context.Context, tx *sqlutil.Tx, userID, deviceID string) ([][]byte, error) {
	if _, err := tx.ExecContext(ctx, `DELETE FROM ua_refresh_tokens WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
		return nil, fmt.Errorf("delete refresh tokens of %s/%s: %w", userID, deviceID, err)
	}
	rows, err := tx.QueryContext(ctx, `DELETE FROM ua_access_tokens WHERE user_id = $1 AND device_id = $2 RETURNING token_hash`,
		userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("delete tokens of %s/%s: %w", userID, deviceID, err)
	}
	return scanHashes(rows)
}

// deleteDevices deletes one device of the user (or all of them when
// deviceID is "") with their tokens, and returns the tokens' hashes.
func deleteDevices(ctx context.Context, tx *sqlutil.Tx, userID, deviceID string) ([][]byte, error) {
	if err := deleteDeviceKeys(ctx, tx, userID, deviceID); err != nil { // keys_device.go
		return nil, err
	}
	if deviceID != "" {
		revoked, err := deleteTokens(ctx, tx, userID, deviceID)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ua_devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
			return nil, fmt.Errorf("delete device %s of %s: %w", deviceID, userID, err)
		}
		return revoked, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM ua_refresh_tokens WHERE user_id = $1`, userID); err != nil {
		return nil, fmt.Errorf("delete refresh tokens of %s: %w", userID, err)
	}
	rows, err := tx.QueryContext(ctx, `DELETE FROM ua_access_tokens WHERE user_id = $1 RETURNING token_hash`, userID)
	if err != nil {
		return nil, fmt.Errorf("delete tokens of %s: %w", userID, err)
	}
	revoked, err := scanHashes(rows)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM ua_devices WHERE user_id = $1`, userID); err != nil {
		return nil, fmt.Errorf("delete devices of %s: %w", userID, err)
	}
	return revoked, nil
}

func scanHashes(rows *sql.Rows) ([][]byte, error) {
	defer rows.Close()
	var hashes [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("scan token hash: %w", err)
		}
		hashes = append(hashes, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read token hashes: %w", err)
	}
	return hashes, nil
}

// logout deletes one device, or all of the user's, with their tokens. An
// unknown device is not an error: the result (no such session) is the same.
func (u *UserAPI) logout(ctx context.Context, req *LogoutRequest) (*LogoutResponse, error) {
	userID, ok := u.localUserID(req.UserID)
	if !ok {
		return nil, mxerr.InvalidParam("%q is not a user of this server", req.UserID)
	}
	deviceID := req.DeviceID
	if req.All {
		deviceID = ""
	} else if deviceID == "" {
		return nil, mxerr.MissingParam("device_id is required unless all is set")
	}
	var revoked [][]byte
	err := u.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		var err error
		revoked, err = deleteDevices(ctx, tx, userID, deviceID)
		return err
	})
	if err != nil {
		return nil, err
	}
	u.revoke(revoked)
	u.log.Debug("logout", "user_id", userID, "device_id", deviceID, "all", req.All, "tokens_revoked", len(revoked))
	return &LogoutResponse{}, nil
}
