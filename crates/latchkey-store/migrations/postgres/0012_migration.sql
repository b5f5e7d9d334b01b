-- Latchkey schema, version 12: migration from other systems.

-- The id a user had in the system it was imported from (an Auth0 client id,
-- a row id): an import finds the user by it, so running it twice changes
-- nothing. Unique per mode when set.
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_by_external_id ON users (mode, external_id);

-- An API key imported from another system (any format), rather than made
-- by Latchkey. Its SHA-256 digest, when known, is in api_key_digests like
-- any key's.
ALTER TABLE api_keys ADD COLUMN legacy BIGINT NOT NULL DEFAULT 0;

-- Imported digests that are not a plain SHA-256 of the value: `sha512`
-- (hex), or a salted hash (`bcrypt`) found by the key's non-secret
-- `prefix`. The first time such a key is presented and matches, its
-- SHA-256 digest joins api_key_digests (with the same expiry), so later
-- checks are a Latchkey key's; the row stays, so an export still has it.
-- Rotating the key gives it the grace period's end (`expires_at`).
CREATE TABLE api_key_legacy_hashes (
    mode       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (mode, key_id),
    FOREIGN KEY (mode, key_id) REFERENCES api_keys (mode, id) ON DELETE CASCADE
);
CREATE INDEX api_key_legacy_hashes_by_prefix ON api_key_legacy_hashes (mode, algorithm, prefix);
CREATE INDEX api_key_legacy_hashes_by_hash ON api_key_legacy_hashes (mode, hash);
