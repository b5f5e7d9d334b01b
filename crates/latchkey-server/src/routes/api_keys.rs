//! `/v1/api-keys`: the API-key lifecycle and the verify endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::ids;
use latchkey_store::NewApiKey;
use latchkey_types::api_keys::{
    ApiKey, CreateApiKey, CreatedApiKey, KeyInvalidCode, RotateApiKey, VerifyApiKeyRequest,
    VerifyApiKeyResponse,
};
use latchkey_types::error::Problem;
use latchkey_types::ids::{ApiKeyId, UserId};
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_object, check_optional_text, page_request, to_page};
use crate::authn::auth::{Admin, Caller};
use crate::authn::keycheck;
use crate::http::error::ApiError;
use crate::http::extract::{reference, ApiBytes, ApiJson, ApiQuery, RecordPath};
use crate::http::transport::Credentials;
use crate::state::AppState;
use latchkey_types::audit::AuditAction;

/// Longest rotation grace period: 30 days.
const MAX_GRACE_SECONDS: i64 = 30 * 86_400;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(verify_api_key))
        .routes(routes!(get_api_key, revoke_api_key))
        .routes(routes!(rotate_api_key));
    // The verify body is optional (the key may come in X-Api-Key) but, when
    // sent, an object: utoipa can only say "optional" by also allowing a
    // JSON `null` body, which the server refuses.
    if let Some(body) = router
        .get_openapi_mut()
        .paths
        .paths
        .get_mut("/v1/api-keys/verify")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    router
}

/// Creates an API key; the value is in this response only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys",
    security(("adminKey" = [])), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
async fn create_api_key(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    let created = create_key(&state, admin.mode(), body, |api_key| {
        admin.event(&state, AuditAction::ApiKeyCreated, "api_key", &api_key.id)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Checks and stores a new API key; `record` starts its audit event (the
/// tenant, user, roles and expiry are added here). The admin API and
/// `POST /v1/me/api-keys` both create keys through this.
pub(crate) async fn create_key(
    state: &AppState,
    mode: latchkey_types::Mode,
    body: CreateApiKey,
    record: impl FnOnce(&ApiKey) -> latchkey_types::audit::AuditEvent + Send,
) -> Result<CreatedApiKey, ApiError> {
    let user_id: UserId = reference(body.user_id)?;
    check_optional_text("name", body.name.as_deref())?;
    if let Some(roles) = &body.roles {
        if roles.len() > 100 {
            return Err(ApiError::InvalidRequest("at most 100 roles per key".into()));
        }
    }
    if let Some(limit) = body.ratelimit {
        if limit.limit < 1 || !(1..=86_400).contains(&limit.window_seconds) {
            return Err(ApiError::InvalidRequest(
                "ratelimit needs limit >= 1 and windowSeconds between 1 and 86400".into(),
            ));
        }
    }
    if body.remaining.is_some_and(|r| r < 0) {
        return Err(ApiError::InvalidRequest(
            "remaining must be 0 or more".into(),
        ));
    }
    let now = state.clock.now();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::InvalidRequest(
            "expiresAt must be in the future".into(),
        ));
    }
    let metadata = body.metadata.unwrap_or_default();
    check_object("metadata", &metadata)?;
    let value = credential::generate(mode, CredentialKind::ApiKey);
    let digest = CredentialDigest::of(value.expose());
    let roles = body.roles.map(|roles| {
        let mut roles: Vec<String> = roles.into_iter().map(String::from).collect();
        roles.sort();
        roles.dedup();
        roles
    });
    let new = NewApiKey {
        id: ids::new_prefixed_id("key"),
        user_id: user_id.into_string(),
        tenant_id: body.tenant_id.unwrap_or_else(|| state.workspace.id.clone()),
        name: body.name,
        roles,
        metadata,
        ratelimit: body.ratelimit,
        remaining: body.remaining,
        expires_at: body.expires_at,
        digest,
    };
    let written = state
        .store
        .create_api_key(mode, &new, now, |api_key| {
            record(api_key)
                .with_tenant(&api_key.tenant_id)
                .with_detail("userId", api_key.user_id.clone())
                .with_detail("roles", api_key.roles.clone())
                .with_detail(
                    "expiresAt",
                    crate::admin::audit::rfc3339(api_key.expires_at),
                )
        })
        .await?;
    let api_key = state.applied(written).await;
    Ok(CreatedApiKey {
        key: value.expose().to_owned(),
        api_key,
    })
}

/// Filters and paging of `GET /v1/api-keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct KeyListQuery {
    /// Only keys of this user.
    user_id: Option<String>,
    /// Only keys scoped to this tenant.
    tenant_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// Lists API keys (without their values).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys",
    security(("adminKey" = [])), params(KeyListQuery),
    responses((status = 200, body = Page<ApiKey>), (status = 400, body = Problem)))]
async fn list_api_keys(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<KeyListQuery>,
) -> Result<axum::Json<Page<ApiKey>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let result = state
        .store
        .list_api_keys(
            admin.mode(),
            q.user_id.as_deref(),
            q.tenant_id.as_deref(),
            &page,
        )
        .await?;
    Ok(axum::Json(to_page(result)))
}

/// One API key.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
async fn get_api_key(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<ApiKeyId>,
) -> Result<axum::Json<ApiKey>, ApiError> {
    Ok(axum::Json(
        state.store.get_api_key(admin.mode(), &id).await?,
    ))
}

/// Revokes an API key: every value of it stops working at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    let written = state
        .store
        .revoke_api_key(admin.mode(), &id, state.clock.now(), |revoked| {
            admin
                .event(&state, AuditAction::ApiKeyRevoked, "api_key", &id)
                .with_tenant(&revoked.tenant_id)
        })
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives the key a new value; the previous one keeps working for
/// `gracePeriodSeconds` (default 0).
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api-keys",
    security(("adminKey" = [])), params(("id" = String, Path)), request_body = RotateApiKey,
    responses((status = 200, body = CreatedApiKey), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn rotate_api_key(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<ApiKeyId>,
    ApiJson(body): ApiJson<RotateApiKey>,
) -> Result<axum::Json<CreatedApiKey>, ApiError> {
    let grace = body.grace_period_seconds.unwrap_or(0);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(ApiError::InvalidRequest(format!(
            "gracePeriodSeconds must be between 0 and {MAX_GRACE_SECONDS}"
        )));
    }
    let mode = admin.mode();
    let value = credential::generate(mode, CredentialKind::ApiKey);
    let digest = CredentialDigest::of(value.expose());
    let until = state.clock.now() + time::Duration::seconds(grace);
    let written = state
        .store
        .rotate_api_key(mode, &id, &digest, until, |api_key| {
            admin
                .event(&state, AuditAction::ApiKeyRotated, "api_key", &id)
                .with_tenant(&api_key.tenant_id)
                .with_detail("gracePeriodSeconds", grace)
        })
        .await?;
    let api_key = state.applied(written).await;
    Ok(axum::Json(CreatedApiKey {
        key: value.expose().to_owned(),
        api_key,
    }))
}

/// Checks an API key (in `X-Api-Key`, or `{"key": …}`). The caller presents
/// its own credential: an admin key, a valid API key or an access token of
/// the same mode. Always 200 with `valid` true or false.
#[utoipa::path(post, path = "/v1/api-keys/verify", tag = "api-keys",
    security(("adminKey" = []), ("apiKey" = []), ("accessToken" = [])),
    request_body(content = VerifyApiKeyRequest, description = "the key, unless in X-Api-Key (optional)"),
    params(("X-Api-Key" = Option<String>, Header, pattern = "^[\t -~]*$",
        description = "the key to check (visible ASCII)")),
    responses((status = 200, body = VerifyApiKeyResponse), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
async fn verify_api_key(
    State(state): State<AppState>,
    attempt: Option<axum::Extension<std::sync::Arc<crate::authn::bruteforce::Attempt>>>,
    caller: Caller,
    Credentials(credentials): Credentials,
    ApiBytes(body): ApiBytes,
) -> Result<axum::Json<VerifyApiKeyResponse>, ApiError> {
    let from_header = credentials
        .api_key
        .clone()
        .map_err(|_| ApiError::InvalidRequest("X-Api-Key is not valid text".into()))?
        .map(|key| key.expose().to_owned());
    // No body at all is "no key in the body"; anything else must be the
    // JSON object (whitespace alone is not JSON).
    let from_body = if body.is_empty() {
        None
    } else {
        // An object only: serde would also read the struct from an array.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(ApiError::InvalidRequest(
                "the body must be a JSON object {\"key\": \"…\"}".into(),
            ));
        }
        let parsed: VerifyApiKeyRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::InvalidRequest(format!("the body must be {{\"key\": \"…\"}}: {e}"))
        })?;
        parsed.key
    };
    let key = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "send the key in X-Api-Key or in the body, not both".into(),
            ))
        }
        (Some(k), None) | (None, Some(k)) => k,
        (None, None) => {
            return Err(ApiError::InvalidRequest(
                "send the key to check in X-Api-Key or as {\"key\": …}".into(),
            ))
        }
    };
    let answer = match keycheck::check(
        &state,
        key.trim(),
        Some(caller.mode()),
        keycheck::Check::Use,
    )
    .await?
    {
        Ok(verified) => VerifyApiKeyResponse::Valid(keycheck::describe(&state, &verified).await?),
        Err(code) => {
            // Guessing: an unknown or malformed key counts as a failure.
            if matches!(code, KeyInvalidCode::NotFound | KeyInvalidCode::Malformed) {
                if let Some(axum::Extension(a)) = &attempt {
                    a.fail();
                }
            }
            VerifyApiKeyResponse::invalid(code)
        }
    };
    Ok(axum::Json(answer))
}
