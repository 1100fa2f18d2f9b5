package userapi

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// migrations of the ua_ tables. Released migrations are never edited; a
// schema change is a new entry.
//
// Rows are keyed by the full user ID: it is what every other component
// speaks, so a token lookup returns it without string building. Times are
// Unix milliseconds.
var migrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
CREATE TABLE ua_accounts (
	user_id TEXT PRIMARY KEY,
	-- bcrypt hash, '' meaning the account cannot log in with a password.
	password_hash TEXT NOT NULL DEFAULT '',
	is_admin BOOLEAN NOT NULL DEFAULT FALSE,
	is_deactivated BOOLEAN NOT NULL DEFAULT FALSE,
	created_ms BIGINT NOT NULL
);

CREATE TABLE ua_profiles (
	user_id TEXT PRIMARY KEY REFERENCES ua_accounts (user_id),
	displayname TEXT NOT NULL DEFAULT '',
	avatar_url TEXT NOT NULL DEFAULT ''
);

CREATE TABLE ua_devices (
	user_id TEXT NOT NULL REFERENCES ua_accounts (user_id),
	device_id TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	created_ms BIGINT NOT NULL,
	last_seen_ms BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- Only the SHA-256 of a token is stored: a leaked table grants nothing.
CREATE TABLE ua_access_tokens (
	token_hash BYTEA PRIMARY KEY,
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	FOREIGN KEY (user_id, device_id) REFERENCES ua_devices (user_id, device_id)
);
CREATE INDEX ua_access_tokens_device ON ua_access_tokens (user_id, device_id);

-- Shared-secret registration nonces, in the database so that any
-- clientapi process can check a nonce another one issued.
CREATE TABLE ua_nonces (
	nonce TEXT PRIMARY KEY,
	expires_ms BIGINT NOT NULL
);
CREATE INDEX ua_nonces_expiry ON ua_nonces (expires_ms);
`,
}, {
	Version: 2,
	SQL: `
-- 0: the token never expires. Refreshable access tokens (MSC2918) expire.
ALTER TABLE ua_access_tokens ADD COLUMN expires_ms BIGINT NOT NULL DEFAULT 0;

-- Refresh tokens are single-use: /refresh deletes the row and writes a new one.
CREATE TABLE ua_refresh_tokens (
	token_hash BYTEA PRIMARY KEY,
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	expires_ms BIGINT NOT NULL, -- 0: never
	FOREIGN KEY (user_id, device_id) REFERENCES ua_devices (user_id, device_id)
);
CREATE INDEX ua_refresh_tokens_device ON ua_refresh_tokens (user_id, device_id);

-- Short-lived single-use m.login.token tokens from /login/get_token.
CREATE TABLE ua_login_tokens (
	token_hash BYTEA PRIMARY KEY,
	user_id TEXT NOT NULL,
	expires_ms BIGINT NOT NULL
);
CREATE INDEX ua_login_tokens_expiry ON ua_login_tokens (expires_ms);

-- User-interactive auth sessions, in the database so that a session begun
-- on one clientapi process can finish on another. route binds a session to
-- the operation it authorises, user_id ('' for registration) to its user.
-- completed is a JSON array of stage types. reg_token is the registration
-- token this session reserved (its pending count is released if the
-- session expires unused).
CREATE TABLE ua_uia_sessions (
	session_id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	route TEXT NOT NULL,
	completed TEXT NOT NULL DEFAULT '[]',
	reg_token TEXT NOT NULL DEFAULT '',
	expires_ms BIGINT NOT NULL
);
CREATE INDEX ua_uia_sessions_expiry ON ua_uia_sessions (expires_ms);

-- Synapse-compatible registration tokens. uses_allowed and expiry_ms NULL
-- mean unlimited. pending counts UIA sessions that passed the stage but
-- have not registered yet, completed counts registrations.
CREATE TABLE ua_registration_tokens (
	token TEXT PRIMARY KEY,
	uses_allowed BIGINT,
	pending BIGINT NOT NULL DEFAULT 0,
	completed BIGINT NOT NULL DEFAULT 0,
	expiry_ms BIGINT
);
`,
}, {
	Version: 3,
	SQL: `
-- Account moderation (spec: account locking and suspension). A locked
-- account's tokens stay valid but every request is refused, a suspended
-- one may read but not act.
ALTER TABLE ua_accounts ADD COLUMN is_suspended BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE ua_accounts ADD COLUMN is_locked BOOLEAN NOT NULL DEFAULT FALSE;

-- Extended profile fields (spec v1.16): one row per field, the value as
-- JSON text. displayname and avatar_url stay in ua_profiles.
CREATE TABLE ua_profile_fields (
	user_id TEXT NOT NULL REFERENCES ua_accounts (user_id),
	field TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (user_id, field)
);

-- OpenID tokens that other servers exchange for the user's identity
-- (federation openid/userinfo). Only the SHA-256 is stored.
CREATE TABLE ua_openid_tokens (
	token_hash BYTEA PRIMARY KEY,
	user_id TEXT NOT NULL,
	expires_ms BIGINT NOT NULL
);
CREATE INDEX ua_openid_tokens_expiry ON ua_openid_tokens (expires_ms);

-- Reports about users (POST /users/{userId}/report) for the moderators.
CREATE TABLE ua_user_reports (
	report_id BIGSERIAL PRIMARY KEY,
	target_user_id TEXT NOT NULL,
	reporter TEXT NOT NULL,
	reason TEXT NOT NULL,
	received_ms BIGINT NOT NULL
);
`,
}, {
	Version: 4,
	SQL:     keysSchema, // keys_schema.go: end-to-end encryption keys and backups
}}
