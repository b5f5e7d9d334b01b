//! `/v1/trusted-issuers`: issuers whose JWTs the token endpoint exchanges
//! for Latchkey tokens (workload identity federation). The rules are
//! `latchkey_core::federation::workload`; the exchange is
//! `federation::workload`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::federation::workload as rules;
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::federation::{PutTrustedIssuer, TrustedIssuer};
use latchkey_types::ids::{Identifier as _, TrustedIssuerId, UserId};
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_request, to_page};
use crate::authn::auth::Admin;
use crate::federation::workload::static_keys;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, RecordPath};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_trusted_issuers))
        .routes(routes!(
            put_trusted_issuer,
            get_trusted_issuer,
            delete_trusted_issuer
        ))
}

/// Checks a configuration: core's rules, then what needs the mode's data
/// (the rules' users and tenants exist, a static JWKS parses).
async fn check(state: &AppState, admin: &Admin, body: &PutTrustedIssuer) -> Result<(), ApiError> {
    let invalid = |e: String| ApiError::InvalidRequest(e);
    rules::validate(body).map_err(|e| invalid(e.to_string()))?;
    if UserId::is_valid(&body.issuer) {
        return Err(invalid(
            "issuer: a user id is a JWT-bearer assertion's own issuer; name the issuer by its URL"
                .into(),
        ));
    }
    if let Some(jwks) = &body.jwks {
        static_keys(jwks).map_err(|e| invalid(format!("jwks: {e}")))?;
    }
    let tree = state.caches.tree(&state.store, admin.mode()).await?;
    for (i, rule) in body.rules.iter().enumerate() {
        if let Some(tenant) = &rule.tenant_id {
            if !tree.contains(tenant.as_str()) {
                return Err(invalid(format!("rules[{i}].tenantId: no such tenant")));
            }
        }
        if let Some(user) = &rule.user_id {
            let found = state
                .caches
                .principal(&state.store, admin.mode(), user.as_str())
                .await?;
            if found.is_none() {
                return Err(invalid(format!("rules[{i}].userId: no such user")));
            }
        }
    }
    Ok(())
}

/// Creates or replaces a trusted issuer (201 when new, 200 when replaced).
/// Its tokens are accepted at once, on every node.
#[utoipa::path(put, path = "/v1/trusted-issuers/{id}", tag = "federation",
    security(("adminKey" = [])), params(("id" = inline(TrustedIssuerId), Path)),
    request_body = PutTrustedIssuer,
    responses((status = 200, body = TrustedIssuer), (status = 201, body = TrustedIssuer),
        (status = 400, body = Problem), (status = 409, body = Problem)))]
async fn put_trusted_issuer(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<TrustedIssuerId>,
    ApiJson(body): ApiJson<PutTrustedIssuer>,
) -> Result<impl IntoResponse, ApiError> {
    check(&state, &admin, &body).await?;
    let written = state
        .store
        .put_trusted_issuer(
            admin.mode(),
            id.as_str(),
            &body,
            state.clock.now(),
            |(t, created)| {
                admin
                    .event(
                        &state,
                        AuditAction::TrustedIssuerPut,
                        "trusted_issuer",
                        id.as_str(),
                    )
                    .with_detail("issuer", t.issuer.clone())
                    .with_detail("rules", t.rules.len())
                    .with_detail("created", *created)
            },
        )
        .await?;
    let (trusted, created) = state.applied(written).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(trusted)))
}

/// Paging of `GET /v1/trusted-issuers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TrustedIssuerListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// The mode's trusted issuers, by id.
#[utoipa::path(get, path = "/v1/trusted-issuers", tag = "federation",
    security(("adminKey" = [])), params(TrustedIssuerListQuery),
    responses((status = 200, body = Page<TrustedIssuer>)))]
async fn list_trusted_issuers(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<TrustedIssuerListQuery>,
) -> Result<axum::Json<Page<TrustedIssuer>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(axum::Json(to_page(
        state
            .store
            .list_trusted_issuers(admin.mode(), &page)
            .await?,
    )))
}

/// One trusted issuer.
#[utoipa::path(get, path = "/v1/trusted-issuers/{id}", tag = "federation",
    security(("adminKey" = [])), params(("id" = inline(TrustedIssuerId), Path)),
    responses((status = 200, body = TrustedIssuer), (status = 404, body = Problem)))]
async fn get_trusted_issuer(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TrustedIssuerId>,
) -> Result<axum::Json<TrustedIssuer>, ApiError> {
    Ok(axum::Json(
        state
            .store
            .get_trusted_issuer(admin.mode(), id.as_str())
            .await?,
    ))
}

/// Removes a trusted issuer: its tokens are refused from then on; users it
/// provisioned stay.
#[utoipa::path(delete, path = "/v1/trusted-issuers/{id}", tag = "federation",
    security(("adminKey" = [])), params(("id" = inline(TrustedIssuerId), Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_trusted_issuer(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TrustedIssuerId>,
) -> Result<StatusCode, ApiError> {
    let event = admin.event(
        &state,
        AuditAction::TrustedIssuerDeleted,
        "trusted_issuer",
        id.as_str(),
    );
    let written = state
        .store
        .delete_trusted_issuer(admin.mode(), id.as_str(), |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
