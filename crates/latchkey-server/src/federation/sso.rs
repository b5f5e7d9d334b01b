//! SSO: a login's `sso:<providerId>` factor through an OpenID Connect or
//! OAuth 2.0 provider, Latchkey as relying party. The browser is sent to
//! the provider with `state`, a `nonce` and a PKCE S256 challenge; the flow
//! is stored (its `state` as a digest, its verifier sealed) so that the
//! callback can land on any node, and is used once. At the callback the
//! code is exchanged, the ID token checked with the provider's published
//! keys (`latchkey_verify::KeyCache`, the algorithm bound to the key) and
//! core's rules (`latchkey_core::federation::oidc`), or the userinfo read
//! for plain OAuth 2.0; the identity is linked (by subject, or by an email
//! the provider verified) or provisioned, and the factor recorded on the
//! login. The application then polls its login for the session. SAML
//! providers share the flow, linking and recording; their request and
//! response are `federation::saml`'s.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::credential::CredentialDigest;
use latchkey_core::federation::oidc::{self as rules, External, Link};
use latchkey_core::federation::saml as saml_rules;
use latchkey_core::Secret;
use latchkey_store::{
    Identity, IdentityProviderRecord, NewLinkedUser, NewUser, SsoFlow, StoreError,
};
use latchkey_types::audit::{AuditAction, AuditActor, AuditTarget};
use latchkey_types::federation::ProviderType;
use latchkey_types::login::Factor;
use latchkey_types::{JsonObject, Mode, UserKind};
use latchkey_verify::jwt::verify_jws;
use latchkey_verify::KeyCache;
use parking_lot::RwLock;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::Value;

use crate::login::engine::{self, Login};
use crate::state::AppState;

/// The largest document read from a provider, in bytes.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why an SSO step or callback failed.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// No such provider in the login's mode.
    #[error("no such identity provider")]
    UnknownProvider,
    /// The provider could not be reached or answered nonsense.
    #[error("the identity provider failed: {0}")]
    Provider(String),
    /// What came back is not acceptable (state, iss, token, user).
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn refused(why: impl std::fmt::Display) -> SsoError {
    SsoError::Refused(why.to_string())
}

/// A provider's endpoints and keys, as configured or discovered.
#[derive(Debug)]
pub struct Provider {
    /// As stored.
    pub record: IdentityProviderRecord,
    issuer: Option<String>,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    keys: Option<KeyCache>,
    /// Whether the provider sends `iss` with its authorization responses
    /// (RFC 9207): then one must come, and be its issuer.
    iss_parameter: bool,
    /// A SAML IdP, as its configuration says.
    pub(crate) saml: Option<saml_rules::Idp>,
}

/// Providers in memory, by mode and id, rebuilt when their record changes.
#[derive(Debug)]
pub struct Providers {
    loaded: RwLock<HashMap<(Mode, String), Arc<Provider>>>,
    http: reqwest::Client,
}

impl Default for Providers {
    fn default() -> Self {
        Providers {
            loaded: RwLock::default(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<Value, SsoError> {
    let mut request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| SsoError::Provider(format!("GET {url}: {e}")))?;
    read_json(url, response).await
}

async fn read_json(url: &str, mut response: reqwest::Response) -> Result<Value, SsoError> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| SsoError::Provider(format!("{url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(SsoError::Provider(format!(
                "{url}: the answer is too large"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|_| SsoError::Provider(format!("{url} answered {status} with no JSON")))?;
    if !status.is_success() {
        let error = value.get("error").and_then(Value::as_str).unwrap_or("?");
        return Err(SsoError::Provider(format!(
            "{url} answered {status} ({error})"
        )));
    }
    Ok(value)
}

impl Providers {
    /// The provider `id` of `mode`, discovered when its record is new or
    /// changed (one store read each time: SSO is a browser's round trip,
    /// not a hot path, and a replaced provider takes effect at once on
    /// every node).
    pub async fn get(
        &self,
        state: &AppState,
        mode: Mode,
        id: &str,
    ) -> Result<Arc<Provider>, SsoError> {
        let record = state
            .store
            .identity_provider(mode, id)
            .await?
            .ok_or(SsoError::UnknownProvider)?;
        let key = (mode, id.to_owned());
        if let Some(p) = self.loaded.read().get(&key) {
            let same = p.record.updated_at == record.updated_at
                && p.record.config == record.config
                && p.record.secret_sealed == record.secret_sealed;
            if same {
                return Ok(p.clone());
            }
        }
        let provider = Arc::new(self.build(state, record).await?);
        self.loaded.write().insert(key, provider.clone());
        Ok(provider)
    }

    async fn build(
        &self,
        state: &AppState,
        record: IdentityProviderRecord,
    ) -> Result<Provider, SsoError> {
        match record.config.kind {
            Some(ProviderType::Oidc) => {
                let issuer = record.config.issuer.clone().unwrap_or_default();
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc: Discovery =
                    serde_json::from_value(get_json(&self.http, &url, None).await?)
                        .map_err(|e| SsoError::Provider(format!("{url}: {e}")))?;
                if doc.issuer != issuer {
                    return Err(SsoError::Provider(format!(
                        "the discovery document names issuer {:?}, not {issuer:?}",
                        doc.issuer
                    )));
                }
                let clock = state.clock.clone();
                let keys = KeyCache::remote(
                    doc.jwks_uri,
                    self.http.clone(),
                    Arc::new(move || clock.now().unix_timestamp()),
                );
                Ok(Provider {
                    issuer: Some(issuer),
                    authorization_endpoint: doc.authorization_endpoint,
                    token_endpoint: doc.token_endpoint,
                    userinfo_endpoint: doc.userinfo_endpoint,
                    keys: Some(keys),
                    iss_parameter: doc.authorization_response_iss_parameter_supported,
                    saml: None,
                    record,
                })
            }
            Some(ProviderType::Oauth2) => Ok(Provider {
                issuer: None,
                authorization_endpoint: record.config.authorization_url.clone().unwrap_or_default(),
                token_endpoint: record.config.token_url.clone().unwrap_or_default(),
                userinfo_endpoint: record.config.userinfo_url.clone(),
                keys: None,
                iss_parameter: false,
                saml: None,
                record,
            }),
            Some(ProviderType::Saml) => {
                let idp = saml_rules::idp(&record.config)
                    .map_err(|e| SsoError::Provider(format!("SAML configuration: {e}")))?;
                Ok(Provider {
                    issuer: None,
                    authorization_endpoint: idp.sso_url.clone(),
                    token_endpoint: String::new(),
                    userinfo_endpoint: None,
                    keys: None,
                    iss_parameter: false,
                    saml: Some(idp),
                    record,
                })
            }
            None => Err(SsoError::Refused("the provider has no type".into())),
        }
    }
}

/// The sealing context of a provider's client secret.
pub fn secret_context(mode: Mode, provider_id: &str) -> String {
    format!("idp-client-secret:{mode}:{provider_id}")
}

fn verifier_context(mode: Mode, state_digest: &str) -> String {
    format!("sso-pkce:{mode}:{state_digest}")
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Stores a flow: the browser's return finds it by the digest of the
/// `state` (OIDC) or `RelayState` (SAML) it carries, once.
pub(crate) async fn store_flow(
    state: &AppState,
    login: &Login,
    provider_id: &str,
    presented: &str,
    nonce: String,
    sealed_verifier: impl FnOnce(&str) -> Result<String, SsoError>,
    client_state: Option<String>,
) -> Result<(), SsoError> {
    let state_digest = CredentialDigest::of(presented).to_hex();
    let verifier_sealed = sealed_verifier(&state_digest)?;
    let now = state.clock.now();
    state
        .store
        .create_sso_flow(
            login.mode,
            &SsoFlow {
                state_digest,
                login_id: login.record.id.clone(),
                provider_id: provider_id.to_owned(),
                nonce,
                verifier_sealed,
                client_state,
                expires_at: now + time::Duration::seconds(rules::FLOW_TTL_SECONDS),
            },
            now,
        )
        .await?;
    Ok(())
}

/// Starts the SSO factor of `login` with `provider_id`: stores the flow and
/// answers where to send the browser.
pub async fn start(
    state: &AppState,
    login: &Login,
    provider_id: &str,
    client_state: Option<String>,
) -> Result<String, SsoError> {
    if login.record.redirect_uri.is_none() {
        return Err(refused(
            "an SSO login needs a redirectUri (registered in the login policy): \
             the browser brings the session's code back there",
        ));
    }
    let provider = state.providers.get(state, login.mode, provider_id).await?;
    if let Some(idp) = &provider.saml {
        return super::saml::start(state, login, provider_id, idp, client_state).await;
    }
    let config = &provider.record.config;
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    let csrf = oauth2::CsrfToken::new_random();
    let nonce = random_token();
    store_flow(
        state,
        login,
        provider_id,
        csrf.secret(),
        nonce.clone(),
        |digest| {
            state
                .keys
                .master()
                .seal(
                    &verifier_context(login.mode, digest),
                    verifier.secret().as_bytes(),
                )
                .map_err(|_| SsoError::Provider("the PKCE verifier could not be sealed".into()))
        },
        client_state,
    )
    .await?;
    let mut url = reqwest::Url::parse(&provider.authorization_endpoint)
        .map_err(|e| SsoError::Provider(format!("authorization endpoint: {e}")))?;
    let redirect = rules::callback_url(state.config.issuer_of(login.mode), provider_id);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", config.client_id.as_deref().unwrap_or_default())
            .append_pair("redirect_uri", &redirect)
            .append_pair("state", csrf.secret())
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", challenge.method().as_str());
        let scopes = rules::scopes(config);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
        if provider.issuer.is_some() {
            q.append_pair("nonce", &nonce);
        }
    }
    Ok(url.into())
}

/// What the provider sent the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// Our `state`.
    pub state: Option<String>,
    /// RFC 9207: the issuer that answered.
    pub iss: Option<String>,
    /// An error the provider reports instead of a code.
    pub error: Option<String>,
}

/// Where the callback leaves the browser.
#[derive(Debug)]
pub struct Landing {
    /// The login's `redirectUri`, when it has one.
    pub redirect_uri: Option<String>,
    /// The login.
    pub login_id: String,
    /// The application's `state`.
    pub client_state: Option<String>,
    /// The one-time code that binds the session to this browser: the
    /// application presents it with the login's secret to get the session.
    pub browser_code: Option<String>,
}

/// What the browser brought back from the provider.
#[derive(Debug, Clone, Copy)]
pub enum Returned<'a> {
    /// OpenID Connect or OAuth 2.0: the callback's query.
    Oauth(&'a CallbackQuery),
    /// SAML, POST binding: the `SAMLResponse` and `RelayState` fields.
    Saml {
        /// `SAMLResponse` (base64 of the XML).
        response: &'a str,
        /// `RelayState`: the flow's handle, as `state` is for OAuth.
        relay_state: Option<&'a str>,
    },
}

/// Completes the SSO factor at the callback (or SAML's ACS). The flow is
/// taken (used once) before anything else; every later failure counts
/// against the login.
pub async fn callback(
    state: &AppState,
    mode: Mode,
    provider_id: &str,
    returned: Returned<'_>,
) -> Result<Landing, (Option<Landing>, SsoError)> {
    let no_landing = |e| (None, e);
    let presented = match returned {
        Returned::Oauth(query) => query.state.as_deref(),
        Returned::Saml { relay_state, .. } => relay_state,
    };
    let presented = presented
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or_else(|| no_landing(refused("the callback has no state")))?;
    let digest = CredentialDigest::of(presented).to_hex();
    let flow = state
        .store
        .take_sso_flow(mode, &digest, state.clock.now())
        .await
        .map_err(|e| no_landing(e.into()))?
        .ok_or_else(|| no_landing(refused("unknown, used or expired state")))?;
    if flow.provider_id != provider_id {
        return Err(no_landing(refused("the state belongs to another provider")));
    }
    let record = state
        .store
        .login(mode, &flow.login_id)
        .await
        .map_err(|e| no_landing(e.into()))?
        .ok_or_else(|| no_landing(refused("the login is gone")))?;
    let landing = Landing {
        redirect_uri: record.redirect_uri.clone(),
        login_id: record.id.clone(),
        client_state: flow.client_state.clone(),
        browser_code: None,
    };
    let login = engine::load(state, mode, record)
        .await
        .map_err(|_| (None, refused("the login could not be read")))?;
    let fail = |e: SsoError| {
        let landing = Landing {
            redirect_uri: landing.redirect_uri.clone(),
            login_id: landing.login_id.clone(),
            client_state: landing.client_state.clone(),
            browser_code: None,
        };
        (Some(landing), e)
    };
    match complete(state, login, &flow, returned).await {
        Ok(code) => Ok(Landing {
            browser_code: Some(code),
            ..landing
        }),
        Err((login, e)) => {
            if let Some(login) = login {
                if !matches!(e, SsoError::Store(_) | SsoError::Provider(_)) {
                    let _ = engine::failed(state, &login, None, false).await;
                }
            }
            Err(fail(e))
        }
    }
}

async fn complete(
    state: &AppState,
    login: Login,
    flow: &SsoFlow,
    returned: Returned<'_>,
) -> Result<String, (Option<Login>, SsoError)> {
    let factor = Factor::Sso(flow.provider_id.clone());
    if login.record.session_id.is_some() || login.view().complete {
        return Err((None, refused("the login is complete")));
    }
    if !login.view().factors.contains(&factor) {
        return Err((
            Some(login),
            refused(format!("{factor} is not asked for at this step")),
        ));
    }
    let provider = match state
        .providers
        .get(state, login.mode, &flow.provider_id)
        .await
    {
        Ok(p) => p,
        Err(e) => return Err((Some(login), e)),
    };
    let result = match (returned, &provider.saml) {
        (Returned::Oauth(query), None) => identify(state, &login, &provider, flow, query).await,
        (Returned::Saml { response, .. }, Some(idp)) => {
            super::saml::identify(state, &login, &provider, idp, flow, response).await
        }
        _ => Err(refused("this provider does not answer at this endpoint")),
    };
    let external = match result {
        Ok(external) => external,
        Err(e) => return Err((Some(login), e)),
    };
    let user_id = match resolve(state, login.mode, &provider, &external).await {
        Ok(user) => user,
        Err(e) => return Err((Some(login), e)),
    };
    match (&login.record.user_id, login.record.subject.as_str()) {
        (Some(named), _) if *named != user_id => {
            return Err((
                Some(login),
                refused("the provider's account is not the login's user"),
            ))
        }
        (None, subject) if subject != "anonymous" => {
            return Err((Some(login), refused("the login's identifier names nobody")))
        }
        _ => {}
    }
    match state
        .caches
        .principal(&state.store, login.mode, &user_id)
        .await
    {
        Ok(Some(p)) if !p.user.disabled => {}
        Ok(_) => return Err((Some(login), refused("the user is disabled or gone"))),
        Err(e) => return Err((Some(login), e.into())),
    }
    let config = &provider.record.config;
    let gained = rules::satisfied_by(
        &flow.provider_id,
        config.trust_upstream_mfa.unwrap_or(false),
        &external.amr,
    );
    // The browser that came back gets a one-time code; the session goes
    // only to the holder of the login's secret who also has that code, so
    // a login someone else started and sent a victim's browser through
    // gives its starter nothing.
    let code = random_token();
    let code_digest = latchkey_core::login::codes::code_digest(&login.record.id, &code);
    let mut record = login.record.clone();
    for _ in 0..4 {
        let mut after: BTreeSet<String> = record.satisfied.iter().cloned().collect();
        after.extend(gained.iter().map(|f| f.name().into_owned()));
        let after: Vec<String> = after.into_iter().collect();
        match state
            .store
            .login_sso_passed(
                login.mode,
                &record.id,
                &record.satisfied,
                &after,
                &user_id,
                &code_digest,
            )
            .await
        {
            Ok(true) => return Ok(code),
            Ok(false) => {}
            Err(e) => return Err((Some(login), e.into())),
        }
        match state.store.login(login.mode, &record.id).await {
            Ok(Some(r)) if r.session_id.is_none() => record = r,
            Ok(_) => return Err((None, refused("the login is complete"))),
            Err(e) => return Err((Some(login), e.into())),
        }
    }
    Err((
        Some(login),
        refused("the login changed while the callback ran"),
    ))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    id_token: Option<String>,
}

/// The code exchanged, and who the provider says signed in.
async fn identify(
    state: &AppState,
    login: &Login,
    provider: &Provider,
    flow: &SsoFlow,
    query: &CallbackQuery,
) -> Result<External, SsoError> {
    if let Some(error) = &query.error {
        let error: String = error
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        return Err(refused(format!("the provider answered {error}")));
    }
    // RFC 9207: a provider that says it sends `iss` must, and it must be its own.
    match (&query.iss, &provider.issuer) {
        (Some(iss), Some(issuer)) if iss != issuer => {
            return Err(refused(
                "the authorization response comes from another issuer",
            ))
        }
        (Some(_), None) => return Err(refused("an iss this provider does not send")),
        (None, Some(_)) if provider.iss_parameter => {
            return Err(refused("the authorization response has no iss"))
        }
        _ => {}
    }
    let code = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| refused("the callback has no code"))?;
    let verifier = state
        .keys
        .master()
        .open(
            &verifier_context(login.mode, &flow.state_digest),
            &flow.verifier_sealed,
        )
        .map_err(|_| refused("the flow's verifier does not open"))?;
    let verifier =
        String::from_utf8(verifier).map_err(|_| refused("the flow's verifier is not text"))?;
    let config = &provider.record.config;
    let secret = provider
        .record
        .secret_sealed
        .as_deref()
        .and_then(|sealed| {
            state
                .keys
                .master()
                .open(&secret_context(login.mode, &provider.record.id), sealed)
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Secret::new)
        .ok_or_else(|| SsoError::Provider("the client secret does not open".into()))?;
    let client_id = config.client_id.as_deref().unwrap_or_default();
    let redirect = rules::callback_url(state.config.issuer_of(login.mode), &flow.provider_id);
    let response = state
        .providers
        .http
        .post(&provider.token_endpoint)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::AUTHORIZATION,
            latchkey_core::oauth_form::basic_header(client_id, secret.expose()),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| SsoError::Provider(format!("token endpoint: {e}")))?;
    let answer: TokenAnswer = serde_json::from_value(
        read_json(&provider.token_endpoint, response).await?,
    )
    .map_err(|_| SsoError::Provider("the token endpoint's answer has no access_token".into()))?;
    let mapping = rules::claim_mapping(config);
    match (&provider.issuer, &provider.keys) {
        (Some(issuer), Some(keys)) => {
            let id_token = answer
                .id_token
                .as_deref()
                .filter(|t| t.len() <= 16 * 1024)
                .ok_or_else(|| refused("the provider sent no ID token"))?;
            let (claims, now) = keys
                .verify_with(|keys, now| {
                    verify_jws(id_token, keys).map(|(_, claims)| (claims, now))
                })
                .await
                .map_err(|e| refused(format!("ID token signature: {e}")))?;
            rules::check_id_token(&claims, issuer, client_id, &flow.nonce, now)
                .map_err(|e| refused(format!("ID token: {e}")))?;
            let mut person = rules::external(&claims, &mapping).map_err(refused)?;
            // The ID token may carry only `sub`: the rest is at userinfo,
            // for the same subject.
            if person.email.is_none() {
                if let Some(userinfo) = &provider.userinfo_endpoint {
                    let info =
                        get_json(&state.providers.http, userinfo, Some(&answer.access_token))
                            .await?;
                    if let Ok(more) = rules::external(&info, &mapping) {
                        if more.subject == person.subject {
                            person.email = more.email;
                            person.email_verified = more.email_verified;
                            person.name = person.name.or(more.name);
                        }
                    }
                }
            }
            Ok(person)
        }
        _ => {
            let userinfo = provider
                .userinfo_endpoint
                .as_deref()
                .ok_or_else(|| SsoError::Provider("no userinfo endpoint".into()))?;
            let info =
                get_json(&state.providers.http, userinfo, Some(&answer.access_token)).await?;
            // Plain OAuth 2.0 proves no second factor.
            let mut person = rules::external(&info, &mapping).map_err(refused)?;
            person.amr.clear();
            Ok(person)
        }
    }
}

/// The user the identity is: linked before, linked now by a verified
/// email, or created now, as core's rule decides.
async fn resolve(
    state: &AppState,
    mode: Mode,
    provider: &Provider,
    person: &External,
) -> Result<String, SsoError> {
    let config = &provider.record.config;
    let id = &provider.record.id;
    let provisioning = config.provisioning.clone().unwrap_or_default();
    for _ in 0..2 {
        let linked = state.store.linked_user(mode, id, &person.subject).await?;
        let by_email = match (&linked, config.link_by.unwrap_or_default(), &person.email) {
            (None, latchkey_types::federation::LinkBy::Email, Some(email))
                if person.email_verified =>
            {
                state.store.user_by_email(mode, email).await?
            }
            _ => None,
        };
        let decision = rules::link(
            config.link_by.unwrap_or_default(),
            provisioning.enabled,
            linked,
            by_email,
            person,
        );
        let event = |user: &str, how: &str| {
            crate::admin::audit::event(
                state,
                Some(mode),
                AuditAction::IdentityLinked,
                AuditActor {
                    kind: "identity_provider".into(),
                    id: Some(id.clone()),
                },
                AuditTarget::new("user", user),
                None,
            )
            .with_detail("subject", person.subject.clone())
            .with_detail("how", how.to_owned())
        };
        let written = match decision {
            Link::Linked(user) => return Ok(user),
            Link::Nobody => return Err(refused("the provider's account is linked to no user")),
            Link::ByEmail(user) => {
                let e = event(&user, "email");
                let identity = Identity {
                    provider_id: id,
                    subject: &person.subject,
                    user_id: &user,
                };
                let w = state
                    .store
                    .link_identity(mode, &identity, None, state.clock.now(), |_| e)
                    .await;
                w.map(|w| (w, user))
            }
            Link::Provision => {
                let user_id = latchkey_core::ids::new_prefixed_id("usr");
                let mut metadata = JsonObject::new();
                metadata.insert("identityProvider".into(), id.clone().into());
                let user = NewUser {
                    id: user_id.clone(),
                    external_id: None,
                    kind: provisioning.kind.unwrap_or(UserKind::Human),
                    name: person
                        .name
                        .clone()
                        .or_else(|| person.email.clone())
                        .unwrap_or_else(|| person.subject.clone())
                        .chars()
                        .take(200)
                        .collect(),
                    email: person.email.clone(),
                    username: None,
                    phone_number: None,
                    email_verified: person.email_verified && person.email.is_some(),
                    phone_verified: false,
                    metadata,
                    custom_claims: JsonObject::new(),
                    disabled: false,
                    token_ttl_seconds: None,
                };
                let roles: Vec<String> = provisioning
                    .roles
                    .iter()
                    .flatten()
                    .map(|r| r.as_str().to_owned())
                    .collect();
                let tenant = provisioning.tenant_id.as_ref().map(|t| t.as_str());
                let e = event(&user_id, "provisioned");
                let identity = Identity {
                    provider_id: id,
                    subject: &person.subject,
                    user_id: &user_id,
                };
                let new_user = NewLinkedUser {
                    user: &user,
                    tenant,
                    roles: &roles,
                };
                let w = state
                    .store
                    .link_identity(mode, &identity, Some(new_user), state.clock.now(), |_| e)
                    .await;
                w.map(|w| (w, user_id))
            }
        };
        match written {
            Ok((w, user)) => {
                state.applied(w).await;
                return Ok(user);
            }
            // Linked meanwhile by another login: read the link again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(refused("the identity could not be linked"))
}
