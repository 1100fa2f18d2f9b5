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
}}
