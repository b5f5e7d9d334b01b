//! `POST /v1/import` and `GET /v1/export`: moving records in and out as
//! NDJSON. The engine is `crate::migration`; this module parses the
//! request and answers.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::migration::ImportSummary;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::migration::{export, import};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_records))
        .routes(routes!(export_records))
}

/// NDJSON text: one record per line, at least one.
struct NdjsonBody;

impl utoipa::PartialSchema for NdjsonBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .pattern(Some("\\S"))
            .description(Some("NDJSON: one record per line, at least one"))
            .into()
    }
}

impl utoipa::ToSchema for NdjsonBody {}

/// How to import.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// Check every record and count what would change; write nothing.
    dry_run: Option<bool>,
    /// The whole file or nothing: any refused line writes nothing at all.
    atomic: Option<bool>,
}

/// Imports NDJSON records (tenants, roles, users with password hashes,
/// memberships, API keys and client secrets as values or digests) into the
/// admin key's mode. Each record is all or nothing; records are found again
/// by `externalId`, id or credential, so a second run changes nothing. The
/// body is read as it arrives (no size limit; lines up to 64 KiB).
#[utoipa::path(post, path = "/v1/import", tag = "migration",
    security(("adminKey" = [])), params(ImportQuery),
    request_body(content = inline(NdjsonBody), content_type = "application/x-ndjson",
        description = "One record per line: {\"type\": \"tenant\" | \"role\" | \"user\" | \
            \"membership\" | \"api_key\" | \"secret\", …}"),
    responses((status = 200, body = ImportSummary), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
async fn import_records(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: Body,
) -> Result<axum::Json<ImportSummary>, ApiError> {
    let options = import::Options {
        dry_run: q.dry_run.unwrap_or(false),
        atomic: q.atomic.unwrap_or(false),
    };
    let summary = import::run(&state, admin.mode(), body, options, |s| {
        admin
            .event(&state, AuditAction::ImportCompleted, "import", admin.id())
            .with_detail("created", s.created)
            .with_detail("updated", s.updated)
            .with_detail("unchanged", s.unchanged)
            .with_detail("errors", s.error_count)
            .with_detail("atomic", options.atomic)
    })
    .await?;
    Ok(axum::Json(summary))
}

/// Exports every record of the admin key's mode as NDJSON, in the import's
/// format: credentials as digests, never values; revoked keys left out.
#[utoipa::path(get, path = "/v1/export", tag = "migration",
    security(("adminKey" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
        (status = 401, body = Problem)))]
async fn export_records(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<impl IntoResponse, ApiError> {
    let event = admin.event(&state, AuditAction::ExportStarted, "export", admin.id());
    state.store.append_audit_events(&[event]).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        export::body(state.clone(), admin.mode()),
    ))
}
