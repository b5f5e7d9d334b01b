//! An admin's hand on a user's login factors: set a password, remove a
//! factor.

use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::Secret;
use latchkey_store::RemovableFactor;
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::ids::UserId;
use latchkey_types::login::SetPassword;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, RecordPath};
use crate::login::engine;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_password))
        .routes(routes!(remove_factor))
}

/// Sets a user's password (checked against the workspace policy's
/// minimum length and the common-password list). The user's sessions
/// go on.
#[utoipa::path(put, path = "/v1/users/{id}/password", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)), request_body = SetPassword,
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn set_password(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let mode = admin.mode();
    let principal = state
        .caches
        .principal(&state.store, mode, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let (policy, _) = engine::effective_policy(&state, mode, &state.workspace.id).await?;
    engine::check_new_password(&policy, &principal.user, &body.password, "password")?;
    let hash = state
        .passwords
        .hash(Secret::new(body.password))
        .await
        .ok_or(ApiError::Internal)?;
    let event = admin
        .event(&state, AuditAction::PasswordSet, "user", &id)
        .with_detail("by", "admin");
    let written = state
        .store
        .set_password(mode, &id, &hash, state.clock.now(), None, |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a factor of a user: `password`, `totp` (with its backup codes)
/// or `backup_code` (the codes only).
#[utoipa::path(delete, path = "/v1/users/{id}/factors/{factor}", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path), ("factor" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn remove_factor(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath((id, factor)): RecordPath<(UserId, String)>,
) -> Result<StatusCode, ApiError> {
    let which = match factor.as_str() {
        "password" => RemovableFactor::Password,
        "totp" => RemovableFactor::Totp,
        "backup_code" | "backup_codes" => RemovableFactor::BackupCodes,
        _ => {
            return Err(ApiError::not_found(
                "factor (one of password, totp, backup_code)",
            ))
        }
    };
    let event = admin
        .event(&state, AuditAction::FactorRemoved, "user", &id)
        .with_detail("factor", factor.as_str());
    let written = state
        .store
        .remove_factor(admin.mode(), &id, which, state.clock.now(), |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
