//! Sessions: started when a login completes, refreshed at the token
//! endpoint (rotating refresh tokens, one family per session), presented as
//! access tokens that carry `sid`, and ended by logout, by an admin, or by a
//! refresh token's reuse.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::issuance::Asked;
use latchkey_core::login::flow;
use latchkey_core::token::SessionClaims;
use latchkey_core::{ids, Secret};
use latchkey_store::{Refreshed, Rotation, SessionRecord};
use latchkey_types::audit::{AuditAction, AuditActor, AuditTarget};
use latchkey_types::login::{Factor, Session, SessionTokens};
use latchkey_types::oauth::TokenResponse;
use latchkey_types::Mode;
use time::Duration;

use super::engine::{self, Login};
use crate::authn::cache::Principal;
use crate::http::error::{ApiError, OAuthError, OAuthErrorCode};
use crate::http::transport::{credentials_of, RequestCredentials};
use crate::state::AppState;
use crate::tokens::issuance::{self, TokenRequest};

/// A repeat of a spent refresh token this soon is a client's retry.
pub const RETRY_WINDOW_MS: i64 = 10_000;

/// The sealing context of a refresh token kept for retries.
fn sealing_context(session_id: &str) -> String {
    format!("refresh-successor:{session_id}")
}

/// The factors a session's login passed.
fn factors_of(session: &SessionRecord) -> BTreeSet<Factor> {
    session
        .factors
        .iter()
        .filter_map(|f| f.parse().ok())
        .collect()
}

/// An access token for a session, from the same issuance as every other
/// token (so its authorization claims are a client-credentials token's),
/// plus `sid`, `amr` and `auth_time`.
async fn mint(
    state: &AppState,
    mode: Mode,
    principal: &Principal,
    session: &SessionRecord,
) -> Result<TokenResponse, OAuthError> {
    let amr = flow::amr(&factors_of(session))
        .into_iter()
        .map(str::to_owned)
        .collect();
    let request = TokenRequest {
        asked: Asked {
            tenant_id: Some(&session.tenant_id),
            ..Asked::default()
        },
        session: Some(SessionClaims {
            id: session.id.clone(),
            amr,
            auth_time: session.auth_time.unix_timestamp(),
        }),
        ..TokenRequest::default()
    };
    issuance::issue(state, mode, principal, &request).await
}

fn api_error(e: OAuthError) -> ApiError {
    match e.code() {
        OAuthErrorCode::TemporarilyUnavailable => ApiError::Unavailable,
        OAuthErrorCode::InvalidTarget => ApiError::Conflict(format!(
            "the login's tenant cannot be used: {}",
            e.description()
        )),
        _ => ApiError::Internal,
    }
}

/// Starts the session of a complete login: its first access and refresh
/// tokens. `None` when another request handed the session out first.
pub async fn start(
    state: &AppState,
    login: &Login,
    principal: &Arc<Principal>,
    source: Option<IpAddr>,
) -> Result<Option<SessionTokens>, ApiError> {
    let mode = login.mode;
    let now = state.clock.now();
    let record = SessionRecord {
        id: ids::new_prefixed_id("ses"),
        user_id: principal.user.id.clone(),
        tenant_id: login.record.tenant_id.clone(),
        factors: login.record.satisfied.clone(),
        auth_time: now,
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::seconds(login.policy.session_lifetime_seconds),
        idle_timeout_seconds: login.policy.idle_timeout_seconds,
        ended_at: None,
        end_reason: None,
    };
    // Signed first: a token that cannot be issued stores nothing.
    let access = mint(state, mode, principal, &record)
        .await
        .map_err(api_error)?;
    let refresh = credential::generate(mode, CredentialKind::Refresh);
    let digest = CredentialDigest::of(refresh.expose());
    let event = crate::admin::audit::event(
        state,
        Some(mode),
        AuditAction::SessionCreated,
        AuditActor::client(&principal.user.id),
        AuditTarget::new("session", &record.id),
        source.map(|ip| ip.to_string()),
    )
    .with_tenant(&record.tenant_id)
    .with_detail("login", login.record.id.as_str())
    .with_detail("factors", login.record.satisfied.clone());
    let written = state
        .store
        .complete_login(mode, &login.record.id, &record, &digest, |_| event)
        .await?;
    let Some(written) = written else {
        return Ok(None);
    };
    state.applied(written).await;
    Ok(Some(SessionTokens {
        id: record.id,
        access_token: access.access_token,
        refresh_token: refresh.expose().to_owned(),
        token_type: "Bearer".into(),
        expires_in: access.expires_in,
    }))
}

/// The refresh-token grant: rotates the token, re-scopes the session to
/// `tenant_id` when its factors meet the policy there (RFC 9470's
/// `insufficient_user_authentication` when not), and answers a new access
/// token with the next refresh token.
pub async fn refresh(
    state: &AppState,
    presented: &Secret,
    tenant_id: Option<&str>,
    client: Option<&str>,
    credentials: &RequestCredentials,
) -> Result<TokenResponse, OAuthError> {
    let invalid = || {
        OAuthError::new(
            OAuthErrorCode::InvalidGrant,
            "the refresh token is not valid",
        )
    };
    let info = credential::parse(presented.expose()).map_err(|_| invalid())?;
    if info.kind != CredentialKind::Refresh {
        return Err(invalid());
    }
    let mode = info.mode;
    crate::routes::oauth::require_tls_for(mode, credentials)?;
    let digest = CredentialDigest::of(presented.expose());
    let now = state.clock.now();
    let session = state
        .store
        .session_by_refresh(mode, &digest)
        .await?
        .filter(|s| s.active_at(now))
        .ok_or_else(invalid)?;
    if client.is_some_and(|c| c != session.user_id) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidGrant,
            "the refresh token belongs to another client",
        ));
    }
    let principal = engine::login_user(state, mode, Some(&session.user_id))
        .await
        .map_err(|_| invalid())?
        .ok_or_else(invalid)?;
    let rescope = tenant_id.filter(|t| *t != session.tenant_id);
    if let Some(tenant) = rescope {
        let tree = state.caches.tree(&state.store, mode).await?;
        if !tree.contains(tenant) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                issuance::UNKNOWN_TENANT,
            ));
        }
        let (policy, _) = engine::effective_policy(state, mode, tenant)
            .await
            .map_err(|_| OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "try again"))?;
        let factors = state.store.user_factors(mode, &principal.user.id).await?;
        let login = Login {
            mode,
            record: latchkey_store::LoginRecord {
                id: String::new(),
                secret_digest: digest,
                user_id: Some(principal.user.id.clone()),
                subject: String::new(),
                tenant_id: tenant.to_owned(),
                redirect_uri: None,
                satisfied: session.factors.clone(),
                failures: 0,
                challenge: None,
                session_id: None,
                browser_code_digest: None,
                created_at: now,
                expires_at: now,
            },
            policy,
            user: Some(Arc::clone(&principal)),
            factors,
        };
        if !login.view().complete {
            return Err(OAuthError::new(
                OAuthErrorCode::InsufficientUserAuthentication,
                format!("the policy of {tenant} asks for more factors than this session's login passed; log in again for it"),
            ));
        }
    }
    let next = credential::generate(mode, CredentialKind::Refresh);
    let next_digest = CredentialDigest::of(next.expose());
    let sealed = state
        .keys
        .master()
        .seal(&sealing_context(&session.id), next.expose().as_bytes())
        .map_err(|_| {
            OAuthError::new(
                OAuthErrorCode::ServerError,
                "the server could not complete the request",
            )
        })?;
    let rotation = || Rotation {
        next: &next_digest,
        sealed_next: &sealed,
        tenant_id: rescope,
        now,
        retry_window_ms: RETRY_WINDOW_MS,
    };
    let record_reuse = |s: &SessionRecord| {
        crate::admin::audit::event(
            state,
            Some(mode),
            AuditAction::RefreshTokenReused,
            AuditActor::anonymous(),
            AuditTarget::new("session", &s.id),
            credentials.source.map(|ip| ip.to_string()),
        )
        .with_detail("userId", s.user_id.as_str())
    };
    let (mut outcome, mut written) = state
        .store
        .refresh_session(mode, &digest, rotation(), record_reuse)
        .await?;
    if outcome == Refreshed::Invalid {
        // Spent by a concurrent refresh between our read and our write:
        // asking again gets that refresh's answer.
        (outcome, written) = state
            .store
            .refresh_session(mode, &digest, rotation(), record_reuse)
            .await?;
    }
    if let Some(written) = written {
        state.applied(written).await;
    }
    let (session, refresh_token) = match outcome {
        Refreshed::Rotated(session) => (session, next.expose().to_owned()),
        Refreshed::Retry { session, successor } => {
            let plain = state
                .keys
                .master()
                .open(&sealing_context(&session.id), &successor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(invalid)?;
            (session, plain)
        }
        Refreshed::Reused(_) => {
            tracing::warn!(%mode, "a spent refresh token was reused; its session is ended");
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidGrant,
                "the refresh token was already used; its session has ended",
            ));
        }
        Refreshed::Invalid => return Err(invalid()),
    };
    let mut response = mint(state, mode, &principal, &session).await?;
    response.refresh_token = Some(refresh_token);
    Ok(response)
}

/// The wire shape of a session.
pub fn to_wire(session: &SessionRecord) -> Session {
    Session {
        id: session.id.clone(),
        user_id: session.user_id.clone(),
        tenant_id: session.tenant_id.clone(),
        factors: factors_of(session).into_iter().collect(),
        authenticated_at: session.auth_time,
        last_used_at: session.last_used_at,
        expires_at: session.expires_at,
        idle_expires_at: session.idle_expires_at(),
    }
}

/// A request made with a live session's access token
/// (`Authorization: Bearer <access token with sid>`).
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The token's mode.
    pub mode: Mode,
    /// The session, alive.
    pub session: SessionRecord,
    /// The user, not disabled.
    pub principal: Arc<Principal>,
    /// The client's address.
    pub source: Option<IpAddr>,
}

impl SessionUser {
    /// The user's id.
    pub fn user_id(&self) -> &str {
        &self.principal.user.id
    }
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        const HOW: &str = "send a session's access token as Authorization: Bearer <token>";
        let credentials = credentials_of(parts);
        let token = credentials
            .authorization
            .bearer()
            .ok_or(ApiError::Unauthenticated(HOW))?;
        let (mode, claims) = Mode::ALL
            .into_iter()
            .find_map(|mode| state.verify_access_token(token, mode).map(|c| (mode, c)))
            .ok_or(ApiError::Unauthenticated("the access token is not valid"))?;
        if mode == Mode::Live && !credentials.secure {
            return Err(ApiError::TlsRequired);
        }
        let sid = claims.session_id().ok_or(ApiError::Unauthenticated(
            "this access token belongs to no session; log in first",
        ))?;
        let session = state
            .store
            .session(mode, sid)
            .await?
            .filter(|s| s.active_at(state.clock.now()) && s.user_id == claims.user_id())
            .ok_or(ApiError::Unauthenticated("the session has ended"))?;
        let principal = engine::login_user(state, mode, Some(&session.user_id))
            .await?
            .ok_or(ApiError::Unauthenticated(
                "the session's user cannot log in",
            ))?;
        Ok(SessionUser {
            mode,
            session,
            principal,
            source: credentials.source,
        })
    }
}
