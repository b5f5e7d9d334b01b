//! OAuth 2.0 endpoints: server metadata (RFC 8414), the JWKS, and the token
//! endpoint with `client_credentials` and client-secret authentication.
//! Forms are read by `latchkey_core::oauth_form` (no I/O, fuzzed); what
//! needs the store (secrets, keys, assertions) is checked here.

use std::sync::Arc;

use axum::extract::rejection::RawFormRejection;
use axum::extract::{FromRequest, RawForm, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::oauth_form::{ClientAuth, Grant, Params, TokenRequestForm, ACCESS_TOKEN_TYPE};
use latchkey_core::signing::Algorithm;
use latchkey_types::api_keys::KeyInvalidCode;
use latchkey_types::error::OAuthErrorBody;
use latchkey_types::ids::{Identifier as _, UserId};
use latchkey_types::oauth::{JwkSet, ServerMetadata, TokenResponse};
use latchkey_types::Mode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::assertion::{self, AssertionError};
use crate::authn::cache::Principal;
use crate::authn::keycheck::{self, VerifiedKey};
use crate::federation::workload::{self, ExchangeError};
use crate::http::error::{OAuthError, OAuthErrorCode};
use crate::http::transport::RequestCredentials;
use crate::state::AppState;
use crate::tokens::issuance::{self, TokenRequest};
use latchkey_core::issuance::Asked;

/// How long verifiers may cache the JWKS, in seconds.
pub const JWKS_MAX_AGE_SECONDS: u64 = 300;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(oauth_metadata))
        .routes(routes!(openid_configuration))
        .routes(routes!(jwks))
        .routes(routes!(test_oauth_metadata))
        .routes(routes!(test_oauth_metadata_appended))
        .routes(routes!(test_openid_configuration))
        .routes(routes!(test_openid_configuration_inserted))
        .routes(routes!(test_jwks))
        .routes(routes!(token))
}

fn auth_methods() -> Vec<String> {
    vec![
        "client_secret_basic".into(),
        "client_secret_post".into(),
        "private_key_jwt".into(),
    ]
}

/// The metadata of `mode`'s issuer. The endpoints are shared (a
/// credential's prefix says its mode); the issuer and the JWKS are the
/// mode's own.
fn metadata(state: &AppState, mode: Mode) -> axum::Json<ServerMetadata> {
    let base = &state.config.issuer;
    let issuer = state.config.issuer_of(mode);
    axum::Json(ServerMetadata {
        issuer: issuer.to_owned(),
        token_endpoint: format!("{base}/oauth/token"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        introspection_endpoint_auth_methods_supported: auth_methods(),
        revocation_endpoint_auth_methods_supported: auth_methods(),
        grant_types_supported: latchkey_types::oauth::GRANT_TYPES
            .iter()
            .map(|g| (*g).to_owned())
            .collect(),
        token_endpoint_auth_methods_supported: auth_methods(),
        response_types_supported: Vec::new(),
        access_token_signing_alg_values_supported: Algorithm::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        token_endpoint_auth_signing_alg_values_supported: Algorithm::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        service_documentation: format!("{base}/openapi.json"),
        latchkey_access_token_lifetime: state.config.token_ttl_seconds,
    })
}

/// RFC 8414 metadata of the live issuer (the configured issuer URL).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, body = ServerMetadata)))]
async fn oauth_metadata(State(state): State<AppState>) -> axum::Json<ServerMetadata> {
    metadata(&state, Mode::Live)
}

/// The live issuer's metadata at the OpenID Connect discovery path, for
/// clients that only look there.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, body = ServerMetadata)))]
async fn openid_configuration(State(state): State<AppState>) -> axum::Json<ServerMetadata> {
    metadata(&state, Mode::Live)
}

/// RFC 8414 metadata of the test issuer (`{issuer}/test`), at the path
/// RFC 8414 §3.1 derives from it (the well-known segment inserted before
/// the issuer's path).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server/test", tag = "oauth",
    responses((status = 200, body = ServerMetadata)))]
async fn test_oauth_metadata(State(state): State<AppState>) -> axum::Json<ServerMetadata> {
    metadata(&state, Mode::Test)
}

/// The test issuer's RFC 8414 metadata at the appended path, for
/// verifiers (and proxies that serve Latchkey under a path) that look there.
#[utoipa::path(get, path = "/test/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, body = ServerMetadata)))]
async fn test_oauth_metadata_appended(State(state): State<AppState>) -> axum::Json<ServerMetadata> {
    metadata(&state, Mode::Test)
}

/// The test issuer's metadata at the OpenID Connect discovery path
/// (`{issuer}/.well-known/openid-configuration`).
#[utoipa::path(get, path = "/test/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, body = ServerMetadata)))]
async fn test_openid_configuration(State(state): State<AppState>) -> axum::Json<ServerMetadata> {
    metadata(&state, Mode::Test)
}

/// The test issuer's OpenID Connect metadata at the RFC 8414 inserted path.
#[utoipa::path(get, path = "/.well-known/openid-configuration/test", tag = "oauth",
    responses((status = 200, body = ServerMetadata)))]
async fn test_openid_configuration_inserted(
    State(state): State<AppState>,
) -> axum::Json<ServerMetadata> {
    metadata(&state, Mode::Test)
}

/// The JWKS of `mode`: its published keys (the signing key, a key
/// published ahead of its turn, and retired keys whose tokens may still be
/// alive), nothing of the other mode.
fn jwks_of(state: &AppState, mode: Mode) -> Response {
    let ring = state.keys.ring(state.clock.now());
    let mut response = ring.jwks_json(mode).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECONDS}"))
            .unwrap_or(HeaderValue::from_static("public, max-age=300")),
    );
    response
}

/// The live issuer's public signing keys.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth",
    responses((status = 200, body = JwkSet,
        headers(("Cache-Control" = String, description = "public, max-age=300")))))]
async fn jwks(State(state): State<AppState>) -> Response {
    jwks_of(&state, Mode::Live)
}

/// The test issuer's public signing keys.
#[utoipa::path(get, path = "/test/.well-known/jwks.json", tag = "oauth",
    responses((status = 200, body = JwkSet,
        headers(("Cache-Control" = String, description = "public, max-age=300")))))]
async fn test_jwks(State(state): State<AppState>) -> Response {
    jwks_of(&state, Mode::Test)
}

/// An OAuth endpoint's request: its [`RequestCredentials`] with the form.
/// The transport layer has read and parsed an urlencoded body within the
/// limit; anything else is read here like `axum::Form` (content type, size
/// limit) for its OAuth-shaped rejection.
#[derive(Debug)]
pub(crate) struct OAuthRequest(pub Arc<RequestCredentials>);

impl OAuthRequest {
    /// The form's parameters.
    pub(crate) fn params(&self) -> &Params {
        static NONE: std::sync::OnceLock<Params> = std::sync::OnceLock::new();
        self.0
            .form
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(Params::default))
    }
}

impl FromRequest<AppState> for OAuthRequest {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OAuthError> {
        let credentials = request
            .extensions()
            .get::<Arc<RequestCredentials>>()
            .cloned()
            .unwrap_or_default();
        if credentials.form.is_some() {
            return Ok(OAuthRequest(credentials));
        }
        // Not read by the transport layer (another content type, a body
        // over the limit, an in-process request): the same rejections as
        // before, or the form parsed here.
        let RawForm(body) = RawForm::from_request(request, state).await?;
        state.metrics.form_parsed();
        let mut read = RequestCredentials::clone(&credentials);
        read.form = Some(Params::parse(&body));
        Ok(OAuthRequest(Arc::new(read)))
    }
}

impl From<RawFormRejection> for OAuthError {
    fn from(r: RawFormRejection) -> Self {
        if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return OAuthError::new(
                OAuthErrorCode::RequestTooLarge,
                format!("the form is larger than {} bytes", crate::MAX_BODY_BYTES),
            );
        }
        let detail = match r {
            RawFormRejection::InvalidFormContentType(_) => {
                "send the request as application/x-www-form-urlencoded".to_owned()
            }
            other => format!(
                "the form is not valid: {}",
                other.body_text().replace('\n', " ")
            ),
        };
        OAuthError::new(OAuthErrorCode::InvalidRequest, detail)
    }
}

/// Issues an access token (`client_credentials`).
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = super::forms::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse),
        (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
async fn token(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let credentials = &request.0;
    let form = TokenRequestForm::from_header(&credentials.authorization, request.params())?;
    let client = match &form.grant {
        Grant::ClientCredentials => {
            authenticate_client(&state, &form.client_auth, credentials.secure).await?
        }
        Grant::JwtBearer { assertion } => {
            // A trusted issuer's token (RFC 7523 §2.1 with another issuer's
            // JWT) is a workload's; anything else is a user's own assertion.
            match workload_grant(&state, assertion.expose(), &form, credentials, false).await? {
                Some(issued) => return Ok(issued),
                None => {
                    jwt_bearer_client(&state, assertion.expose(), &form.client_auth, credentials)
                        .await?
                }
            }
        }
        Grant::TokenExchange { subject_token, .. } => {
            return match workload_grant(&state, subject_token.expose(), &form, credentials, true)
                .await?
            {
                Some(issued) => Ok(issued),
                None => Err(OAuthError::new(
                    OAuthErrorCode::InvalidGrant,
                    "the subject token's issuer is not trusted",
                )),
            };
        }
        Grant::RefreshToken { refresh_token } => {
            // A session's client is public (a CLI, a device); when it does
            // authenticate, it must be the session's user.
            let client = match form.client_auth {
                ClientAuth::None => None,
                ref auth => Some(authenticate_client(&state, auth, credentials.secure).await?),
            };
            let issued = crate::login::sessions::refresh(
                &state,
                refresh_token,
                form.tenant_id.as_deref(),
                client.as_ref().map(|c| c.principal.user.id.as_str()),
                credentials,
            )
            .await?;
            return Ok(no_store(axum::Json(issued).into_response()));
        }
    };
    require_tls_for(client.mode, credentials)?;
    let request = TokenRequest {
        asked: Asked {
            tenant_id: form.tenant_id.as_deref(),
            scope: form.scope.as_deref(),
            audiences: form.audiences.iter().map(String::as_str).collect(),
            resources: form.resources.iter().map(String::as_str).collect(),
            ..Asked::default()
        },
        key: client.key.as_ref(),
        ..Default::default()
    };
    let issued = issuance::issue(&state, client.mode, &client.principal, &request).await?;
    Ok(no_store(axum::Json(issued).into_response()))
}

/// Workload identity federation: a trusted issuer's token, for the user a
/// rule maps it to. `None` when no trusted issuer has the token's `iss`
/// (for the JWT-bearer grant, the assertion is then a user's own). Client
/// authentication beside it is optional; when present it must be the
/// mapped user.
async fn workload_grant(
    state: &AppState,
    token: &str,
    form: &TokenRequestForm,
    credentials: &RequestCredentials,
    exchange: bool,
) -> Result<Option<Response>, OAuthError> {
    let exchanged = match workload::exchange(state, token).await {
        Ok(exchanged) => exchanged,
        Err(ExchangeError::UnknownIssuer) => return Ok(None),
        Err(ExchangeError::Store(e)) => return Err(e.into()),
        Err(ExchangeError::Refused(why)) => {
            tracing::info!(reason = %why, "workload token refused");
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidGrant,
                "the token is not accepted by any trusted issuer's rules",
            ));
        }
    };
    require_tls_for(exchanged.mode, credentials)?;
    if form.client_auth != ClientAuth::None {
        let client = authenticate_client(state, &form.client_auth, credentials.secure).await?;
        if client.principal.user.id != exchanged.principal.user.id {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidGrant,
                "the token maps to another client",
            ));
        }
    }
    let request = TokenRequest {
        asked: Asked {
            tenant_id: form.tenant_id.as_deref(),
            scope: form.scope.as_deref(),
            audiences: form.audiences.iter().map(String::as_str).collect(),
            resources: form.resources.iter().map(String::as_str).collect(),
            ..Asked::default()
        },
        ttl_seconds: exchanged.ttl_seconds,
        actor: Some(exchanged.actor.clone()),
        bound_tenant: exchanged.tenant.as_deref(),
        bound_roles: exchanged.roles.as_ref(),
        ..Default::default()
    };
    let mut issued = issuance::issue(state, exchanged.mode, &exchanged.principal, &request).await?;
    if exchange {
        issued.issued_token_type = Some(ACCESS_TOKEN_TYPE.to_owned());
    }
    Ok(Some(no_store(axum::Json(issued).into_response())))
}

/// Token responses are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A signed assertion carries no mode prefix, so the transport layer cannot
/// spot a live one; once the client's mode is known, a live client over a
/// connection that is not TLS is refused here.
pub(crate) fn require_tls_for(
    mode: Mode,
    credentials: &RequestCredentials,
) -> Result<(), OAuthError> {
    if mode == Mode::Live && !credentials.secure {
        return Err(OAuthError::new(
            OAuthErrorCode::TlsRequired,
            "live credentials are accepted over TLS only",
        ));
    }
    Ok(())
}

/// The JWT-bearer grant (RFC 7523 §2.1): the assertion names and
/// authenticates the user. Client authentication beside it is optional; when
/// present it must be the same user.
async fn jwt_bearer_client(
    state: &AppState,
    assertion: &str,
    client_auth: &ClientAuth,
    credentials: &RequestCredentials,
) -> Result<Client, OAuthError> {
    let asserted = assertion::check(state, assertion, None)
        .await
        .map_err(|e| {
            if let AssertionError::Store(store) = e {
                return OAuthError::from(store);
            }
            tracing::info!(reason = %e, "assertion refused");
            OAuthError::new(OAuthErrorCode::InvalidGrant, "the assertion is not valid")
        })?;
    if *client_auth != ClientAuth::None {
        let client = authenticate_client(state, client_auth, credentials.secure).await?;
        if client.principal.user.id != asserted.principal.user.id {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidGrant,
                "the assertion is about another client",
            ));
        }
    }
    Ok(Client {
        mode: asserted.mode,
        principal: asserted.principal,
        key: None,
    })
}

/// An authenticated client.
pub(crate) struct Client {
    pub(crate) mode: Mode,
    pub(crate) principal: Arc<Principal>,
    /// Set when the client authenticated with an API key.
    key: Option<VerifiedKey>,
}

/// Checks the client authentication a request carries (parsed by
/// [`ClientAuth::parse`]): `private_key_jwt`, or `client_secret_basic` /
/// `client_secret_post` with a client secret or an API key of the user as
/// the secret. Every failure is the same `invalid_client`.
pub(crate) async fn authenticate_client(
    state: &AppState,
    client_auth: &ClientAuth,
    secure: bool,
) -> Result<Client, OAuthError> {
    let client = authenticate_client_any_transport(state, client_auth).await?;
    // An imported credential says its mode only once found: a live one
    // over plain HTTP is refused here (Latchkey's own were refused before
    // they were read).
    if client.mode == Mode::Live && !secure {
        return Err(OAuthError::new(
            OAuthErrorCode::TlsRequired,
            "live credentials are accepted over TLS only",
        ));
    }
    Ok(client)
}

async fn authenticate_client_any_transport(
    state: &AppState,
    client_auth: &ClientAuth,
) -> Result<Client, OAuthError> {
    let (client_id, secret) = match client_auth {
        ClientAuth::None => return Err(OAuthError::invalid_client(false)),
        ClientAuth::Assertion {
            client_id,
            assertion,
        } => {
            return match assertion::check(state, assertion.expose(), client_id.as_deref()).await {
                Ok(asserted) => Ok(Client {
                    mode: asserted.mode,
                    principal: asserted.principal,
                    key: None,
                }),
                Err(AssertionError::Store(e)) => Err(e.into()),
                Err(e) => {
                    tracing::info!(reason = %e, "client assertion refused");
                    Err(OAuthError::invalid_client(false))
                }
            };
        }
        ClientAuth::Basic { client_id, secret } | ClientAuth::Post { client_id, secret } => {
            (client_id.as_str(), secret.expose())
        }
    };
    let used_basic = client_auth.used_basic();
    let fail = || OAuthError::invalid_client(used_basic);
    let presented = CredentialDigest::of(secret);
    let info = credential::parse(secret).ok();
    let imported = info.is_none() && !secret.starts_with("lk_");
    if info.is_some_and(|i| i.kind == CredentialKind::ApiKey) || imported {
        // An API key of this user used as its client secret: the token is
        // scoped to the key's tenant and roles, and the use counts. A value
        // in another format may be an imported key, or else an imported
        // client secret (below).
        match keycheck::check(state, secret, None, keycheck::Check::Use).await? {
            Ok(key) if names(&key.principal, client_id) => {
                return Ok(Client {
                    mode: key.key.mode,
                    principal: key.principal.clone(),
                    key: Some(key),
                })
            }
            Err(KeyInvalidCode::NotFound | KeyInvalidCode::Malformed) if imported => {}
            _ => return Err(fail()),
        }
    }
    let modes: &[Mode] = match info {
        Some(info) if info.kind == CredentialKind::ClientSecret => match info.mode {
            Mode::Test => &[Mode::Test],
            Mode::Live => &[Mode::Live],
        },
        // An imported secret has no mode of its own: the client's id
        // finds it in one.
        None if imported => &[Mode::Live, Mode::Test],
        _ => &[],
    };
    let mut principal = None;
    let mut mode = None;
    for m in modes {
        if let Some(p) = client_principal(state, *m, client_id).await? {
            // With one mode the comparison below decides; an imported
            // secret's mode is the one whose user it matches.
            let this_one = modes.len() == 1
                || credential::matches_current(
                    p.secrets.iter().map(|s| (&s.digest, s.expires_at)),
                    &presented,
                    state.clock.now(),
                );
            if this_one {
                principal = Some(p);
                mode = Some(*m);
                break;
            }
        }
    }
    // Read before the branch: both sides do the same work.
    let now = state.clock.now();
    let Some(principal) = principal else {
        // Same work as a real comparison, then the same answer.
        credential::no_client_matches(&presented, now);
        return Err(fail());
    };
    let secrets = principal.secrets.iter().map(|s| (&s.digest, s.expires_at));
    let matched = credential::matches_current(secrets, &presented, now);
    if !matched || principal.user.disabled {
        return Err(fail());
    }
    let mode = mode.ok_or_else(fail)?;
    Ok(Client {
        mode,
        principal,
        key: None,
    })
}

/// Whether `client_id` names this principal: its id, or the external id it
/// was imported with (a client keeps its old `client_id`).
fn names(principal: &Principal, client_id: &str) -> bool {
    principal.user.id == client_id || principal.user.external_id.as_deref() == Some(client_id)
}

/// The principal a `client_id` names in `mode`: a user id, or else an
/// imported user's external id (one store read to find which user). An id
/// shaped like a user id is only ever a user id, so an unknown one costs
/// what a known one does (the timing test in `attacks.rs`).
async fn client_principal(
    state: &AppState,
    mode: Mode,
    client_id: &str,
) -> Result<Option<Arc<Principal>>, OAuthError> {
    if UserId::is_valid(client_id) {
        return Ok(state
            .caches
            .principal(&state.store, mode, client_id)
            .await?);
    }
    match state.store.user_id_by_external_id(mode, client_id).await? {
        Some(id) => Ok(state.caches.principal(&state.store, mode, &id).await?),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header::AUTHORIZATION;
    use axum::http::HeaderMap;
    use latchkey_core::oauth_form::{basic_credentials, FormError};

    use super::*;

    /// The core reads the raw header bytes; it must refuse exactly what
    /// `HeaderValue::to_str` refuses, as the server did when it read the
    /// header as text.
    #[test]
    fn header_bytes_are_refused_exactly_where_to_str_fails() {
        let mut checked = 0;
        for b in 0..=u8::MAX {
            let Ok(value) = HeaderValue::from_bytes(&[b'X', b' ', b]) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value);
            let got = basic_credentials(headers.get(AUTHORIZATION).map(HeaderValue::as_bytes));
            if headers[AUTHORIZATION].to_str().is_ok() {
                assert_eq!(got, Ok(None), "byte {b}");
            } else {
                assert_eq!(
                    got,
                    Err(FormError::InvalidClient { basic: true }),
                    "byte {b}"
                );
            }
            checked += 1;
        }
        assert!(checked > 200, "{checked}");
    }
}
