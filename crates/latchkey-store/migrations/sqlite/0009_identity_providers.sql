-- Latchkey schema, version 9: SSO with identity providers.

-- A provider's configuration (the wire JSON of
-- `PUT /v1/identity-providers/{id}` without its client secret), and the
-- client secret sealed under the master key.
CREATE TABLE identity_providers (
    mode           TEXT NOT NULL,
    id             TEXT NOT NULL,
    config         TEXT NOT NULL,
    secret_sealed  TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (mode, id)
);

-- Which user a provider's subject is. A user's identities go with it.
CREATE TABLE user_identities (
    mode         TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (mode, provider_id, subject),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE
);
CREATE INDEX user_identities_user ON user_identities (mode, user_id);

-- A browser sent to a provider and not back yet: found by the digest of
-- its `state`, used once. The PKCE verifier is sealed; the nonce is echoed
-- in the ID token anyway.
CREATE TABLE sso_flows (
    mode             TEXT NOT NULL,
    state_digest     TEXT NOT NULL,
    login_id         TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    nonce            TEXT NOT NULL,
    verifier_sealed  TEXT NOT NULL,
    client_state     TEXT,
    expires_at       BIGINT NOT NULL,
    PRIMARY KEY (mode, state_digest)
);
