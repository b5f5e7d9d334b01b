-- Latchkey schema, version 8: federation.

-- Issuers whose JWTs (Kubernetes service-account tokens, CI jobs' OIDC
-- tokens) the token endpoint exchanges for Latchkey tokens. `config` is the
-- wire JSON of `PUT /v1/trusted-issuers/{id}`; `issuer` is copied out of it
-- so that one `iss` names one trusted issuer per mode.
CREATE TABLE trusted_issuers (
    mode        TEXT NOT NULL,
    id          TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (mode, id),
    UNIQUE (mode, issuer)
);
