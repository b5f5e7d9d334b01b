//! Sessions: logout, a user's own sessions (with a session's access
//! token), and an admin's view of a user's sessions. Ending a session ends
//! its refresh-token family; its access tokens are then inactive at
//! introspection and refused by every endpoint that takes a session.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_store::SessionRecord;
use latchkey_types::audit::{AuditAction, AuditActor, AuditTarget};
use latchkey_types::error::Problem;
use latchkey_types::ids::{SessionId, UserId};
use latchkey_types::login::{Logout, Session};
use latchkey_types::schema::Cursor;
use latchkey_types::{Mode, Page};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_request, to_page};
use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, RecordPath};
use crate::http::transport::Credentials;
use crate::login::sessions::{to_wire, SessionUser};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(own_sessions))
        .routes(routes!(end_own_session))
        .routes(routes!(user_sessions, end_user_sessions))
}

/// Paging of session lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SessionListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

fn ended_event(
    state: &AppState,
    mode: Mode,
    actor: AuditActor,
    session: &SessionRecord,
    reason: &str,
    source: Option<std::net::IpAddr>,
) -> latchkey_types::audit::AuditEvent {
    crate::admin::audit::event(
        state,
        Some(mode),
        AuditAction::SessionEnded,
        actor,
        AuditTarget::new("session", &session.id),
        source.map(|ip| ip.to_string()),
    )
    .with_detail("userId", session.user_id.as_str())
    .with_detail("reason", reason)
}

/// Ends a session: with its access token (`Authorization: Bearer`), or
/// with its refresh token in the body (`{refreshToken}`). Its refresh
/// tokens stop working and its access tokens become inactive.
#[utoipa::path(post, path = "/auth/logout", tag = "sessions",
    security(("sessionToken" = []), ()), request_body(content = Option<Logout>),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn logout(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let mut parts = parts;
    let (mode, session_id) = if credentials.authorization.bearer().is_some() {
        let user = <SessionUser as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &state,
        )
        .await?;
        (user.mode, user.session.id)
    } else {
        let body: Logout = if body.is_empty() {
            Logout::default()
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::InvalidRequest(format!("the body is not valid: {e}")))?
        };
        let refresh = body.refresh_token.ok_or(ApiError::Unauthenticated(
            "send the session's access token as Authorization: Bearer, or {refreshToken}",
        ))?;
        let info = credential::parse(&refresh)
            .ok()
            .filter(|i| i.kind == CredentialKind::Refresh)
            .ok_or(ApiError::Unauthenticated("the refresh token is not valid"))?;
        if info.mode == Mode::Live && !credentials.secure {
            return Err(ApiError::TlsRequired);
        }
        let session = state
            .store
            .session_by_refresh(info.mode, &CredentialDigest::of(&refresh))
            .await?
            .filter(|s| s.ended_at.is_none())
            .ok_or(ApiError::Unauthenticated("the refresh token is not valid"))?;
        (info.mode, session.id)
    };
    let source = credentials.source;
    let written = state
        .store
        .end_session(mode, &session_id, None, "logout", state.clock.now(), |s| {
            ended_event(
                &state,
                mode,
                AuditActor::client(&s.user_id),
                s,
                "logout",
                source,
            )
        })
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "sessions",
    security(("sessionToken" = [])), params(SessionListQuery),
    responses((status = 200, body = Page<Session>), (status = 401, body = Problem)))]
async fn own_sessions(
    State(state): State<AppState>,
    user: SessionUser,
    ApiQuery(q): ApiQuery<SessionListQuery>,
) -> Result<axum::Json<Page<Session>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = state
        .store
        .list_sessions(user.mode, user.user_id(), state.clock.now(), &page)
        .await?;
    Ok(axum::Json(to_page(found.map(|s| to_wire(&s)))))
}

/// Ends one of the caller's own sessions (another device, or this one).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions",
    security(("sessionToken" = [])), params(("id" = SessionId, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn end_own_session(
    State(state): State<AppState>,
    user: SessionUser,
    RecordPath(id): RecordPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    let (mode, source) = (user.mode, user.source);
    let written = state
        .store
        .end_session(
            mode,
            &id,
            Some(user.user_id()),
            "ended_by_user",
            state.clock.now(),
            |s| {
                ended_event(
                    &state,
                    mode,
                    AuditActor::client(&s.user_id),
                    s,
                    "ended_by_user",
                    source,
                )
            },
        )
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn require_user(state: &AppState, mode: Mode, id: &UserId) -> Result<(), ApiError> {
    state
        .caches
        .principal(&state.store, mode, id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("user"))
}

/// A user's live sessions.
#[utoipa::path(get, path = "/v1/users/{id}/sessions", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path), SessionListQuery),
    responses((status = 200, body = Page<Session>), (status = 404, body = Problem)))]
async fn user_sessions(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiQuery(q): ApiQuery<SessionListQuery>,
) -> Result<axum::Json<Page<Session>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    require_user(&state, admin.mode(), &id).await?;
    let found = state
        .store
        .list_sessions(admin.mode(), &id, state.clock.now(), &page)
        .await?;
    Ok(axum::Json(to_page(found.map(|s| to_wire(&s)))))
}

/// Ends every session of a user.
#[utoipa::path(delete, path = "/v1/users/{id}/sessions", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn end_user_sessions(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
) -> Result<StatusCode, ApiError> {
    let written = state
        .store
        .end_user_sessions(
            admin.mode(),
            &id,
            "ended_by_admin",
            state.clock.now(),
            |n| {
                admin
                    .event(&state, AuditAction::SessionEnded, "user", &id)
                    .with_detail("sessions", *n)
                    .with_detail("reason", "ended_by_admin")
            },
        )
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
