-- Latchkey schema, version 7: login flows and sessions.

-- Whether a user's email and phone number were proven: set by an admin,
-- or by a login that passed a code or link sent there; a changed address
-- is unproven again.
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN phone_verified BIGINT NOT NULL DEFAULT 0;

-- What a user can log in with. Passwords are Argon2id PHC strings; the TOTP
-- secret is sealed under the master key; backup codes are a JSON array of
-- SHA-256 digests of the unused ones. `totp_last_step` makes each code
-- count once: a step is accepted only after the last one used.
CREATE TABLE user_factors (
    mode              TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    password_hash     TEXT,
    totp_secret       TEXT,
    totp_confirmed    BIGINT NOT NULL,
    totp_last_step    BIGINT,
    backup_codes      TEXT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (mode, user_id),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE
);

-- A tenant's own login policy (the wire JSON, every field set).
CREATE TABLE login_policies (
    mode       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    policy     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mode, tenant_id),
    FOREIGN KEY (mode, tenant_id) REFERENCES tenants (mode, id) ON DELETE CASCADE
);

-- Logins in progress. `secret_digest` is the SHA-256 of the login's
-- secret; `user_id` is whom the identifier named (NULL: nobody, and the
-- login fails like a wrong password). `subject` is what throttling counts
-- failures against: the user id, or for an identifier that names nobody a
-- digest of it, so both are throttled alike. One challenge (a sent code or link)
-- at a time, stored as a digest. `session_id` is set, once, when the
-- session is handed out.
CREATE TABLE logins (
    mode                 TEXT NOT NULL,
    id                   TEXT NOT NULL,
    secret_digest        TEXT NOT NULL,
    user_id              TEXT,
    subject              TEXT NOT NULL,
    tenant_id            TEXT NOT NULL,
    redirect_uri         TEXT,
    satisfied            TEXT NOT NULL,
    failures             BIGINT NOT NULL,
    challenge_factor     TEXT,
    challenge_digest     TEXT,
    challenge_expires_at BIGINT,
    challenge_tries      BIGINT NOT NULL,
    session_id           TEXT,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    PRIMARY KEY (mode, id)
);
CREATE INDEX logins_by_expiry ON logins (expires_at);
CREATE INDEX logins_by_challenge ON logins (challenge_digest);

-- Sessions. A session is one refresh-token family: ending it (logout,
-- reuse, admin) ends every token of it.
CREATE TABLE sessions (
    mode                 TEXT NOT NULL,
    id                   TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    tenant_id            TEXT NOT NULL,
    factors              TEXT NOT NULL,
    auth_time            BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    last_used_at         BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    idle_timeout_seconds BIGINT NOT NULL,
    ended_at             BIGINT,
    end_reason           TEXT,
    PRIMARY KEY (mode, id),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE
);
CREATE INDEX sessions_by_user ON sessions (mode, user_id, id);

-- Refresh tokens, by the SHA-256 of their value. A used one keeps its
-- successor, sealed, for the retry window, so a client's retry gets the
-- same answer; any later use ends the session.
CREATE TABLE refresh_tokens (
    digest      TEXT PRIMARY KEY NOT NULL,
    mode        TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT,
    successor   TEXT,
    FOREIGN KEY (mode, session_id) REFERENCES sessions (mode, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (mode, session_id);

-- Messages of test mode without a delivery channel (GET /v1/test-outbox).
CREATE TABLE test_outbox (
    id         TEXT PRIMARY KEY NOT NULL,
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    subject    TEXT,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
