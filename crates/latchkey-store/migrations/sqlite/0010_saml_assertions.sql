-- SAML assertion ids accepted, each once per provider, remembered until
-- the assertion could no longer be accepted anyway (its NotOnOrAfter
-- plus the skew), so that a replayed assertion is refused on every node.
CREATE TABLE saml_assertions (
    mode          TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    assertion_id  TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (mode, provider_id, assertion_id)
);
CREATE INDEX saml_assertions_expiry ON saml_assertions (expires_at);
