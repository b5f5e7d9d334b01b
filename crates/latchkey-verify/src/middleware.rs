//! axum and tower integration (feature `axum`): [`AuthLayer`] authenticates
//! every request by `Authorization: Bearer <access token>` or `X-Api-Key`,
//! answers 401 (or 503 when the issuer cannot be asked) itself, and hands
//! the handler an [`Authenticated`]; [`RequireRole`] and [`RequireScope`]
//! answer 403 for a credential that may not do what a route does.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use latchkey_verify::middleware::{AuthLayer, Authenticated, Authenticator, RequireRole};
//! use latchkey_verify::{Claims, Verifier};
//!
//! async fn ingest(auth: Authenticated) -> String {
//!     format!("hello {}", auth.user_id().unwrap_or("device"))
//! }
//!
//! async fn admin(claims: Claims) -> String {
//!     format!("{} may administer {}", claims.user_id(), claims.tenant_id())
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://auth.example.com")
//!     .audience("https://telemetry.example.com")
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/admin", get(admin).route_layer(RequireRole::new("admin")))
//!     .route("/ingest", get(ingest))
//!     .layer(AuthLayer::new(Authenticator::new().tokens(verifier)));
//! # Ok(()) }
//! ```
//!
//! A bearer value that looks like a Latchkey credential (`lk_…`) is taken as
//! an API key, since many clients send keys that way.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_types::Mode;
use tower::{Layer, Service};

use crate::apikey::{KeyDigest, LocalKeyList};
use crate::claims::Claims;
use crate::error::VerifyError;
use crate::remote::Verifier;
use crate::remote_keys::{ApiKeyError, ApiKeyInfo, RemoteKeyVerifier};

/// The header API keys come in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// How a request authenticated, with what its credential says.
// One value per request, moved once into the request's extensions: boxing
// the claims would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Authenticated {
    /// An access token, verified by the [`Verifier`].
    Token(Claims),
    /// An API key, verified by the issuer ([`RemoteKeyVerifier`]).
    ApiKey(ApiKeyInfo),
    /// An API key found in the device's [`LocalKeyList`]: it is genuine,
    /// but the list says nothing about whose it is.
    LocalKey {
        /// The key's mode, from its prefix.
        mode: Mode,
        /// The key's digest, to tell keys apart in logs.
        digest: KeyDigest,
    },
}

impl Authenticated {
    /// The user the credential belongs to (unknown for a local key).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Authenticated::Token(c) => Some(c.user_id()),
            Authenticated::ApiKey(k) => Some(&k.user_id),
            Authenticated::LocalKey { .. } => None,
        }
    }

    /// The tenant the credential is scoped to (unknown for a local key).
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Authenticated::Token(c) => Some(c.tenant_id()),
            Authenticated::ApiKey(k) => Some(&k.tenant_id),
            Authenticated::LocalKey { .. } => None,
        }
    }

    /// The credential's mode.
    pub fn mode(&self) -> Mode {
        match self {
            Authenticated::Token(c) => c.mode(),
            Authenticated::ApiKey(k) => k.mode,
            Authenticated::LocalKey { mode, .. } => *mode,
        }
    }

    /// Whether the credential holds `role` in `tenant` (never, for a local
    /// key, which carries no roles).
    pub fn has_role(&self, tenant: &str, role: &str) -> bool {
        match self {
            Authenticated::Token(c) => c.has_role(tenant, role),
            Authenticated::ApiKey(k) => k.has_role(tenant, role),
            Authenticated::LocalKey { .. } => false,
        }
    }

    /// Whether the credential was granted `scope`. Only access tokens carry
    /// scopes; API keys carry roles.
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Authenticated::Token(c) => c.has_scope(scope),
            Authenticated::ApiKey(_) | Authenticated::LocalKey { .. } => false,
        }
    }

    /// The token's claims, when a token was presented.
    pub fn claims(&self) -> Option<&Claims> {
        match self {
            Authenticated::Token(c) => Some(c),
            _ => None,
        }
    }

    /// The issuer's description of the key, when a key was checked remotely.
    pub fn api_key(&self) -> Option<&ApiKeyInfo> {
        match self {
            Authenticated::ApiKey(k) => Some(k),
            _ => None,
        }
    }

    /// `Ok` when the credential holds `role` in its own tenant, else a 403.
    ///
    /// # Errors
    /// [`AuthRejection::Forbidden`].
    pub fn require_role(&self, role: &str) -> Result<(), AuthRejection> {
        let tenant = self.tenant_id().unwrap_or_default();
        if self.has_role(tenant, role) {
            Ok(())
        } else {
            Err(AuthRejection::Forbidden)
        }
    }

    /// `Ok` when the credential was granted `scope`, else a 403.
    ///
    /// # Errors
    /// [`AuthRejection::Forbidden`].
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthRejection> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthRejection::Forbidden)
        }
    }
}

/// Why a request was not let through. Its response follows RFC 6750 §3:
/// a `WWW-Authenticate: Bearer` challenge, with `error="invalid_token"` for
/// a credential that was refused and `error="insufficient_scope"` on a 403,
/// and an `application/problem+json` body with a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No credential at all (401, a bare challenge).
    Missing,
    /// The credential was refused (401, `invalid_token`). The description
    /// is deliberately coarse: "expired" or "invalid".
    Invalid {
        /// Whether the credential had expired (the client should get a new
        /// token); every other reason is reported as plain "invalid".
        expired: bool,
    },
    /// The credential is valid but may not do this (403,
    /// `insufficient_scope`).
    Forbidden,
    /// The issuer could not be asked (503). The client may retry.
    Unavailable,
    /// The route asks for [`Authenticated`] but no [`AuthLayer`] ran: a
    /// programming error (500).
    NotConfigured,
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for AuthRejection {}

impl AuthRejection {
    fn detail(&self) -> &'static str {
        match self {
            AuthRejection::Missing => "no credential was presented",
            AuthRejection::Invalid { expired: true } => "the credential has expired",
            AuthRejection::Invalid { expired: false } => "the credential is not valid",
            AuthRejection::Forbidden => "the credential may not do this",
            AuthRejection::Unavailable => "credentials cannot be checked right now",
            AuthRejection::NotConfigured => "the server could not answer",
        }
    }

    fn from_token(e: &VerifyError) -> Self {
        match e {
            VerifyError::KeysUnavailable(_) => AuthRejection::Unavailable,
            VerifyError::Expired => AuthRejection::Invalid { expired: true },
            _ => AuthRejection::Invalid { expired: false },
        }
    }

    fn from_key(e: &ApiKeyError) -> Self {
        match e {
            ApiKeyError::Refused(crate::remote_keys::RefusalCode::Expired) => {
                AuthRejection::Invalid { expired: true }
            }
            ApiKeyError::Refused(_) => AuthRejection::Invalid { expired: false },
            _ => AuthRejection::Unavailable,
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, code, challenge) = match &self {
            AuthRejection::Missing => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                Some(String::from("Bearer")),
            ),
            AuthRejection::Invalid { .. } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                Some(format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.detail()
                )),
            ),
            AuthRejection::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                Some(format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
                    self.detail()
                )),
            ),
            AuthRejection::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            AuthRejection::NotConfigured => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.detail(),
            "code": code,
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// What an [`AuthLayer`] accepts: access tokens, API keys checked with the
/// issuer, API keys in a local list, or any combination.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Option<Verifier>,
    remote_keys: Option<RemoteKeyVerifier>,
    local_keys: Option<LocalKeyList>,
}

impl Authenticator {
    /// Accepts nothing until told what to accept.
    pub fn new() -> Self {
        Authenticator::default()
    }

    /// Accepts access tokens verified by `verifier`.
    pub fn tokens(mut self, verifier: Verifier) -> Self {
        self.tokens = Some(verifier);
        self
    }

    /// Accepts API keys the issuer confirms.
    pub fn remote_keys(mut self, keys: RemoteKeyVerifier) -> Self {
        self.remote_keys = Some(keys);
        self
    }

    /// Accepts API keys in this list. It is consulted before the issuer.
    pub fn local_keys(mut self, keys: LocalKeyList) -> Self {
        self.local_keys = Some(keys);
        self
    }

    /// Authenticates a request by its headers.
    ///
    /// # Errors
    /// An [`AuthRejection`] ready to be the response.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, AuthRejection> {
        match credential(headers)? {
            Credential::Token(token) => {
                let verifier = self
                    .tokens
                    .as_ref()
                    .ok_or(AuthRejection::Invalid { expired: false })?;
                verifier
                    .verify(token)
                    .await
                    .map(Authenticated::Token)
                    .map_err(|e| AuthRejection::from_token(&e))
            }
            Credential::ApiKey(key) => self.authenticate_key(key).await,
        }
    }

    async fn authenticate_key(&self, key: &str) -> Result<Authenticated, AuthRejection> {
        if let Some(info) = self.local_keys.as_ref().and_then(|l| l.check(key)) {
            return Ok(Authenticated::LocalKey {
                mode: info.mode,
                digest: KeyDigest::of(key),
            });
        }
        match &self.remote_keys {
            Some(remote) => remote
                .verify(key)
                .await
                .map(Authenticated::ApiKey)
                .map_err(|e| AuthRejection::from_key(&e)),
            None => Err(AuthRejection::Invalid { expired: false }),
        }
    }
}

enum Credential<'a> {
    Token(&'a str),
    ApiKey(&'a str),
}

/// Finds the credential: `Authorization: Bearer` first, then `X-Api-Key`.
/// Two different credentials in one request are refused, so a proxy and a
/// handler cannot disagree about who is calling.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthRejection> {
    let invalid = AuthRejection::Invalid { expired: false };
    let bearer = match headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| invalid.clone())?;
            let (scheme, value) = v.split_once(' ').ok_or(invalid.clone())?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(invalid);
            }
            Some(value.trim())
        }
    };
    let mut keys = headers.get_all(API_KEY_HEADER).iter();
    let api_key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v.to_str().map_err(|_| invalid.clone())?.trim()),
        (Some(_), Some(_)) => return Err(invalid),
    };
    match (bearer, api_key) {
        (None, None) => Err(AuthRejection::Missing),
        (Some(b), Some(k)) if b != k => Err(invalid),
        (Some(v), _) | (None, Some(v)) if v.is_empty() => Err(invalid),
        (Some(b), _) if b.starts_with("lk_") => Ok(Credential::ApiKey(b)),
        (Some(b), _) => Ok(Credential::Token(b)),
        (None, Some(k)) => Ok(Credential::ApiKey(k)),
    }
}

/// A tower layer that authenticates every request with an
/// [`Authenticator`] and puts the [`Authenticated`] in its extensions.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer accepting what `auth` accepts.
    pub fn new(auth: Authenticator) -> Self {
        AuthLayer {
            auth: Arc::new(auth),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service of an [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            match auth.authenticate(request.headers()).await {
                Ok(authenticated) => {
                    request.extensions_mut().insert(authenticated);
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or(AuthRejection::NotConfigured)
    }
}

/// For routes that accept access tokens only: a request authenticated by
/// an API key is refused with 401 `invalid_token`.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authenticated>() {
            Some(Authenticated::Token(claims)) => Ok(claims.clone()),
            Some(_) => Err(AuthRejection::Invalid { expired: false }),
            None => Err(AuthRejection::NotConfigured),
        }
    }
}

/// A policy a [`Require`] layer enforces.
trait Policy: Clone + Send + Sync + 'static {
    fn allows(&self, auth: &Authenticated) -> bool;
}

/// Lets through requests whose credential holds a role, else 403. Put it
/// inside (after) an [`AuthLayer`], e.g. with `route_layer`.
#[derive(Debug, Clone)]
pub struct RequireRole {
    tenant: Option<String>,
    role: String,
}

impl RequireRole {
    /// The role, held in the credential's own tenant.
    pub fn new(role: impl Into<String>) -> Self {
        RequireRole {
            tenant: None,
            role: role.into(),
        }
    }

    /// The role, held in `tenant` (which must be the credential's tenant or
    /// one of its descendants for the credential to say so).
    pub fn in_tenant(tenant: impl Into<String>, role: impl Into<String>) -> Self {
        RequireRole {
            tenant: Some(tenant.into()),
            role: role.into(),
        }
    }
}

impl Policy for RequireRole {
    fn allows(&self, auth: &Authenticated) -> bool {
        let tenant = match &self.tenant {
            Some(t) => t.as_str(),
            None => auth.tenant_id().unwrap_or_default(),
        };
        auth.has_role(tenant, &self.role)
    }
}

/// Lets through requests whose access token was granted a scope, else 403.
/// Put it inside (after) an [`AuthLayer`], e.g. with `route_layer`.
#[derive(Debug, Clone)]
pub struct RequireScope {
    scope: String,
}

impl RequireScope {
    /// The scope token (a permission such as `telemetry:write`).
    pub fn new(scope: impl Into<String>) -> Self {
        RequireScope {
            scope: scope.into(),
        }
    }
}

impl Policy for RequireScope {
    fn allows(&self, auth: &Authenticated) -> bool {
        auth.has_scope(&self.scope)
    }
}

impl<S> Layer<S> for RequireRole {
    type Service = Require<S, RequireRole>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            policy: self.clone(),
        }
    }
}

impl<S> Layer<S> for RequireScope {
    type Service = Require<S, RequireScope>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            policy: self.clone(),
        }
    }
}

/// The service of a [`RequireRole`] or [`RequireScope`] layer.
#[derive(Debug, Clone)]
#[allow(private_bounds)]
pub struct Require<S, P> {
    inner: S,
    policy: P,
}

#[allow(private_bounds)]
impl<S, P, B> Service<Request<B>> for Require<S, P>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    P: Policy,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verdict = match request.extensions().get::<Authenticated>() {
            None => Err(AuthRejection::NotConfigured),
            Some(auth) if self.policy.allows(auth) => Ok(()),
            Some(_) => Err(AuthRejection::Forbidden),
        };
        match verdict {
            Ok(()) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(request).await })
            }
            Err(rejection) => Box::pin(async move { Ok(rejection.into_response()) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn kind(h: &[(&str, &str)]) -> Result<&'static str, AuthRejection> {
        let h = headers(h);
        credential(&h).map(|c| match c {
            Credential::Token(_) => "token",
            Credential::ApiKey(_) => "key",
        })
    }

    #[test]
    fn the_credential_is_found_in_either_header_and_conflicts_are_refused() {
        let invalid = Err(AuthRejection::Invalid { expired: false });
        assert_eq!(kind(&[]), Err(AuthRejection::Missing));
        assert_eq!(kind(&[("authorization", "Bearer eyJ.a.b")]), Ok("token"));
        assert_eq!(kind(&[("authorization", "bearer eyJ.a.b")]), Ok("token"));
        assert_eq!(
            kind(&[("authorization", "Bearer lk_test_key_x")]),
            Ok("key")
        );
        assert_eq!(kind(&[("x-api-key", "lk_test_key_x")]), Ok("key"));
        assert_eq!(
            kind(&[("authorization", "Bearer lk_a"), ("x-api-key", "lk_a")]),
            Ok("key")
        );
        assert_eq!(
            kind(&[("authorization", "Bearer eyJ.a.b"), ("x-api-key", "lk_a")]),
            invalid
        );
        assert_eq!(
            kind(&[("x-api-key", "lk_a"), ("x-api-key", "lk_b")]),
            invalid
        );
        assert_eq!(kind(&[("authorization", "Basic dXNlcjpwdw==")]), invalid);
        assert_eq!(kind(&[("authorization", "Bearer")]), invalid);
        assert_eq!(kind(&[("authorization", "Bearer ")]), invalid);
        assert_eq!(kind(&[("x-api-key", "")]), invalid);
    }

    #[test]
    fn rejections_carry_rfc_6750_challenges_and_problem_bodies() {
        let r = AuthRejection::Missing.into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r = AuthRejection::Invalid { expired: true }.into_response();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
        assert!(challenge.contains("expired"));
        assert_eq!(r.headers()[CONTENT_TYPE], "application/problem+json");
        let r = AuthRejection::Forbidden.into_response();
        assert_eq!(r.status(), 403);
        assert!(r.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("insufficient_scope"));
        assert_eq!(AuthRejection::Unavailable.into_response().status(), 503);
        assert_eq!(AuthRejection::NotConfigured.into_response().status(), 500);
    }
}
