//! `/v1/me`: self-service with a session's access token: who am I, my
//! password, my authenticator and backup codes, my API keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::ids;
use latchkey_core::login::totp;
use latchkey_core::Secret;
use latchkey_types::api_keys::{CreateApiKey, CreatedApiKey};
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};
use latchkey_types::error::Problem;
use latchkey_types::login::{
    BackupCodes, ChangePassword, CodeStep, CreateOwnApiKey, EnrolledFactors, Me, TotpEnrolment,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::logins::{backup_code_digest, totp_context, totp_secret};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::login::engine;
use crate::login::sessions::{to_wire, SessionUser};
use crate::state::AppState;

/// How many backup codes a set holds.
pub const BACKUP_CODES: usize = 10;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(start_totp, remove_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(new_backup_codes))
        .routes(routes!(create_own_api_key))
}

impl SessionUser {
    /// An event acted by this session's user about itself.
    fn event(&self, state: &AppState, action: AuditAction) -> AuditEvent {
        crate::admin::audit::event(
            state,
            Some(self.mode),
            action,
            AuditActor::client(self.user_id()),
            AuditTarget::new("user", self.user_id()),
            self.source.map(|ip| ip.to_string()),
        )
        .with_detail("sessionId", self.session.id.as_str())
    }
}

/// A new set of backup codes: the codes to show once, and their digests
/// to store.
pub fn backup_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..BACKUP_CODES)
        .map(|_| {
            let raw = ids::random_lower_alnum(8);
            format!("{}-{}", &raw[..4], &raw[4..])
        })
        .collect();
    let digests = codes.iter().map(|c| backup_code_digest(c)).collect();
    (codes, digests)
}

/// The user, this session, and what the user has set up.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("sessionToken" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, user: SessionUser) -> Result<axum::Json<Me>, ApiError> {
    let factors = state.store.user_factors(user.mode, user.user_id()).await?;
    Ok(axum::Json(Me {
        user: user.principal.user.clone(),
        session: to_wire(&user.session),
        factors: EnrolledFactors {
            password: factors.password_hash.is_some(),
            totp: factors.totp_confirmed,
            backup_codes_left: factors.backup_codes.len() as i64,
        },
    }))
}

/// Changes the password (the current one is checked, unless none is set
/// yet) and ends the user's other sessions.
#[utoipa::path(put, path = "/v1/me/password", tag = "me", security(("sessionToken" = [])),
    request_body = ChangePassword,
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn change_password(
    State(state): State<AppState>,
    user: SessionUser,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let (policy, _) = engine::effective_policy(&state, user.mode, &user.session.tenant_id).await?;
    engine::check_new_password(
        &policy,
        &user.principal.user,
        &body.new_password,
        "newPassword",
    )?;
    let factors = state.store.user_factors(user.mode, user.user_id()).await?;
    if factors.password_hash.is_some()
        && !state
            .passwords
            .verify(factors.password_hash, Secret::new(body.current_password))
            .await
            .matched
    {
        return Err(ApiError::InvalidCredentials);
    }
    let hash = state
        .passwords
        .hash(Secret::new(body.new_password))
        .await
        .ok_or(ApiError::Internal)?;
    let event = user
        .event(&state, AuditAction::PasswordSet)
        .with_detail("by", "self");
    let written = state
        .store
        .set_password(
            user.mode,
            user.user_id(),
            &hash,
            state.clock.now(),
            Some(Some(&user.session.id)),
            |_| event,
        )
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts TOTP enrolment: a new secret, to confirm with a code from the
/// authenticator. Refused (409) while a confirmed authenticator is set up.
#[utoipa::path(post, path = "/v1/me/totp", tag = "me", security(("sessionToken" = [])),
    responses((status = 201, body = TotpEnrolment), (status = 401, body = Problem),
        (status = 409, body = Problem)))]
async fn start_totp(
    State(state): State<AppState>,
    user: SessionUser,
) -> Result<impl IntoResponse, ApiError> {
    let secret = totp::generate_secret();
    let sealed = state
        .keys
        .master()
        .seal(&totp_context(user.mode, user.user_id()), &secret)
        .map_err(|_| ApiError::Internal)?;
    state
        .store
        .start_totp(user.mode, user.user_id(), &sealed, state.clock.now())
        .await?;
    let account = &user.principal.user;
    let label = account
        .email
        .as_deref()
        .or(account.username.as_deref())
        .unwrap_or(&account.id);
    let issuer = match user.mode {
        latchkey_types::Mode::Live => "Latchkey".to_owned(),
        latchkey_types::Mode::Test => "Latchkey (test)".to_owned(),
    };
    let uri = totp::otpauth_uri(&issuer, label, &secret);
    let svg = totp::qr_svg(&uri).map_err(|_| ApiError::Internal)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TotpEnrolment {
            secret: totp::encode_secret(&secret),
            otpauth_uri: uri,
            qr_code_svg: svg,
        }),
    ))
}

/// Confirms the authenticator with a current code; answers the first
/// backup codes, shown once.
#[utoipa::path(post, path = "/v1/me/totp/confirm", tag = "me", security(("sessionToken" = [])),
    request_body = CodeStep,
    responses((status = 200, body = BackupCodes), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 409, body = Problem)))]
async fn confirm_totp(
    State(state): State<AppState>,
    user: SessionUser,
    ApiJson(body): ApiJson<CodeStep>,
) -> Result<axum::Json<BackupCodes>, ApiError> {
    let code = body
        .code
        .ok_or_else(|| ApiError::InvalidRequest("code is required".into()))?;
    let factors = state.store.user_factors(user.mode, user.user_id()).await?;
    if factors.totp_confirmed || factors.totp_secret.is_none() {
        return Err(ApiError::Conflict(
            "no TOTP enrolment is waiting for a code (POST /v1/me/totp starts one)".into(),
        ));
    }
    let secret =
        totp_secret(&state, user.mode, user.user_id(), &factors).ok_or(ApiError::Internal)?;
    let now = state.clock.now();
    let step = totp::check(&secret, &code, now.unix_timestamp(), None)
        .ok_or(ApiError::InvalidCredentials)?;
    let (codes, digests) = backup_codes();
    let event = user.event(&state, AuditAction::TotpEnrolled);
    let written = state
        .store
        .confirm_totp(user.mode, user.user_id(), step, &digests, now, |_| event)
        .await?;
    state.applied(written).await;
    Ok(axum::Json(BackupCodes {
        backup_codes: codes,
    }))
}

/// Removes the authenticator and its backup codes.
#[utoipa::path(delete, path = "/v1/me/totp", tag = "me", security(("sessionToken" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn remove_totp(
    State(state): State<AppState>,
    user: SessionUser,
) -> Result<StatusCode, ApiError> {
    let event = user
        .event(&state, AuditAction::FactorRemoved)
        .with_detail("factor", "totp");
    let written = state
        .store
        .remove_factor(
            user.mode,
            user.user_id(),
            latchkey_store::RemovableFactor::Totp,
            state.clock.now(),
            |_| event,
        )
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the backup codes with a new set, shown once.
#[utoipa::path(post, path = "/v1/me/backup-codes", tag = "me", security(("sessionToken" = [])),
    responses((status = 200, body = BackupCodes), (status = 401, body = Problem),
        (status = 409, body = Problem)))]
async fn new_backup_codes(
    State(state): State<AppState>,
    user: SessionUser,
) -> Result<axum::Json<BackupCodes>, ApiError> {
    let (codes, digests) = backup_codes();
    let event = user.event(&state, AuditAction::BackupCodesGenerated);
    let written = state
        .store
        .set_backup_codes(
            user.mode,
            user.user_id(),
            &digests,
            state.clock.now(),
            |_| event,
        )
        .await?;
    state.applied(written).await;
    Ok(axum::Json(BackupCodes {
        backup_codes: codes,
    }))
}

/// An API key of the session's user ("API key retrieval"): for the
/// session's tenant or one below it, with roles the user holds there, ending
/// when the session would at the latest; allowed where the tenant's login
/// policy says `selfServiceApiKeys`. The value is in this response only.
#[utoipa::path(post, path = "/v1/me/api-keys", tag = "me", security(("sessionToken" = [])),
    request_body = CreateOwnApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn create_own_api_key(
    State(state): State<AppState>,
    user: SessionUser,
    ApiJson(body): ApiJson<CreateOwnApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    use latchkey_core::login::selfservice::{allowed_key, AskedKey, KeyRefusal, SessionScope};
    let mode = user.mode;
    let tree = state.caches.tree(&state.store, mode).await?;
    let roles: Option<Vec<String>> = body
        .roles
        .as_ref()
        .map(|r| r.iter().map(|r| r.as_str().to_owned()).collect());
    let asked_tenant = body.tenant_id.as_deref();
    // The policy of the key's tenant (read before the rule runs, which is
    // pure).
    let key_tenant = asked_tenant.unwrap_or(&user.session.tenant_id);
    let allowed = if tree.contains(key_tenant) {
        engine::effective_policy(&state, mode, key_tenant)
            .await?
            .0
            .self_service_api_keys
    } else {
        false
    };
    let key = allowed_key(
        &tree,
        &user.principal.direct,
        SessionScope {
            tenant: &user.session.tenant_id,
            expires_at: user.session.expires_at,
        },
        AskedKey {
            tenant: asked_tenant,
            roles: roles.as_deref(),
            expires_at: body.expires_at,
        },
        |_| allowed,
    )
    .map_err(|refusal| match refusal {
        KeyRefusal::NotAllowed(_) | KeyRefusal::OutsideSession { .. } => {
            ApiError::Forbidden(refusal.to_string())
        }
        KeyRefusal::UnknownTenant(_) => ApiError::not_found("tenant"),
        KeyRefusal::RoleNotHeld(_) | KeyRefusal::OutlivesSession => {
            ApiError::InvalidRequest(refusal.to_string())
        }
    })?;
    let request = CreateApiKey {
        user_id: user.user_id().to_owned(),
        tenant_id: Some(key.tenant),
        name: body.name,
        roles: body.roles,
        expires_at: Some(key.expires_at),
        metadata: None,
        ratelimit: None,
        remaining: None,
    };
    let created = super::api_keys::create_key(&state, mode, request, |api_key| {
        user.event(&state, AuditAction::ApiKeyCreated)
            .with_detail("keyId", api_key.id.as_str())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}
