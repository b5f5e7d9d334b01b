//! `/auth/logins`: a login and its steps, one per factor. Public (no admin
//! key): the login's secret authorizes each step. What is offered and when
//! the login is complete is core's rule (`latchkey_core::login::flow`); the
//! engine (`crate::login::engine`) stores and answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::ids;
use latchkey_core::login::codes;
use latchkey_core::login::flow::{CODE_TTL_SECONDS, LOGIN_TTL_SECONDS, MAX_CODE_TRIES};
use latchkey_core::login::totp;
use latchkey_core::Secret;
use latchkey_store::{Challenge, LoginRecord, UserFactors};
use latchkey_types::error::Problem;
use latchkey_types::ids::LoginId;
use latchkey_types::login::{CodeStep, CreateLogin, Factor, LoginObject, PasswordStep};
use latchkey_types::Mode;
use serde::Deserialize;
use time::Duration;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, RecordPath};
use crate::http::transport::Credentials;
use crate::login::delivery::Channel;
use crate::login::engine::{self, Login};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_login))
        .routes(routes!(get_login))
        .routes(routes!(password_step))
        .routes(routes!(totp_step))
        .routes(routes!(backup_code_step))
        .routes(routes!(email_code_step))
        .routes(routes!(sms_code_step))
        .routes(routes!(magic_link_step))
}

/// A new code or link may be sent this long after the last one.
const RESEND_AFTER_SECONDS: i64 = 30;

/// Sends a new code (or link) for `factor` and keeps its digest as the
/// login's challenge. An identifier that names nobody, or a user without
/// the address, gets the same answer: a challenge is kept that no message
/// carries, and it fails like a wrong code.
async fn send_challenge(
    state: &AppState,
    login: Login,
    factor: Factor,
    source: Option<std::net::IpAddr>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    let channel = match factor {
        Factor::SmsCode => Channel::Sms,
        _ => Channel::Email,
    };
    if !state.delivery.can_send(login.mode, channel) {
        return Err(ApiError::DeliveryFailed);
    }
    let now = state.clock.now();
    if let Some(previous) = &login.record.challenge {
        let sent_at = previous.expires_at - Duration::seconds(CODE_TTL_SECONDS);
        let wait = (sent_at + Duration::seconds(RESEND_AFTER_SECONDS) - now).whole_seconds();
        if wait > 0 {
            return Err(ApiError::Throttled(wait as u64));
        }
    }
    let user = login.user.as_ref().map(|p| &p.user);
    let (digest, message) = if factor == Factor::MagicLink {
        let token = credential::generate(login.mode, CredentialKind::Link);
        let url = format!(
            "{}/auth/magic?token={}",
            state.config.issuer,
            token.expose()
        );
        (
            CredentialDigest::of(token.expose()).to_hex(),
            codes::magic_link_message(&url),
        )
    } else {
        let code = codes::new_code();
        let message = match channel {
            Channel::Sms => codes::sms_code_message(&code),
            Channel::Email => codes::email_code_message(&code),
        };
        (codes::code_digest(&login.record.id, &code), message)
    };
    let to = match channel {
        Channel::Email => user.and_then(|u| u.email.clone()),
        Channel::Sms => user.and_then(|u| u.phone_number.clone()),
    };
    if let Some(to) = to {
        state
            .delivery
            .send(state, login.mode, channel, &to, message)
            .await?;
    }
    let challenge = Challenge {
        factor: factor.name().into_owned(),
        digest,
        expires_at: now + Duration::seconds(CODE_TTL_SECONDS),
        tries: 0,
    };
    state
        .store
        .set_challenge(login.mode, &login.record.id, &challenge)
        .await?;
    let mut login = login;
    login.record.challenge = Some(challenge);
    Ok(axum::Json(
        engine::answer(state, login, None, source, None).await?,
    ))
}

/// Without a code, sends one (or a link); with one, checks it against the
/// login's challenge: once, within 10 minutes, within 5 tries.
async fn challenge_step(
    state: &AppState,
    credentials: &crate::http::transport::RequestCredentials,
    id: &str,
    factor: Factor,
    code: Option<String>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    let login = engine::authorize(state, id, credentials).await?;
    login.require_offered(&factor)?;
    if let Some(seconds) = engine::throttled(state, &login, credentials.source).await {
        return Err(ApiError::Throttled(seconds));
    }
    let Some(code) = code else {
        return send_challenge(state, login, factor, credentials.source).await;
    };
    let challenge = match &login.record.challenge {
        Some(c) if c.factor == factor.name() => c.clone(),
        _ => {
            return Err(ApiError::InvalidRequest(format!(
                "no {factor} was sent for this login; send one first (a POST without a code)"
            )))
        }
    };
    if challenge.expires_at <= state.clock.now() || challenge.tries >= i64::from(MAX_CODE_TRIES) {
        return Err(ApiError::LoginExpired("the code"));
    }
    if !codes::code_matches(&login.record.id, &code, &challenge.digest) {
        return Err(engine::failed(state, &login, credentials.source, true).await);
    }
    let login = engine::passed(state, login, factor.clone(), true).await?;
    engine::address_proven(state, &login, &factor).await?;
    Ok(axum::Json(
        engine::answer(state, login, None, credentials.source, None).await?,
    ))
}

/// Sends a 6-digit code to the user's email (`{}`), or checks it
/// (`{code}`).
#[utoipa::path(post, path = "/auth/logins/{id}/email-code", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path)), request_body = CodeStep,
    responses((status = 200, body = LoginObject), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
async fn email_code_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
    ApiJson(body): ApiJson<CodeStep>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    challenge_step(&state, &credentials, &id, Factor::EmailCode, body.code).await
}

/// Sends a 6-digit code to the user's phone (`{}`), or checks it
/// (`{code}`).
#[utoipa::path(post, path = "/auth/logins/{id}/sms-code", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path)), request_body = CodeStep,
    responses((status = 200, body = LoginObject), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
async fn sms_code_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
    ApiJson(body): ApiJson<CodeStep>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    challenge_step(&state, &credentials, &id, Factor::SmsCode, body.code).await
}

/// Sends a magic link to the user's email. The link's page asks the
/// person to confirm (a GET never consumes it: mail scanners follow links);
/// the confirmation completes the factor, and the login's holder sees it
/// when it next polls.
#[utoipa::path(post, path = "/auth/logins/{id}/magic-link", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path)),
    responses((status = 200, body = LoginObject), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
async fn magic_link_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    challenge_step(&state, &credentials, &id, Factor::MagicLink, None).await
}

/// The longest identifier read (an email is at most 254 characters).
const MAX_IDENTIFIER_CHARS: usize = 320;

/// What throttling counts an identifier's failures against: the user id,
/// or, for an identifier that names nobody, a digest of the identifier as
/// typed (trimmed, lowercased), so both are throttled alike.
fn subject_of(user: Option<&str>, identifier: Option<&str>) -> String {
    match (user, identifier) {
        (Some(user), _) => user.to_owned(),
        (None, Some(identifier)) => {
            let hex = CredentialDigest::of(&identifier.trim().to_lowercase()).to_hex();
            format!("id:{}", &hex[..32])
        }
        (None, None) => "anonymous".to_owned(),
    }
}

/// Starts a login. An identifier that names nobody gets the same answer,
/// and fails at its first factor like a wrong password.
#[utoipa::path(post, path = "/auth/logins", tag = "logins", request_body = CreateLogin,
    responses((status = 201, body = LoginObject), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn create_login(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    ApiJson(body): ApiJson<CreateLogin>,
) -> Result<impl IntoResponse, ApiError> {
    let mode = body.mode.unwrap_or(Mode::Test);
    if mode == Mode::Live && !credentials.secure {
        return Err(ApiError::TlsRequired);
    }
    let identifier = body.identifier.as_deref().map(str::trim);
    if let Some(identifier) = identifier {
        if identifier.is_empty()
            || identifier.chars().count() > MAX_IDENTIFIER_CHARS
            || identifier.contains('\0')
        {
            return Err(ApiError::InvalidRequest(format!(
                "identifier must be 1 to {MAX_IDENTIFIER_CHARS} characters"
            )));
        }
    }
    let tenant_id = body
        .tenant_id
        .clone()
        .unwrap_or_else(|| state.workspace.id.clone());
    let tree = state.caches.tree(&state.store, mode).await?;
    if !tree.contains(&tenant_id) {
        return Err(ApiError::not_found("tenant"));
    }
    if let Some(uri) = &body.redirect_uri {
        // Registered in the tenant's policy, exactly: a login never sends a
        // browser anywhere else.
        let (policy, _) = engine::effective_policy(&state, mode, &tenant_id).await?;
        if !policy
            .allowed_redirect_uris
            .iter()
            .any(|allowed| allowed == uri)
        {
            return Err(ApiError::InvalidRequest(
                "redirectUri is not one of the allowedRedirectUris of the tenant's login policy"
                    .into(),
            ));
        }
    }
    let user_id = match identifier {
        Some(identifier) => state.store.find_login_user(mode, identifier).await?,
        None => None,
    };
    let now = state.clock.now();
    let secret = credential::generate(mode, CredentialKind::Login);
    let record = LoginRecord {
        id: ids::new_prefixed_id("lgn"),
        secret_digest: CredentialDigest::of(secret.expose()),
        subject: subject_of(user_id.as_deref(), identifier),
        user_id,
        tenant_id,
        redirect_uri: body.redirect_uri,
        satisfied: Vec::new(),
        failures: 0,
        challenge: None,
        session_id: None,
        browser_code_digest: None,
        created_at: now,
        expires_at: now + Duration::seconds(LOGIN_TTL_SECONDS),
    };
    if body
        .state
        .as_ref()
        .is_some_and(|s| s.len() > 512 || s.contains('\0'))
    {
        return Err(ApiError::InvalidRequest(
            "state has at most 512 bytes".into(),
        ));
    }
    state.store.create_login(mode, &record, now).await?;
    let login = engine::load(&state, mode, record).await?;
    let authorization_url = match &body.sso {
        Some(provider) => {
            login.require_offered(&Factor::Sso(provider.as_str().to_owned()))?;
            Some(
                crate::federation::sso::start(
                    &state,
                    &login,
                    provider.as_str(),
                    body.state.clone(),
                )
                .await
                .map_err(super::sso::api_error)?,
            )
        }
        None => None,
    };
    let mut answer = engine::answer(
        &state,
        login,
        Some(secret.expose().to_owned()),
        credentials.source,
        None,
    )
    .await?;
    answer.authorization_url = authorization_url;
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

/// `GET /auth/logins/{id}`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PollQuery {
    /// The `code` an SSO return brought the browser to the `redirectUri`
    /// with: a login completed through SSO hands its session only to a
    /// poll that presents it.
    #[param(max_length = 128)]
    code: Option<String>,
}

/// The login as it stands: a machine polls here while a person clicks a
/// link. The first answer after completion carries the session, once; a
/// login completed through SSO needs the browser's `code` for it (403
/// `forbidden` without it).
#[utoipa::path(get, path = "/auth/logins/{id}", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path), PollQuery),
    responses((status = 200, body = LoginObject), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 410, body = Problem)))]
async fn get_login(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
    ApiQuery(query): ApiQuery<PollQuery>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    let login = engine::authorize(&state, &id, &credentials).await?;
    let code = query.code.as_deref();
    let waiting = login.view().complete && login.record.session_id.is_none();
    let accepted = latchkey_core::login::codes::browser_code_accepted(
        &login.record.id,
        login.record.browser_code_digest.as_deref(),
        code,
    );
    if waiting && !accepted {
        return Err(ApiError::Forbidden(
            "this login was completed through SSO: present the code its browser brought \
             to the redirectUri (?code=)"
                .into(),
        ));
    }
    Ok(axum::Json(
        engine::answer(&state, login, None, credentials.source, code).await?,
    ))
}

/// Runs a factor's check: throttling first, then `check`, then the
/// factor recorded or the failure counted.
async fn step<F, Fut>(
    state: &AppState,
    credentials: &crate::http::transport::RequestCredentials,
    id: &str,
    factor: Factor,
    check: F,
) -> Result<axum::Json<LoginObject>, ApiError>
where
    F: FnOnce(Login) -> Fut,
    Fut: std::future::Future<Output = Result<(Login, bool), ApiError>>,
{
    let login = engine::authorize(state, id, credentials).await?;
    login.require_offered(&factor)?;
    if let Some(seconds) = engine::throttled(state, &login, credentials.source).await {
        return Err(ApiError::Throttled(seconds));
    }
    let (login, ok) = check(login).await?;
    if !ok {
        return Err(engine::failed(state, &login, credentials.source, false).await);
    }
    let login = engine::passed(state, login, factor, false).await?;
    Ok(axum::Json(
        engine::answer(state, login, None, credentials.source, None).await?,
    ))
}

/// Checks the password. Unknown identifier, user without a password and
/// wrong password: the same 401, after the same Argon2id work.
#[utoipa::path(post, path = "/auth/logins/{id}/password", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path)), request_body = PasswordStep,
    responses((status = 200, body = LoginObject), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem)))]
async fn password_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
    ApiJson(body): ApiJson<PasswordStep>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    let pool = state.passwords.clone();
    let state2 = state.clone();
    step(
        &state,
        &credentials,
        &id,
        Factor::Password,
        |login| async move {
            let stored = login.factors.password_hash.clone();
            let checked = pool.verify(stored, Secret::new(body.password)).await;
            if let (Some(rehash), Some(user)) = (checked.rehashed, &login.user) {
                // An imported hash becomes Argon2id now that the password
                // is known; a failure here costs the login nothing.
                if let Err(e) = state2
                    .store
                    .rehash_password(
                        login.mode,
                        &user.user.id,
                        &rehash.old,
                        &rehash.new,
                        state2.clock.now(),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "could not replace an imported password hash");
                }
            }
            Ok((login, checked.matched))
        },
    )
    .await
}

/// The sealing context of a user's TOTP secret.
pub fn totp_context(mode: Mode, user_id: &str) -> String {
    format!("totp:{}:{user_id}", mode.as_str())
}

/// The user's TOTP secret, opened.
pub fn totp_secret(
    state: &AppState,
    mode: Mode,
    user_id: &str,
    factors: &UserFactors,
) -> Option<Vec<u8>> {
    let sealed = factors.totp_secret.as_deref()?;
    state
        .keys
        .master()
        .open(&totp_context(mode, user_id), sealed)
        .ok()
}

/// Checks an authenticator code; each code counts once per user, on every
/// node (the store keeps the last step used).
#[utoipa::path(post, path = "/auth/logins/{id}/totp", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path)), request_body = CodeStep,
    responses((status = 200, body = LoginObject), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem)))]
async fn totp_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
    ApiJson(body): ApiJson<CodeStep>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    let code = body
        .code
        .ok_or_else(|| ApiError::InvalidRequest("code is required".into()))?;
    let st = state.clone();
    step(
        &state,
        &credentials,
        &id,
        Factor::Totp,
        |login| async move {
            let Some(user) = login.user.clone() else {
                return Ok((login, false));
            };
            let now = st.clock.now().unix_timestamp();
            let matched = totp_secret(&st, login.mode, &user.user.id, &login.factors)
                .filter(|_| login.factors.totp_confirmed)
                .and_then(|secret| totp::check(&secret, &code, now, login.factors.totp_last_step));
            let ok = match matched {
                Some(step) => {
                    st.store
                        .use_totp_step(login.mode, &user.user.id, step)
                        .await?
                }
                None => false,
            };
            Ok((login, ok))
        },
    )
    .await
}

/// The digest a backup code is stored as: of the code as typed, without
/// dashes or spaces, lowercased.
pub fn backup_code_digest(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    CredentialDigest::of(&normal).to_hex()
}

/// Spends one of the user's backup codes, where TOTP is asked.
#[utoipa::path(post, path = "/auth/logins/{id}/backup-code", tag = "logins",
    security(("loginSecret" = [])), params(("id" = LoginId, Path)), request_body = CodeStep,
    responses((status = 200, body = LoginObject), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem)))]
async fn backup_code_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath(id): RecordPath<LoginId>,
    ApiJson(body): ApiJson<CodeStep>,
) -> Result<axum::Json<LoginObject>, ApiError> {
    let code = body
        .code
        .filter(|c| c.len() <= 64)
        .ok_or_else(|| ApiError::InvalidRequest("code is required".into()))?;
    let st = state.clone();
    step(
        &state,
        &credentials,
        &id,
        Factor::BackupCode,
        |login| async move {
            let Some(user) = login.user.clone() else {
                return Ok((login, false));
            };
            let ok = st
                .store
                .use_backup_code(login.mode, &user.user.id, &backup_code_digest(&code))
                .await?;
            Ok((login, ok))
        },
    )
    .await
}
