//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009)
//! for access tokens and API keys. Callers authenticate like at the token
//! endpoint, or with an admin key, and only ever learn about or touch
//! credentials of their own mode.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::oauth_form::{hinted_token, ClientAuth};
use latchkey_types::error::OAuthErrorBody;
use latchkey_types::Mode;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::oauth::{authenticate_client, require_tls_for, OAuthRequest};
use crate::authn::keycheck;
use crate::http::error::{OAuthError, OAuthErrorCode};
use crate::http::transport::RequestCredentials;
use crate::state::{AdminKeyInfo, AppState};
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(introspect))
        .routes(routes!(revoke))
}

/// Who is asking: an admin of a mode, or an authenticated client.
enum OAuthCaller {
    Admin(AdminKeyInfo),
    Client { mode: Mode, client_id: String },
}

impl OAuthCaller {
    fn mode(&self) -> Mode {
        match self {
            OAuthCaller::Admin(admin) => admin.mode,
            OAuthCaller::Client { mode, .. } => *mode,
        }
    }

    /// The caller, as the actor of an audit event.
    fn actor(&self) -> AuditActor {
        match self {
            OAuthCaller::Admin(admin) => AuditActor::admin_key(&*admin.id),
            OAuthCaller::Client { client_id, .. } => AuditActor::client(client_id.clone()),
        }
    }

    /// Whether the caller may revoke a credential of `owner`.
    fn may_revoke(&self, owner: &str) -> bool {
        match self {
            OAuthCaller::Admin(_) => true,
            OAuthCaller::Client { client_id, .. } => client_id == owner,
        }
    }
}

/// An audit event of a revocation by `caller`.
fn revoked(
    state: &AppState,
    caller: &OAuthCaller,
    credentials: &RequestCredentials,
    action: AuditAction,
    target: AuditTarget,
) -> AuditEvent {
    crate::admin::audit::event(
        state,
        Some(caller.mode()),
        action,
        caller.actor(),
        target,
        credentials.source.map(|ip| ip.to_string()),
    )
}

async fn caller(state: &AppState, request: &OAuthRequest) -> Result<OAuthCaller, OAuthError> {
    let authorization = &request.0.authorization;
    if let Some(key) = authorization.bearer() {
        // Admin keys only; anything else is not a way to authenticate here.
        let info = credential::parse(key).map_err(|_| OAuthError::invalid_client(false))?;
        if info.kind != CredentialKind::Admin {
            return Err(OAuthError::invalid_client(false));
        }
        return match state.admin_keys.get(&CredentialDigest::of(key)) {
            Some(admin) if admin.mode == info.mode => Ok(OAuthCaller::Admin(admin.clone())),
            _ => Err(OAuthError::invalid_client(false)),
        };
    }
    let client_auth = ClientAuth::required_from_header(authorization, request.params())?;
    let client = authenticate_client(state, &client_auth, request.0.secure).await?;
    Ok(OAuthCaller::Client {
        mode: client.mode,
        client_id: client.principal.user.id.clone(),
    })
}

/// RFC 7662 answer: `{"active": false}` or the token's claims.
#[derive(Debug, Serialize, ToSchema)]
struct IntrospectionResponse {
    /// Whether the token is currently valid.
    active: bool,
    /// For active tokens: `scope`, `client_id`, `sub`, `aud`, `iss`, `exp`,
    /// `iat`, `nbf`, `jti`, `token_type`, and Latchkey's `mode`, `tenantId`,
    /// `authorization` (API keys also `keyId` and `roles`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    details: Map<String, Value>,
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Checks a token or key and says whether it is active (RFC 7662).
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = super::forms::TokenHintForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = IntrospectionResponse),
        (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
async fn introspect(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let caller = caller(&state, &request).await?;
    require_tls_for(caller.mode(), &request.0)?;
    let params = request.params();
    let token = hinted_token(params)?;
    let mode = caller.mode();
    let inactive = || IntrospectionResponse {
        active: false,
        details: Map::new(),
    };
    let answer = if credential::parse(token).is_ok() {
        match keycheck::check(&state, token, Some(mode), keycheck::Check::Inspect).await? {
            Ok(verified) => {
                let described = keycheck::describe(&state, &verified).await?;
                let mut details = Map::new();
                details.insert("token_type".into(), json!("api_key"));
                details.insert("client_id".into(), json!(described.user_id));
                details.insert("sub".into(), json!(described.user_id));
                details.insert("iss".into(), json!(state.config.issuer_of(mode)));
                if let Some(at) = described.expires_at {
                    details.insert("exp".into(), json!(at.unix_timestamp()));
                }
                details.insert("keyId".into(), json!(described.key_id));
                details.insert("mode".into(), json!(described.mode));
                details.insert("tenantId".into(), json!(described.tenant_id));
                details.insert("roles".into(), json!(described.roles));
                details.insert("authorization".into(), json!(described.authorization));
                if described.authorization_truncated {
                    details.insert("authorizationTruncated".into(), json!(true));
                }
                if let Some(left) = described.remaining {
                    details.insert("remaining".into(), json!(left));
                }
                IntrospectionResponse {
                    active: true,
                    details,
                }
            }
            Err(_) => inactive(),
        }
    } else {
        let claims = match state.verify_access_token(token, mode) {
            // A session's token lives only as long as its session.
            Some(claims) => match claims.session_id() {
                Some(sid) => state
                    .store
                    .session(mode, sid)
                    .await?
                    .filter(|s| s.active_at(state.clock.now()))
                    .map(|_| claims),
                None => Some(claims),
            },
            None => None,
        };
        match claims {
            Some(claims) => {
                let mut details = match serde_json::to_value(claims.raw()) {
                    Ok(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                details.insert("token_type".into(), json!("Bearer"));
                IntrospectionResponse {
                    active: true,
                    details,
                }
            }
            None => inactive(),
        }
    };
    Ok(no_store(axum::Json(answer).into_response()))
}

/// Revokes an access token (until it would have expired) or an API key
/// (at once). Unknown or invalid tokens are not an error (RFC 7009 §2.2).
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = super::forms::TokenHintForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "revoked, or nothing to revoke"),
        (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let caller = caller(&state, &request).await?;
    require_tls_for(caller.mode(), &request.0)?;
    let params = request.params();
    let token = hinted_token(params)?;
    let mode = caller.mode();
    let refused = || {
        OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "a client may only revoke its own tokens and keys",
        )
    };
    match credential::parse(token) {
        Ok(info) if info.kind == CredentialKind::ApiKey && info.mode == mode => {
            let digest = CredentialDigest::of(token);
            if let Some(found) = state.caches.api_key(&state.store, mode, &digest).await? {
                if !caller.may_revoke(found.user_id()) {
                    return Err(refused());
                }
                let event = revoked(
                    &state,
                    &caller,
                    &request.0,
                    AuditAction::ApiKeyRevoked,
                    AuditTarget::new("api_key", found.id()),
                )
                .with_tenant(found.tenant_id());
                let written = state
                    .store
                    .revoke_api_key(mode, found.id(), state.clock.now(), |_| event)
                    .await?;
                state.applied(written).await;
            }
        }
        Ok(info) if info.kind == CredentialKind::Refresh && info.mode == mode => {
            // Revoking a refresh token ends its session (RFC 7009 §2.1).
            let digest = CredentialDigest::of(token);
            let found = state.store.session_by_refresh(mode, &digest).await?;
            if let Some(session) = found.filter(|s| s.ended_at.is_none()) {
                if !caller.may_revoke(&session.user_id) {
                    return Err(refused());
                }
                let event = revoked(
                    &state,
                    &caller,
                    &request.0,
                    AuditAction::SessionEnded,
                    AuditTarget::new("session", &session.id),
                )
                .with_detail("userId", session.user_id.as_str())
                .with_detail("reason", "revoked");
                match state
                    .store
                    .end_session(
                        mode,
                        &session.id,
                        None,
                        "revoked",
                        state.clock.now(),
                        |_| event,
                    )
                    .await
                {
                    Ok(written) => {
                        state.applied(written).await;
                    }
                    // Ended meanwhile: nothing left to revoke.
                    Err(latchkey_store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(_) => {}
        Err(_) => {
            if let Some(claims) = state.verify_access_token(token, mode) {
                if !caller.may_revoke(claims.user_id()) {
                    return Err(refused());
                }
                // Listed past `exp` by the verifiers' clock leeway, so the
                // token cannot come back to life at the edge of its life.
                let exp = claims
                    .expires_at()
                    .saturating_add(latchkey_verify::jwt::DEFAULT_LEEWAY_SECONDS as i64);
                let expires_at = time::OffsetDateTime::from_unix_timestamp(exp)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let event = revoked(
                    &state,
                    &caller,
                    &request.0,
                    AuditAction::TokenRevoked,
                    AuditTarget::new("token", claims.jti()),
                )
                .with_detail("userId", claims.user_id());
                let written = state
                    .store
                    .revoke_token(mode, claims.jti(), expires_at, |_| event)
                    .await?;
                state.applied(written).await;
            }
        }
    }
    Ok(no_store(axum::Json(json!({})).into_response()))
}
