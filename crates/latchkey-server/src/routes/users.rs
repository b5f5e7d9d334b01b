//! `/v1/users`: machines and people, and the `authorization` claim of a
//! user's tokens. Their client secrets are in `secrets.rs`, their public
//! keys in `user_keys.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::ids;
use latchkey_store::NewUser;
use latchkey_types::admin::{Authorization, CreateUser, UpdateUser, User};
use latchkey_types::error::Problem;
use latchkey_types::ids::UserId;
use latchkey_types::oauth::RESERVED_CLAIMS;
use latchkey_types::schema::Cursor;
use latchkey_types::{JsonObject, Page, UserKind};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_name, check_object, check_optional_text, page_request, to_page};
use crate::authn::auth::Admin;
use crate::config::MAX_TOKEN_TTL_SECONDS;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, RecordPath};
use crate::state::AppState;
use latchkey_types::audit::AuditAction;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(get_authorization))
}

pub(crate) fn check_custom_claims(claims: &JsonObject) -> Result<(), ApiError> {
    check_object("customClaims", claims)?;
    if let Some(k) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(ApiError::InvalidRequest(format!(
            "customClaims may not set the reserved claim {k:?}"
        )));
    }
    Ok(())
}

pub(crate) fn check_ttl(ttl: Option<i64>) -> Result<(), ApiError> {
    match ttl {
        Some(t) if !(1..=MAX_TOKEN_TTL_SECONDS).contains(&t) => Err(ApiError::InvalidRequest(
            format!("tokenTtlSeconds must be between 1 and {MAX_TOKEN_TTL_SECONDS}"),
        )),
        _ => Ok(()),
    }
}

/// An external id: 1 to 255 characters, none of them a control character.
pub(crate) fn check_external_id(field: &str, id: Option<&str>) -> Result<(), ApiError> {
    match id {
        Some(v) if v.is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) => {
            Err(ApiError::InvalidRequest(format!(
                "{field} must be 1 to 255 characters, none of them a control character"
            )))
        }
        _ => Ok(()),
    }
}

pub(crate) fn check_email(email: Option<&str>) -> Result<(), ApiError> {
    check_optional_text("email", email)?;
    match email {
        Some(e) if !e.contains('@') || e.contains(char::is_whitespace) => Err(
            ApiError::InvalidRequest("email must be an email address".into()),
        ),
        _ => Ok(()),
    }
}

/// Creates a user; machines are the default kind.
#[utoipa::path(post, path = "/v1/users", tag = "users",
    security(("adminKey" = [])), request_body = CreateUser,
    responses((status = 201, body = User), (status = 400, body = Problem),
        (status = 409, body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<impl IntoResponse, ApiError> {
    check_name("name", &body.name)?;
    check_email(body.email.as_deref())?;
    check_optional_text("username", body.username.as_deref())?;
    check_optional_text("phoneNumber", body.phone_number.as_deref())?;
    let metadata = body.metadata.unwrap_or_default();
    check_object("metadata", &metadata)?;
    let custom_claims = body.custom_claims.unwrap_or_default();
    check_custom_claims(&custom_claims)?;
    check_ttl(body.token_ttl_seconds)?;
    check_external_id("externalId", body.external_id.as_deref())?;
    let new = NewUser {
        id: ids::new_prefixed_id("usr"),
        kind: body.kind.unwrap_or_default(),
        external_id: body.external_id,
        name: body.name,
        email: body.email,
        username: body.username,
        phone_number: body.phone_number,
        email_verified: body.email_verified.unwrap_or(false),
        phone_verified: body.phone_verified.unwrap_or(false),
        metadata,
        custom_claims,
        disabled: body.disabled.unwrap_or(false),
        token_ttl_seconds: body.token_ttl_seconds,
    };
    let written = state
        .store
        .create_user(admin.mode(), &new, state.clock.now(), |user| {
            admin
                .event(&state, AuditAction::UserCreated, "user", &user.id)
                .with_detail("kind", user.kind.as_str())
                .with_detail("disabled", user.disabled)
        })
        .await?;
    let user = state.applied(written).await;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// Filters and paging of `GET /v1/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UserListQuery {
    /// Only users of this kind.
    kind: Option<UserKind>,
    /// Only users holding roles directly in this tenant.
    tenant_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// Lists users by id.
#[utoipa::path(get, path = "/v1/users", tag = "users",
    security(("adminKey" = [])), params(UserListQuery),
    responses((status = 200, body = Page<User>), (status = 400, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<UserListQuery>,
) -> Result<axum::Json<Page<User>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let result = state
        .store
        .list_users(admin.mode(), q.kind, q.tenant_id.as_deref(), &page)
        .await?;
    Ok(axum::Json(to_page(result)))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
async fn get_user(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(state.store.get_user(admin.mode(), &id).await?))
}

/// Changes a user. `disabled: true` stops every credential of the user at once.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn update_user(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<axum::Json<User>, ApiError> {
    if let Some(name) = &body.name {
        check_name("name", name)?;
    }
    check_email(body.email.clone().flatten().as_deref())?;
    check_optional_text("username", body.username.clone().flatten().as_deref())?;
    check_optional_text(
        "phoneNumber",
        body.phone_number.clone().flatten().as_deref(),
    )?;
    if let Some(m) = &body.metadata {
        check_object("metadata", m)?;
    }
    if let Some(c) = &body.custom_claims {
        check_custom_claims(c)?;
    }
    check_ttl(body.token_ttl_seconds.flatten())?;
    let written = state
        .store
        .update_user(admin.mode(), &id, &body, state.clock.now(), |user| {
            admin
                .event(&state, AuditAction::UserUpdated, "user", &id)
                .with_detail("fields", crate::admin::audit::fields_set(&body))
                .with_detail("disabled", user.disabled)
        })
        .await?;
    let user = state.applied(written).await;
    Ok(axum::Json(user))
}

/// Deletes a user with its memberships and secrets.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_user(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
) -> Result<StatusCode, ApiError> {
    let event = admin.event(&state, AuditAction::UserDeleted, "user", &id);
    let written = state
        .store
        .delete_user(admin.mode(), &id, |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant of `GET /v1/users/{id}/authorization`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuthorizationQuery {
    /// The token's tenant; the workspace when absent.
    tenant_id: Option<String>,
}

/// The header that says the claim was cut to the server's byte budget.
const TRUNCATED_HEADER: &str = "latchkey-authorization-truncated";

/// Exactly the `authorization` claim a token of this user scoped to the
/// tenant would carry: within the server's byte budget, nearest
/// descendants first. When descendants were left out, the answer carries
/// `Latchkey-Authorization-Truncated: true` (the token carries
/// `authorizationTruncated: true`); when the tenant's own roles exceed the
/// budget, no token can be issued for it and the answer is 409.
#[utoipa::path(get, path = "/v1/users/{id}/authorization", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path), AuthorizationQuery),
    responses((status = 200, body = Authorization, headers(("Latchkey-Authorization-Truncated" = String,
            description = "`true` when descendants with roles were left out for the claim's byte budget"))),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn get_authorization(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiQuery(q): ApiQuery<AuthorizationQuery>,
) -> Result<axum::response::Response, ApiError> {
    let mode = admin.mode();
    let principal = state
        .caches
        .principal(&state.store, mode, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let tree = state.caches.tree(&state.store, mode).await?;
    let tenant = q.tenant_id.unwrap_or_else(|| state.workspace.id.clone());
    if !tree.contains(&tenant) {
        return Err(ApiError::not_found("tenant"));
    }
    let bounded = latchkey_core::authorization::bounded(
        &tree,
        &principal.direct,
        &tenant,
        None,
        state.config.token_authorization_max_bytes,
    )
    .map_err(|e| ApiError::Conflict(format!("no token can be scoped to this tenant: {e}")))?;
    let mut response = axum::Json::<Authorization>(bounded.claim).into_response();
    if bounded.truncated {
        response.headers_mut().insert(
            axum::http::HeaderName::from_static(TRUNCATED_HEADER),
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}
