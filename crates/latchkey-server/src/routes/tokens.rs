//! `POST /v1/tokens`: custom authentication. Your own system vouched for a
//! machine (or a person); an admin key mints the token for it.

use axum::extract::State;
use latchkey_types::error::Problem;
use latchkey_types::ids::UserId;
use latchkey_types::oauth::{CreateToken, CreatedToken, RESERVED_CLAIMS};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::check_object;
use crate::authn::auth::Admin;
use crate::http::error::{ApiError, OAuthErrorCode};
use crate::http::extract::{reference, ApiJson};
use crate::state::AppState;
use crate::tokens::issuance::{self, TokenRequest};
use latchkey_core::issuance::Asked;
use latchkey_types::audit::AuditAction;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_token))
}

/// Mints an access token for a user, as if it had authenticated. Claims
/// may not replace reserved ones; the lifetime is capped by configuration.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    security(("adminKey" = [])), request_body = CreateToken,
    responses((status = 200, body = CreatedToken), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn create_token(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<axum::Json<CreatedToken>, ApiError> {
    let mode = admin.mode();
    let user_id: UserId = reference(body.user_id.as_str())?;
    let cap = state.config.custom_token_max_ttl_seconds;
    if let Some(ttl) = body.ttl_seconds {
        if !(1..=cap).contains(&ttl) {
            return Err(ApiError::InvalidRequest(format!(
                "ttlSeconds must be between 1 and {cap}"
            )));
        }
    }
    if let Some(claims) = &body.claims {
        check_object("claims", claims)?;
        if let Some(k) = claims
            .keys()
            .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(ApiError::InvalidRequest(format!(
                "claims may not set the reserved claim {k:?}"
            )));
        }
    }
    let principal = state
        .caches
        .principal(&state.store, mode, &user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if principal.user.disabled {
        return Err(ApiError::Forbidden("the user is disabled".into()));
    }
    // Without a requested lifetime, the user's (or workspace's), capped.
    let default_ttl = principal
        .user
        .token_ttl_seconds
        .unwrap_or(state.config.token_ttl_seconds)
        .min(cap);
    let request = TokenRequest {
        asked: Asked {
            tenant_id: body.tenant_id.as_deref(),
            scope: body.scope.as_deref(),
            audiences: body.audience.as_deref().into_iter().collect(),
            ..Asked::default()
        },
        key: None,
        extra_claims: body.claims.as_ref(),
        ttl_seconds: Some(body.ttl_seconds.unwrap_or(default_ttl)),
        ..TokenRequest::default()
    };
    let issued = issuance::issue(&state, mode, &principal, &request)
        .await
        .map_err(|e| match e.code() {
            OAuthErrorCode::InvalidTarget if e.description() == issuance::UNKNOWN_TENANT => {
                ApiError::not_found("tenant")
            }
            OAuthErrorCode::InvalidTarget => ApiError::InvalidRequest(e.description().to_owned()),
            OAuthErrorCode::InvalidScope => ApiError::InvalidRequest(e.description().to_owned()),
            OAuthErrorCode::TemporarilyUnavailable => ApiError::Unavailable,
            _ => ApiError::Internal,
        })?;
    // The token's id, for the audit log (never the token itself).
    let jti = jti_of(&issued.access_token).ok_or(ApiError::Internal)?;
    // Minting writes nothing but its event: the token is answered once the
    // event is stored.
    let event = admin
        .event(&state, AuditAction::TokenMinted, "token", &jti)
        .with_tenant(body.tenant_id.as_deref().unwrap_or(&state.workspace.id))
        .with_detail("userId", user_id.as_str())
        .with_detail("expiresIn", issued.expires_in)
        .with_detail(
            "claims",
            body.claims
                .as_ref()
                .map(|c| c.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
    state.store.append_audit_events(&[event]).await?;
    state.audit.counted_written(1);
    Ok(axum::Json(CreatedToken {
        access_token: issued.access_token,
        token_type: issued.token_type,
        expires_in: issued.expires_in,
        scope: issued.scope,
    }))
}

/// The `jti` of a token this server has just signed (read without
/// verification: it never left the process).
fn jti_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims["jti"].as_str().map(str::to_owned)
}
