//! `GET /v1/audit-events`: the audit log of the admin key's mode, newest
//! first, with filters and a cursor.

use std::time::Duration;

use axum::extract::State;
use latchkey_store::AuditFilter;
use latchkey_types::audit::{AuditAction, AuditEvent};
use latchkey_types::error::Problem;
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_request, to_page};
use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::state::AppState;

/// How long a listing waits for events queued before it to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// Filters and paging of `GET /v1/audit-events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only events of this action.
    action: Option<AuditAction>,
    /// Only events by this actor (an `adm_…` admin key or a `usr_…` client).
    actor_id: Option<String>,
    /// Only events about this record id (or address).
    target_id: Option<String>,
    /// Only events about this tenant.
    tenant_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                ApiError::InvalidRequest(format!(
                    "{field} must be an RFC 3339 time, like 2026-01-31T12:00:00Z"
                ))
            })
        })
        .transpose()
}

/// The audit log: every admin write and credential event of this mode
/// (and failed-authentication bursts that named no mode), newest first.
/// Events never hold secrets. Events recorded on this node before this
/// request are included (503 `unavailable` when they cannot be written in
/// time).
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit",
    security(("adminKey" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditEvent>), (status = 400, body = Problem),
        (status = 503, body = Problem)))]
async fn list_audit_events(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<axum::Json<Page<AuditEvent>>, ApiError> {
    // The log's cursor holds the position of the last event seen.
    let page = page_request(q.limit, q.cursor.as_deref())?;
    if page
        .after
        .as_deref()
        .is_some_and(|a| a.len() > 18 || a.parse::<u64>().is_err())
    {
        return Err(ApiError::InvalidRequest("cursor is not valid".into()));
    }
    let filter = AuditFilter {
        action: q.action,
        actor_id: q.actor_id,
        target_id: q.target_id,
        tenant_id: q.tenant_id,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
    };
    // Events recorded before this request are listed, or the answer is 503:
    // never a silently incomplete log.
    if !state.audit.flush(FLUSH_WAIT).await {
        return Err(ApiError::Unavailable);
    }
    let result = state
        .store
        .list_audit_events(admin.mode(), &filter, &page)
        .await?;
    Ok(axum::Json(to_page(result)))
}
