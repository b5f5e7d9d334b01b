//! The audit log: each write's event appended in its own transaction,
//! failed-authentication bursts in batches; read newest first. The table is
//! append-only (triggers refuse updates and deletes), and this module has no
//! statement that would try.

use latchkey_core::clock::{from_unix_ms, to_unix_ms};
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::records::{json_of, to_json};
use crate::{Conditions, PageRequest, PageResult, Store, StoreError, StoreResult};

const AUDIT_COLUMNS: &str = "seq, id, mode, occurred_at, action, actor_type, actor_id, \
     target_type, target_id, tenant_id, source_address, details";

/// The advisory lock key of audit appends on PostgreSQL ("lkaudit").
const AUDIT_LOCK: i64 = 0x006c_6b61_7564_6974;

/// Which events to list. Every filter that is set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only events by this actor id.
    pub actor_id: Option<String>,
    /// Only events about this target id.
    pub target_id: Option<String>,
    /// Only events about this tenant.
    pub tenant_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
}

fn event_of(row: &AnyRow) -> StoreResult<(i64, AuditEvent)> {
    let bad = |what: &str| StoreError::Internal(format!("bad audit {what}").into());
    let mode: Option<String> = row.try_get("mode")?;
    let mode = match mode {
        Some(m) => Some(Mode::parse(&m).ok_or_else(|| bad("mode"))?),
        None => None,
    };
    let action: String = row.try_get("action")?;
    let event = AuditEvent {
        id: row.try_get("id")?,
        time: from_unix_ms(row.try_get::<i64, _>("occurred_at")?),
        mode,
        action: AuditAction::parse(&action).ok_or_else(|| bad("action"))?,
        actor: AuditActor {
            kind: row.try_get("actor_type")?,
            id: row.try_get("actor_id")?,
        },
        target: AuditTarget {
            kind: row.try_get("target_type")?,
            id: row.try_get("target_id")?,
        },
        tenant_id: row.try_get("tenant_id")?,
        source_address: row.try_get("source_address")?,
        details: json_of(row, "details")?,
    };
    Ok((row.try_get("seq")?, event))
}

impl Store {
    /// Appends events that record no write of their own (failed
    /// authentication bursts), all or none, in one transaction. Events of
    /// writes are appended in the write's transaction (`append`).
    pub async fn append_audit_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _timer = self.timed("append_audit_events");
        let mut tx = self.begin_write().await?;
        append(&mut tx, self.backend(), events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events of `mode` (and those of no mode), newest first. The cursor is
    /// the position of the last event of the previous page.
    pub async fn list_audit_events(
        &self,
        mode: Mode,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<PageResult<AuditEvent>> {
        let _timer = self.timed("list_audit_events");
        // Text filters holding U+0000 match nothing (see `Conditions::push`).
        let mut c = Conditions::default();
        c.push("(mode = {} OR mode IS NULL)", mode.as_str());
        if let Some(a) = filter.action {
            c.push("action = {}", a.as_str());
        }
        if let Some(id) = &filter.actor_id {
            c.push("actor_id = {}", id.as_str());
        }
        if let Some(id) = &filter.target_id {
            c.push("target_id = {}", id.as_str());
        }
        if let Some(id) = &filter.tenant_id {
            c.push("tenant_id = {}", id.as_str());
        }
        if let Some(t) = filter.since {
            c.push_int("occurred_at >= {}", to_unix_ms(t));
        }
        if let Some(t) = filter.until {
            c.push_int("occurred_at < {}", to_unix_ms(t));
        }
        if let Some(after) = &page.after {
            let seq: i64 = after
                .parse()
                .map_err(|_| StoreError::Internal("the audit cursor is not a position".into()))?;
            c.push_int("seq < {}", seq);
        }
        // Newest first, so not `Conditions::fetch_page` (ascending by a text key).
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1{} ORDER BY seq DESC LIMIT ${}",
            c.sql,
            c.args.len() + 1
        );
        let rows = c
            .query(&sql)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(event_of).collect::<StoreResult<Vec<_>>>()?;
        let page = PageResult::from_overfetch(items, page.limit, |(seq, _)| seq.to_string());
        Ok(PageResult {
            items: page.items.into_iter().map(|(_, e)| e).collect(),
            next_after: page.next_after,
        })
    }
}

/// Appends `events` in `tx`. On PostgreSQL it first takes a
/// transaction-level advisory lock, so one appender commits at a time
/// across nodes and `seq` order is commit order; callers append as the last
/// statement before they commit, so the lock is held only for the commit.
pub(crate) async fn append(
    tx: &mut Transaction<'static, Any>,
    backend: crate::Backend,
    events: &[AuditEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    if backend == crate::Backend::Postgres {
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
            .bind(AUDIT_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    for e in events {
        sqlx::query(
            "INSERT INTO audit_events (id, mode, occurred_at, action, actor_type, actor_id, \
             target_type, target_id, tenant_id, source_address, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.id)
        .bind(e.mode.map(Mode::as_str))
        .bind(to_unix_ms(e.time))
        .bind(e.action.as_str())
        .bind(&e.actor.kind)
        .bind(e.actor.id.as_deref())
        .bind(&e.target.kind)
        .bind(&e.target.id)
        .bind(e.tenant_id.as_deref())
        .bind(e.source_address.as_deref())
        .bind(to_json(&e.details)?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
