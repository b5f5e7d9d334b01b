-- Latchkey schema, version 5: the audit log. Append-only: rows are never
-- updated or deleted (the trigger refuses it). `seq` orders events and is
-- the paging cursor; writers take a transaction-level advisory lock
-- before inserting, so `seq` order is commit order and a reader paging by
-- `seq` never skips an event that commits late. `mode` is NULL for failed authentication that named no
-- credential of a known mode.
CREATE TABLE audit_events (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    mode           TEXT,
    occurred_at    BIGINT NOT NULL,
    action         TEXT NOT NULL,
    actor_type     TEXT NOT NULL,
    actor_id       TEXT,
    target_type    TEXT NOT NULL,
    target_id      TEXT NOT NULL,
    tenant_id      TEXT,
    source_address TEXT,
    details        TEXT NOT NULL
);
CREATE INDEX audit_events_by_target ON audit_events (target_id, seq);
CREATE INDEX audit_events_by_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_by_action ON audit_events (action, seq);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_by_time ON audit_events (occurred_at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
