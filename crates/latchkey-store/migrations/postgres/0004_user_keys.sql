-- Latchkey schema, version 4: public keys registered on users (for
-- private_key_jwt and the JWT-bearer grant), and the assertion ids already
-- used, kept until the assertion expires so a replay is refused.
CREATE TABLE user_keys (
    mode       TEXT NOT NULL,
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    kid        TEXT NOT NULL,
    alg        TEXT NOT NULL,
    jwk        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (mode, id),
    UNIQUE (mode, user_id, kid),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE
);

CREATE TABLE used_assertions (
    id         TEXT PRIMARY KEY NOT NULL,
    mode       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_assertions_by_expiry ON used_assertions (expires_at);
