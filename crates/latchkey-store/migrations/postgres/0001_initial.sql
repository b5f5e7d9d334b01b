-- Latchkey schema, version 1 (PostgreSQL).
-- Every record but the workspace carries its mode; keys are (mode, id), so the
-- test and live partitions never share a row. Times are Unix milliseconds,
-- booleans 0/1, JSON objects text: the same column types on both backends.

CREATE TABLE workspace (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tenants (
    mode       TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    parent_id  TEXT,
    cascades   BIGINT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (mode, id),
    FOREIGN KEY (mode, parent_id) REFERENCES tenants (mode, id)
);
CREATE INDEX tenants_by_parent ON tenants (mode, parent_id, id);

CREATE TABLE users (
    mode              TEXT NOT NULL,
    id                TEXT NOT NULL,
    kind              TEXT NOT NULL,
    name              TEXT NOT NULL,
    email             TEXT,
    username          TEXT,
    phone_number      TEXT,
    metadata          TEXT NOT NULL,
    custom_claims     TEXT NOT NULL,
    disabled          BIGINT NOT NULL,
    token_ttl_seconds BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (mode, id),
    UNIQUE (mode, username)
);

CREATE TABLE memberships (
    mode       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    roles      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mode, tenant_id, user_id),
    FOREIGN KEY (mode, tenant_id) REFERENCES tenants (mode, id),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE
);
CREATE INDEX memberships_by_user ON memberships (mode, user_id);

CREATE TABLE roles (
    mode        TEXT NOT NULL,
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL,
    description TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (mode, name)
);

CREATE TABLE client_secrets (
    mode       TEXT NOT NULL,
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    name       TEXT,
    digest     TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (mode, id),
    FOREIGN KEY (mode, user_id) REFERENCES users (mode, id) ON DELETE CASCADE
);
CREATE INDEX client_secrets_by_user ON client_secrets (mode, user_id);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    mode          TEXT NOT NULL,
    alg           TEXT NOT NULL,
    private_pkcs8 TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE admin_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    mode       TEXT NOT NULL,
    digest     TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
