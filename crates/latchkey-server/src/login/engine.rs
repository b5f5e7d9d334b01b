//! The login engine's server half: a login read from the store with what
//! core's rules need (the tenant's effective policy, the user, what the user
//! has enrolled), the login's secret checked, factors recorded, failures
//! counted and throttled, and the session handed out once the rules say the
//! login is complete. Which factors are offered, when a login is complete
//! and what `amr` says are `latchkey_core::login::flow`'s decisions.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::login::flow::{self, Enrolled, LoginView, MAX_LOGIN_FAILURES};
use latchkey_core::login::policy::{self, Policy, PolicySource};
use latchkey_store::{LoginRecord, UserFactors};
use latchkey_types::login::{Factor, LoginObject, SessionTokens};
use latchkey_types::Mode;

use crate::authn::bruteforce::Guard;
use crate::authn::cache::Principal;
use crate::http::error::ApiError;
use crate::http::transport::RequestCredentials;
use crate::state::AppState;

/// A login with everything the rules need.
#[derive(Debug)]
pub struct Login {
    /// Its mode.
    pub mode: Mode,
    /// As stored.
    pub record: LoginRecord,
    /// The effective policy of its tenant.
    pub policy: Policy,
    /// The user the identifier named, when it names one who may log in
    /// (exists, not disabled).
    pub user: Option<Arc<Principal>>,
    /// What that user has set up (nothing for nobody).
    pub factors: UserFactors,
}

impl Login {
    /// The factors passed.
    pub fn satisfied(&self) -> BTreeSet<Factor> {
        self.record
            .satisfied
            .iter()
            .filter_map(|name| name.parse().ok())
            .collect()
    }

    /// What the user can pass, when there is a user.
    pub fn enrolled(&self) -> Option<Enrolled> {
        let user = &self.user.as_ref()?.user;
        Some(Enrolled {
            password: self.factors.password_hash.is_some(),
            email: user.email.is_some(),
            phone: user.phone_number.is_some(),
            totp: self.factors.totp_confirmed,
            backup_codes: !self.factors.backup_codes.is_empty(),
            sso: BTreeSet::new(),
        })
    }

    /// The login as core's rules see it.
    pub fn view(&self) -> LoginView {
        flow::view(&self.policy, self.enrolled().as_ref(), &self.satisfied())
    }

    /// Whether `factor` may be passed now. A factor not offered is a
    /// request error, the same for every identifier (the offer shows
    /// nothing about the user until a factor proved who it is).
    pub fn require_offered(&self, factor: &Factor) -> Result<(), ApiError> {
        if self.record.session_id.is_some() || self.view().complete {
            return Err(ApiError::Conflict("this login is complete".into()));
        }
        if !self.view().factors.contains(factor) {
            return Err(ApiError::InvalidRequest(format!(
                "{factor} is not asked for at this step of this login"
            )));
        }
        Ok(())
    }
}

/// The per-identifier and per-address failure limits of logins, the same
/// numbers as the credential endpoints' (by default 10 failures per
/// identifier from one address and 50 from one address per minute, the
/// identifier under attack at 100 from everywhere, after which only
/// addresses that failed for it wait), counted apart. They decay each
/// minute: nobody can lock a user out for longer.
pub fn guard(
    limits: crate::authn::bruteforce::Limits,
    redis: Option<crate::authn::coordination::Redis>,
    namespace: &str,
) -> Guard {
    Guard::shared(limits, redis, &format!("{namespace}:login"))
}

/// The login secret of a request: `Authorization: Bearer lk_<mode>_login_…`.
fn presented_secret(credentials: &RequestCredentials) -> Result<(Mode, &str), ApiError> {
    const HOW: &str = "send the login's secret as Authorization: Bearer lk_<mode>_login_…";
    let secret = credentials
        .authorization
        .bearer()
        .ok_or(ApiError::Unauthenticated(HOW))?;
    let info = credential::parse(secret).map_err(|_| ApiError::Unauthenticated(HOW))?;
    if info.kind != CredentialKind::Login {
        return Err(ApiError::Unauthenticated(HOW));
    }
    Ok((info.mode, secret))
}

/// The login `id`, if the request carries its secret. A wrong secret and
/// an unknown id are the same 401. An expired login is 410, a dead one 403.
pub async fn authorize(
    state: &AppState,
    id: &str,
    credentials: &RequestCredentials,
) -> Result<Login, ApiError> {
    let (mode, secret) = presented_secret(credentials)?;
    let record = state.store.login(mode, id).await?;
    let presented = CredentialDigest::of(secret);
    let Some(record) = record.filter(|r| r.secret_digest.ct_eq(&presented)) else {
        return Err(ApiError::Unauthenticated(
            "the login secret is not valid for this login",
        ));
    };
    if record.expires_at <= state.clock.now() && record.session_id.is_none() {
        return Err(ApiError::LoginExpired("the login"));
    }
    if record.failures >= i64::from(MAX_LOGIN_FAILURES) {
        return Err(ApiError::LoginLocked);
    }
    load(state, mode, record).await
}

/// The effective policy of `tenant` in `mode`, and where it comes from.
pub async fn effective_policy(
    state: &AppState,
    mode: Mode,
    tenant: &str,
) -> Result<(Policy, PolicySource), ApiError> {
    let tree = state.caches.tree(&state.store, mode).await?;
    let stored = state.store.login_policies(mode).await?;
    let policies: HashMap<String, Policy> = stored
        .iter()
        .map(|(tenant, wire)| (tenant.clone(), Policy::from_wire(wire)))
        .collect();
    let (policy, source) = policy::effective(&tree, &policies, tenant);
    Ok((policy.into_owned(), source))
}

/// The user `user_id` names, if it may log in.
pub async fn login_user(
    state: &AppState,
    mode: Mode,
    user_id: Option<&str>,
) -> Result<Option<Arc<Principal>>, ApiError> {
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let principal = state.caches.principal(&state.store, mode, user_id).await?;
    Ok(principal.filter(|p| !p.user.disabled))
}

/// A stored login with its policy, user and factors.
pub async fn load(state: &AppState, mode: Mode, record: LoginRecord) -> Result<Login, ApiError> {
    let (policy, _) = effective_policy(state, mode, &record.tenant_id).await?;
    let user = login_user(state, mode, record.user_id.as_deref()).await?;
    let factors = match &user {
        Some(p) => state.store.user_factors(mode, &p.user.id).await?,
        None => UserFactors::default(),
    };
    Ok(Login {
        mode,
        record,
        policy,
        user,
        factors,
    })
}

/// `Some(seconds)` when this login's subject or the caller's address is
/// throttled now.
pub async fn throttled(state: &AppState, login: &Login, source: Option<IpAddr>) -> Option<u64> {
    let ip = source?;
    let now = state.clock.now().unix_timestamp();
    state
        .login_guard
        .check(ip, Some(&login.record.subject), now)
        .await
}

/// Counts a failed step (and a wrong try of the code in flight) and
/// answers it: `invalid_credentials`, the same for every cause.
pub async fn failed(
    state: &AppState,
    login: &Login,
    source: Option<IpAddr>,
    challenge: bool,
) -> ApiError {
    if let Some(ip) = source {
        let now = state.clock.now().unix_timestamp();
        state
            .login_guard
            .record_failure(ip, Some(&login.record.subject), now)
            .await;
    }
    match state
        .store
        .login_failed(login.mode, &login.record.id, challenge)
        .await
    {
        Ok(_) => ApiError::InvalidCredentials,
        Err(e) => e.into(),
    }
}

/// Records `factor` as passed (spending the code or link in flight when
/// `clear_challenge`), re-reading the login when another step changed it
/// meanwhile.
pub async fn passed(
    state: &AppState,
    mut login: Login,
    factor: Factor,
    clear_challenge: bool,
) -> Result<Login, ApiError> {
    for _ in 0..4 {
        let mut after: BTreeSet<Factor> = login.satisfied();
        after.insert(factor.clone());
        let names: Vec<String> = after.iter().map(|f| f.name().into_owned()).collect();
        if state
            .store
            .login_passed(
                login.mode,
                &login.record.id,
                &login.record.satisfied,
                &names,
                clear_challenge,
            )
            .await?
        {
            login.record.satisfied = names;
            if clear_challenge {
                login.record.challenge = None;
            }
            return Ok(login);
        }
        let Some(record) = state.store.login(login.mode, &login.record.id).await? else {
            return Err(ApiError::not_found("login"));
        };
        if record.session_id.is_some() {
            return Err(ApiError::Conflict("this login is complete".into()));
        }
        login.record = record;
    }
    Err(ApiError::Conflict(
        "the login changed while this step ran; retry".into(),
    ))
}

/// Whether `password` may become `user`'s under `policy` (length, the
/// common list, not the account's own id, email or username).
pub fn check_new_password(
    policy: &Policy,
    user: &latchkey_types::admin::User,
    password: &str,
    field: &str,
) -> Result<(), ApiError> {
    let names: Vec<&str> = [
        user.email.as_deref(),
        user.username.as_deref(),
        Some(user.id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    latchkey_core::login::password::check_new(password, policy.password_min_length, &names)
        .map_err(|e| ApiError::InvalidRequest(format!("{field}: {e}")))
}

/// Marks the address a passed code or link went to as proven (email for
/// `email_code` and `magic_link`, phone for `sms_code`).
pub async fn address_proven(
    state: &AppState,
    login: &Login,
    factor: &Factor,
) -> Result<(), ApiError> {
    let Some(user) = login.user.as_ref().map(|p| &p.user) else {
        return Ok(());
    };
    let (phone, address, verified) = match factor {
        Factor::EmailCode | Factor::MagicLink => (false, &user.email, user.email_verified),
        Factor::SmsCode => (true, &user.phone_number, user.phone_verified),
        _ => return Ok(()),
    };
    if let (Some(address), false) = (address, verified) {
        let written = state
            .store
            .mark_verified(login.mode, &user.id, phone, address)
            .await?;
        state.applied(written).await;
    }
    Ok(())
}

/// The login object to answer; when the login is complete and its session
/// not yet handed out, the session is created and carried, once, to an
/// answer whose caller presented the browser's code when the login needs
/// one (an SSO return completed it: `codes::browser_code_accepted`).
pub async fn answer(
    state: &AppState,
    login: Login,
    secret: Option<String>,
    source: Option<IpAddr>,
    browser_code: Option<&str>,
) -> Result<LoginObject, ApiError> {
    let view = login.view();
    let mut session: Option<SessionTokens> = None;
    let code_ok = latchkey_core::login::codes::browser_code_accepted(
        &login.record.id,
        login.record.browser_code_digest.as_deref(),
        browser_code,
    );
    if view.complete && login.record.session_id.is_none() && code_ok {
        if let Some(principal) = &login.user {
            session = super::sessions::start(state, &login, principal, source).await?;
        }
    }
    let complete = view.complete || login.record.session_id.is_some();
    Ok(LoginObject {
        id: login.record.id.clone(),
        secret,
        mode: login.mode,
        tenant_id: login.record.tenant_id.clone(),
        expires_at: login.record.expires_at,
        factors: if complete {
            Vec::new()
        } else {
            view.factors.into_iter().collect()
        },
        satisfied: login.satisfied().into_iter().collect(),
        remaining: if complete {
            Vec::new()
        } else {
            view.remaining
                .into_iter()
                .map(|c| c.into_iter().collect())
                .collect()
        },
        complete,
        session,
        authorization_url: None,
    })
}
