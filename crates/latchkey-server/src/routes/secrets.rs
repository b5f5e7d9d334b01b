//! `/v1/users/{id}/secrets`: a user's client secrets. Several may be active
//! at once, so rotation has no downtime; a value is shown once, in the
//! response that created it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::ids;
use latchkey_store::NewSecret;
use latchkey_types::admin::{ClientSecret, CreateSecret, CreatedSecret};
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::ids::UserId;
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_optional_text, page_request, to_page};
use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, RecordPath};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_secret, list_secrets))
        .routes(routes!(delete_secret))
}

/// Adds a client secret; the value is in this response only.
#[utoipa::path(post, path = "/v1/users/{id}/secrets", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)), request_body = CreateSecret,
    responses((status = 201, body = CreatedSecret), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
async fn create_secret(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiJson(body): ApiJson<CreateSecret>,
) -> Result<impl IntoResponse, ApiError> {
    check_optional_text("name", body.name.as_deref())?;
    let now = state.clock.now();
    if matches!(body.expires_at, Some(at) if at <= now) {
        return Err(ApiError::InvalidRequest(
            "expiresAt must be in the future".into(),
        ));
    }
    let mode = admin.mode();
    let value = credential::generate(mode, CredentialKind::ClientSecret);
    let new = NewSecret {
        id: ids::new_prefixed_id("sec"),
        user_id: String::from(&id),
        name: body.name,
        digest: CredentialDigest::of(value.expose()),
        expires_at: body.expires_at,
    };
    let written = state
        .store
        .create_secret(mode, &new, now, |stored| {
            admin
                .event(
                    &state,
                    AuditAction::ClientSecretCreated,
                    "client_secret",
                    &stored.id,
                )
                .with_detail("userId", id.clone())
                .with_detail("expiresAt", crate::admin::audit::rfc3339(stored.expires_at))
        })
        .await?;
    let stored = state.applied(written).await;
    let created = CreatedSecret {
        id: stored.id,
        user_id: stored.user_id,
        name: stored.name,
        secret: value.expose().to_owned(),
        created_at: stored.created_at,
        expires_at: stored.expires_at,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Paging of `GET /v1/users/{id}/secrets`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SecretListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// A user's client secrets, without their values.
#[utoipa::path(get, path = "/v1/users/{id}/secrets", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path), SecretListQuery),
    responses((status = 200, body = Page<ClientSecret>), (status = 404, body = Problem)))]
async fn list_secrets(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiQuery(q): ApiQuery<SecretListQuery>,
) -> Result<axum::Json<Page<ClientSecret>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(axum::Json(to_page(
        state.store.list_secrets(admin.mode(), &id, &page).await?,
    )))
}

/// Deletes a client secret; it stops working at once.
#[utoipa::path(delete, path = "/v1/users/{id}/secrets/{secretId}", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path), ("secretId" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_secret(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath((id, secret_id)): RecordPath<(UserId, String)>,
) -> Result<StatusCode, ApiError> {
    let event = admin
        .event(
            &state,
            AuditAction::ClientSecretRevoked,
            "client_secret",
            &secret_id,
        )
        .with_detail("userId", id.clone());
    let written = state
        .store
        .delete_secret(admin.mode(), &id, &secret_id, |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
