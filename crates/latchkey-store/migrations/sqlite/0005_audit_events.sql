-- Latchkey schema, version 5: the audit log. Append-only: rows are never
-- updated or deleted (the triggers refuse it). `seq` orders events and is
-- the paging cursor. `mode` is NULL for failed authentication that named no
-- credential of a known mode.
CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
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

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
