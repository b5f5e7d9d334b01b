-- Latchkey schema, version 2 (SQLite): API keys and the access-token deny-list.
-- A key has one or more digests: the current value, and previous values that
-- keep working until their rotation grace period ends (expires_at).

CREATE TABLE api_keys (
    mode                     TEXT NOT NULL,
    id                       TEXT NOT NULL,
    user_id                  TEXT NOT NULL,
    tenant_id                TEXT NOT NULL,
    name                     TEXT,
    roles                    TEXT,
    metadata                 TEXT NOT NULL,
    ratelimit_limit          BIGINT,
    ratelimit_window_seconds BIGINT,
    remaining                BIGINT,
    expires_at               BIGINT,
    revoked_at               BIGINT,
    last_used_at             BIGINT,
    created_at               BIGINT NOT NULL,
    PRIMARY KEY (mode, id),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE,
    FOREIGN KEY (mode, tenant_id) REFERENCES tenants (mode, id)
);
CREATE INDEX api_keys_by_user ON api_keys (mode, user_id, id);
CREATE INDEX api_keys_by_tenant ON api_keys (mode, tenant_id, id);

CREATE TABLE api_key_digests (
    digest     TEXT PRIMARY KEY NOT NULL,
    mode       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    expires_at BIGINT,
    FOREIGN KEY (mode, key_id) REFERENCES api_keys (mode, id) ON DELETE CASCADE
);
CREATE INDEX api_key_digests_by_key ON api_key_digests (mode, key_id);

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    mode       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
