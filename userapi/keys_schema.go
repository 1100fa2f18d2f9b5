package userapi

// keysSchema is migration 4: the end-to-end encryption tables. Keys are
// stored as the JSON the client uploaded (signatures included): clients
// verify those signatures, so the bytes must round-trip unchanged in
// meaning. Signatures added later by other keys (cross-signing) are kept
// apart in ua_key_signatures and merged into /keys/query answers.
const keysSchema = `
CREATE TABLE ua_device_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- key_id is "<algorithm>:<id>", and a claim deletes the row it hands out.
CREATE TABLE ua_one_time_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, key_id)
);
CREATE INDEX ua_one_time_keys_alg ON ua_one_time_keys (user_id, device_id, algorithm);

-- One fallback key per device and algorithm. used is set when it was
-- handed out (it stays, and is handed out again, until replaced).
CREATE TABLE ua_fallback_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	used BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, device_id, algorithm)
);

-- key_type: master, self_signing or user_signing.
CREATE TABLE ua_cross_signing_keys (
	user_id TEXT NOT NULL,
	key_type TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded through /keys/signatures/upload: signer's key
-- "ed25519:<id>" of signer_user_id over target_user_id's key target_key_id
-- (a device ID or a cross-signing public key).
CREATE TABLE ua_key_signatures (
	target_user_id TEXT NOT NULL,
	target_key_id TEXT NOT NULL,
	signer_user_id TEXT NOT NULL,
	signer_key_id TEXT NOT NULL,
	signature TEXT NOT NULL,
	PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

-- The outbox of the KEY_CHANGES stream (keys_outbox.go): written in the
-- transaction of the change, deleted once published.
CREATE TABLE ua_key_changes (
	id BIGSERIAL PRIMARY KEY,
	user_id TEXT NOT NULL
);

-- Server-side key backups. Versions are numbered per user, and a deleted
-- version keeps its row (deleted) so that its number is never reused.
-- etag grows with every change to the version's keys.
CREATE TABLE ua_backup_versions (
	user_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	algorithm TEXT NOT NULL,
	auth_data TEXT NOT NULL,
	etag BIGINT NOT NULL DEFAULT 0,
	deleted BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, version)
);

CREATE TABLE ua_backup_keys (
	user_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	room_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	first_message_index BIGINT NOT NULL,
	forwarded_count BIGINT NOT NULL,
	is_verified BOOLEAN NOT NULL,
	session_data TEXT NOT NULL,
	PRIMARY KEY (user_id, version, room_id, session_id)
);
`
