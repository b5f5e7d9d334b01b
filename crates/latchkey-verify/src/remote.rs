//! The caching token verifier (feature `remote`): RFC 8414 discovery from
//! the issuer URL, the JWKS fetched and cached by its `Cache-Control:
//! max-age`, and one rate-limited refetch when a token names a `kid` we do
//! not know (the issuer may have rotated its key).
//!
//! Concurrency: the key set lives in an [`ArcSwap`], so a verification
//! never takes a lock; fetches are serialised by a `tokio` mutex (single
//! flight) that no verification of a known key ever waits on. A stale set
//! is refreshed by whichever request notices first while the others go on
//! with the stale keys; a request with an unknown `kid` waits for the
//! fetch in flight, or starts one if none was tried in the last
//! `min_refetch_interval`. When the issuer cannot be reached the last good
//! keys stay in use.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use latchkey_types::oauth::Jwk;
use latchkey_types::Mode;
use reqwest::header::CACHE_CONTROL;
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::claims::Claims;
use crate::clock::{Clock, SystemClock};
use crate::error::VerifyError;
use crate::jwks::{KeySet, KeySetError};
use crate::jwt::{verify_jwt, Expectations, DEFAULT_LEEWAY_SECONDS};

/// How long keys are cached when the JWKS response has no `max-age`.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(300);
/// The longest `max-age` honoured: keys are re-read at least daily.
pub const MAX_JWKS_TTL: Duration = Duration::from_secs(86_400);
/// The default shortest time between two JWKS fetches.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// The default timeout of one HTTP request to the issuer.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest metadata or JWKS document read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

/// Why a [`Verifier`] could not be built, or a JWKS refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer URL is not an absolute `http(s)` URL without query or
    /// fragment.
    #[error("invalid issuer URL: {0}")]
    InvalidIssuer(String),
    /// The request failed (connection, TLS, timeout, body too large).
    #[error("request to {url} failed: {reason}")]
    Http {
        /// What was requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The issuer answered with a status other than 200.
    #[error("{url} answered {status}")]
    Status {
        /// What was requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The metadata names another issuer (RFC 8414 §3.3): the URL is wrong
    /// or someone is impersonating the issuer.
    #[error("metadata names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The metadata's `issuer`.
        found: String,
    },
    /// The metadata or JWKS is not the JSON it should be.
    #[error("invalid document from {url}: {reason}")]
    InvalidDocument {
        /// What was requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JWKS holds keys that cannot be used together.
    #[error("invalid JWKS: {0}")]
    InvalidKeys(#[from] KeySetError),
}

/// Configures a [`Verifier`]; see [`Verifier::builder`].
pub struct VerifierBuilder {
    issuer: String,
    audience: Option<String>,
    mode: Mode,
    leeway: Duration,
    require_typ: bool,
    min_refetch_interval: Duration,
    default_ttl: Duration,
    client: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("mode", &self.mode)
            .field("leeway", &self.leeway)
            .field("require_typ", &self.require_typ)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Requires `aud` to name `audience` (your service's identifier, as
    /// clients pass it in `audience` or `resource` at the token endpoint).
    /// Without it, `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Accepts tokens of `mode` only (default: live).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Clock-skew allowance for `exp`, `nbf`, `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Whether `typ: at+jwt` is required (default: yes).
    pub fn require_typ(mut self, require: bool) -> Self {
        self.require_typ = require;
        self
    }

    /// The shortest time between two JWKS fetches (default 10 s). It
    /// bounds the refetches that tokens with unknown `kid`s can cause, the
    /// retries after a failed fetch, and a `max-age` shorter than itself.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// How long keys are cached when the JWKS has no `max-age` (default
    /// 300 s).
    pub fn default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The HTTP client to use. The default one has a 10 s timeout and
    /// follows no redirects, so keys only ever come from the URLs the
    /// issuer's metadata names.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The time source (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Discovers the issuer's metadata, checks that it names this issuer,
    /// and fetches its keys.
    ///
    /// # Errors
    /// A [`DiscoveryError`] when the issuer cannot be reached or answers
    /// something unusable.
    pub async fn build(self) -> Result<Verifier, DiscoveryError> {
        let client = match self.client {
            Some(c) => c,
            None => default_client()?,
        };
        let jwks_uri = discover(&client, &self.issuer).await?;
        let expectations = Expectations {
            issuer: self.issuer,
            audience: self.audience,
            mode: self.mode,
            leeway_seconds: self.leeway.as_secs(),
            require_typ: self.require_typ,
        };
        let keys = KeyCache::remote(jwks_uri, client, self.clock)
            .min_refetch_interval(self.min_refetch_interval)
            .default_cache_ttl(self.default_ttl);
        keys.refresh().await?;
        Ok(Verifier { keys, expectations })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(crate) fn default_client() -> Result<reqwest::Client, DiscoveryError> {
    reqwest::Client::builder()
        .timeout(DEFAULT_HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DiscoveryError::Http {
            url: String::new(),
            reason: e.to_string(),
        })
}

/// Verifies access tokens of one issuer, with its keys cached.
///
/// Cheap to clone (an `Arc`); share one per issuer across the application.
///
/// ```no_run
/// # async fn demo(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use latchkey_verify::{Mode, Verifier};
///
/// let verifier = Verifier::builder("https://auth.example.com")
///     .audience("https://telemetry.example.com")
///     .mode(Mode::Live)
///     .build()
///     .await?;
/// let claims = verifier.verify(token).await?;
/// println!("{} in {}", claims.user_id(), claims.tenant_id());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    keys: KeyCache,
    expectations: Expectations,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("expectations", &self.expectations)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts configuring a verifier for tokens of `issuer` (the exact
    /// issuer URL, as in the tokens' `iss`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: None,
            mode: Mode::Live,
            leeway: Duration::from_secs(DEFAULT_LEEWAY_SECONDS),
            require_typ: true,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            default_ttl: DEFAULT_JWKS_TTL,
            client: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Starts configuring a verifier for `mode`'s tokens of the Latchkey
    /// server whose issuer URL is `server`: its issuer is
    /// [`Mode::issuer`] (`server` for live, `{server}/test` for test), and
    /// only tokens of `mode` are accepted. Each mode is its own issuer with
    /// its own keys, so a verifier of one never accepts the other's tokens.
    pub fn for_mode(server: &str, mode: Mode) -> VerifierBuilder {
        Self::builder(mode.issuer(server.trim_end_matches('/'))).mode(mode)
    }

    /// Verifies `token` and returns its claims.
    ///
    /// Takes no lock and does no I/O while the cached keys are fresh and
    /// know the token's `kid`.
    ///
    /// # Errors
    /// Why the token was refused; [`VerifyError::KeysUnavailable`] when the
    /// token names a key we do not have and the issuer could not be asked.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.keys
            .verify_with(|keys, now| verify_jwt(token, keys, &self.expectations, now))
            .await
    }

    /// Verifies `token` with the keys in the cache only: never fetches,
    /// never waits. An unknown `kid` is [`VerifyError::UnknownKid`].
    ///
    /// # Errors
    /// As [`verify_jwt`].
    pub fn verify_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        self.keys
            .with_cached(|keys, now| verify_jwt(token, keys, &self.expectations, now))
    }

    /// Fetches the JWKS now, whatever the cache says (and regardless of the
    /// refetch interval).
    ///
    /// # Errors
    /// Why the fetch failed; the previous keys stay in use.
    pub async fn refresh(&self) -> Result<(), DiscoveryError> {
        self.keys.refresh().await
    }

    /// What tokens must say to be accepted.
    pub fn expectations(&self) -> &Expectations {
        &self.expectations
    }

    /// The JWKS URL found by discovery.
    pub fn jwks_uri(&self) -> &str {
        self.keys.jwks_uri().unwrap_or_default()
    }

    /// The key ids currently cached.
    pub fn cached_kids(&self) -> Vec<String> {
        self.keys.cached_kids()
    }

    /// How many JWKS fetches were attempted so far (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.keys.fetch_count()
    }
}

/// A JWKS kept in memory: fetched from a URL and cached by its
/// `Cache-Control: max-age`, with one rate-limited refetch when a token
/// names a `kid` it does not know; or a fixed set given once (an issuer
/// that cannot be reached, such as a Kubernetes API server behind a
/// firewall). [`Verifier`] uses one for Latchkey's tokens; a server that
/// trusts other issuers' tokens uses one per issuer with its own claim
/// checks ([`KeyCache::verify_with`]).
///
/// Cheap to clone (an `Arc`). A remote cache starts empty and fetches on
/// first use (or on [`KeyCache::refresh`]).
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a fixed key set: nothing is ever fetched.
    source: Option<Source>,
    clock: Arc<dyn Clock>,
    cache: ArcSwap<Cached>,
    /// Serialises fetches. Held across the fetch's await on purpose (it is
    /// a `tokio` mutex, and the guard moves into the fetch task);
    /// verifications of known keys never take it.
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    /// When a stale cache (or `refresh`) last caused a fetch attempt.
    last_refresh: AtomicI64,
    /// When an unknown kid last caused a fetch attempt. Kept apart from
    /// `last_refresh` so a routine refresh does not delay picking up a
    /// rotated key; each kind is limited to one per interval.
    last_kid_refetch: AtomicI64,
    min_refetch: i64,
    default_ttl: i64,
    fetches: AtomicI64,
}

struct Source {
    client: reqwest::Client,
    jwks_uri: String,
}

struct Cached {
    keys: KeySet,
    fresh_until: i64,
    generation: u64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.inner.cache.load();
        f.debug_struct("KeyCache")
            .field("jwks_uri", &self.jwks_uri())
            .field("keys", &cached.keys)
            .field("fresh_until", &cached.fresh_until)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache of the JWKS at `jwks_uri`, fetched with `client` (give it a
    /// timeout and no redirects), empty until first used.
    pub fn remote(
        jwks_uri: impl Into<String>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(
            Some(Source {
                client,
                jwks_uri: jwks_uri.into(),
            }),
            KeySet::default(),
            i64::MIN,
            clock,
        )
    }

    /// A fixed key set: never fetched, never stale.
    pub fn fixed(keys: KeySet) -> Self {
        Self::new(None, keys, i64::MAX, Arc::new(SystemClock))
    }

    fn new(source: Option<Source>, keys: KeySet, fresh_until: i64, clock: Arc<dyn Clock>) -> Self {
        KeyCache {
            inner: Arc::new(Inner {
                source,
                clock,
                cache: ArcSwap::from_pointee(Cached {
                    keys,
                    fresh_until,
                    generation: 0,
                }),
                fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
                last_refresh: AtomicI64::new(i64::MIN),
                last_kid_refetch: AtomicI64::new(i64::MIN),
                min_refetch: secs(DEFAULT_MIN_REFETCH_INTERVAL),
                default_ttl: secs(DEFAULT_JWKS_TTL),
                fetches: AtomicI64::new(0),
            }),
        }
    }

    /// The shortest time between two fetches (default 10 s). Set it before
    /// sharing the cache.
    #[must_use]
    pub fn min_refetch_interval(self, interval: Duration) -> Self {
        self.configure(|i| i.min_refetch = secs(interval))
    }

    /// How long keys are cached when the JWKS has no `max-age` (default
    /// 300 s). Set it before sharing the cache.
    #[must_use]
    pub fn default_cache_ttl(self, ttl: Duration) -> Self {
        self.configure(|i| i.default_ttl = secs(ttl))
    }

    fn configure(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            f(inner);
        }
        self
    }

    /// Runs `check` with the keys and the current time (Unix seconds):
    /// first refreshing a stale cache (unless a fetch is in flight or was
    /// tried within the interval), then, when `check` answers
    /// [`VerifyError::UnknownKid`], once more after a rate-limited refetch.
    ///
    /// # Errors
    /// What `check` answers; [`VerifyError::KeysUnavailable`] when the keys
    /// had to be fetched for this token and could not be.
    pub async fn verify_with<T>(
        &self,
        check: impl Fn(&KeySet, i64) -> Result<T, VerifyError>,
    ) -> Result<T, VerifyError> {
        let inner = &*self.inner;
        let now = inner.clock.now_unix();
        let mut cached = inner.cache.load_full();
        let mut refreshed = Refresh::NotTried;
        if now >= cached.fresh_until {
            (cached, refreshed) = self.refresh_stale(cached, now).await;
        }
        match check(&cached.keys, now) {
            Err(VerifyError::UnknownKid(kid)) => {
                let fresh = match refreshed {
                    // The keys were fetched for this very request.
                    Refresh::Fetched => return Err(VerifyError::UnknownKid(kid)),
                    Refresh::Failed(e) => return Err(VerifyError::KeysUnavailable(e)),
                    Refresh::NotTried => self.refetch_for_unknown_kid(&cached).await?,
                };
                if fresh.generation == cached.generation {
                    return Err(VerifyError::UnknownKid(kid));
                }
                check(&fresh.keys, now)
            }
            other => other,
        }
    }

    /// Runs `check` with the cached keys only: never fetches, never waits.
    pub fn with_cached<T>(&self, check: impl FnOnce(&KeySet, i64) -> T) -> T {
        check(&self.inner.cache.load().keys, self.inner.clock.now_unix())
    }

    /// Fetches the JWKS now, whatever the cache says (and regardless of the
    /// refetch interval). A fixed set has nothing to fetch.
    ///
    /// # Errors
    /// Why the fetch failed; the previous keys stay in use.
    pub async fn refresh(&self) -> Result<(), DiscoveryError> {
        if self.inner.source.is_none() {
            return Ok(());
        }
        let guard = self.inner.fetch_lock.clone().lock_owned().await;
        let now = self.inner.clock.now_unix();
        self.inner.last_refresh.store(now, Ordering::Relaxed);
        self.spawn_fetch(guard, now).await.map(|_| ())
    }

    /// The JWKS URL, for a remote cache.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.inner.source.as_ref().map(|s| s.jwks_uri.as_str())
    }

    /// The key ids currently cached.
    pub fn cached_kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self
            .inner
            .cache
            .load()
            .keys
            .kids()
            .map(Into::into)
            .collect();
        kids.sort_unstable();
        kids
    }

    /// How many JWKS fetches were attempted so far (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        u64::try_from(self.inner.fetches.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Runs a fetch in its own task, holding `guard` until it ends. A
    /// request that gives up (its client disconnected) thus cannot cancel a
    /// fetch half-way and leave the keys stale for another interval.
    async fn spawn_fetch(
        &self,
        guard: tokio::sync::OwnedMutexGuard<()>,
        now: i64,
    ) -> Result<Arc<Cached>, DiscoveryError> {
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            let result = inner.fetch_and_store(now).await;
            drop(guard);
            result
        });
        task.await.unwrap_or_else(|e| {
            Err(DiscoveryError::Http {
                url: self.jwks_uri().unwrap_or_default().to_owned(),
                reason: format!("fetch task failed: {e}"),
            })
        })
    }

    /// The cache is stale: the first request to notice fetches, unless a
    /// fetch is in flight or a refresh was tried less than the refetch
    /// interval ago; every other request goes on with the stale keys.
    async fn refresh_stale(&self, seen: Arc<Cached>, now: i64) -> (Arc<Cached>, Refresh) {
        let inner = &*self.inner;
        let Ok(guard) = inner.fetch_lock.clone().try_lock_owned() else {
            return (seen, Refresh::NotTried);
        };
        let current = inner.cache.load_full();
        if current.generation != seen.generation || !inner.due(&inner.last_refresh, now) {
            return (current, Refresh::NotTried);
        }
        inner.last_refresh.store(now, Ordering::Relaxed);
        match self.spawn_fetch(guard, now).await {
            Ok(fresh) => (fresh, Refresh::Fetched),
            Err(e) => {
                tracing::warn!(error = %e, jwks_uri = ?self.jwks_uri(),
                    "JWKS refresh failed; keeping the cached keys");
                (current, Refresh::Failed(e.to_string()))
            }
        }
    }

    /// A token names a key we do not have: wait for a fetch in flight, or
    /// fetch once if no unknown kid caused a fetch within the refetch
    /// interval.
    async fn refetch_for_unknown_kid(
        &self,
        seen: &Arc<Cached>,
    ) -> Result<Arc<Cached>, VerifyError> {
        let inner = &*self.inner;
        if inner.source.is_none() {
            return Ok(seen.clone());
        }
        let guard = inner.fetch_lock.clone().lock_owned().await;
        let current = inner.cache.load_full();
        // Someone fetched while we waited: use their keys.
        if current.generation != seen.generation {
            return Ok(current);
        }
        let now = inner.clock.now_unix();
        if !inner.due(&inner.last_kid_refetch, now) {
            return Ok(current);
        }
        inner.last_kid_refetch.store(now, Ordering::Relaxed);
        match self.spawn_fetch(guard, now).await {
            Ok(fresh) => Ok(fresh),
            Err(e) => {
                tracing::warn!(error = %e, jwks_uri = ?self.jwks_uri(),
                    "JWKS refetch for an unknown kid failed");
                Err(VerifyError::KeysUnavailable(e.to_string()))
            }
        }
    }
}

/// What a stale-cache refresh did for the request that noticed.
enum Refresh {
    NotTried,
    Fetched,
    Failed(String),
}

impl Inner {
    /// Whether the interval has passed since `last` (an attempt time).
    fn due(&self, last: &AtomicI64, now: i64) -> bool {
        let last = last.load(Ordering::Relaxed);
        last == i64::MIN || now.saturating_sub(last) >= self.min_refetch
    }

    /// Fetches and installs the JWKS. The caller holds `fetch_lock` (or is
    /// `refresh`) and has recorded the
    /// attempt, so failures are rate-limited like successes.
    async fn fetch_and_store(&self, now: i64) -> Result<Arc<Cached>, DiscoveryError> {
        let Some(source) = &self.source else {
            return Ok(self.cache.load_full());
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (keys, ttl) = fetch_jwks(&source.client, &source.jwks_uri, self.default_ttl).await?;
        let generation = self.cache.load().generation + 1;
        let cached = Arc::new(Cached {
            keys,
            fresh_until: now.saturating_add(ttl),
            generation,
        });
        self.cache.store(cached.clone());
        Ok(cached)
    }
}

/// The metadata URLs to try for `issuer`: the RFC 8414 §3.1 one (the
/// well-known path inserted before the issuer's path) and, for an issuer
/// with a path, the appended form that OpenID-style deployments serve.
fn metadata_urls(issuer: &str) -> Result<Vec<Url>, DiscoveryError> {
    let invalid = |why: &str| DiscoveryError::InvalidIssuer(format!("{issuer:?}: {why}"));
    let url = Url::parse(issuer).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("an issuer has no query or fragment"));
    }
    let path = url.path().trim_end_matches('/');
    let mut rfc8414 = url.clone();
    rfc8414.set_path(&format!("{WELL_KNOWN}{path}"));
    let mut urls = vec![rfc8414];
    if !path.is_empty() {
        let mut appended = url.clone();
        appended.set_path(&format!("{path}{WELL_KNOWN}"));
        urls.push(appended);
    }
    Ok(urls)
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

async fn discover(client: &reqwest::Client, issuer: &str) -> Result<String, DiscoveryError> {
    let urls = metadata_urls(issuer)?;
    let last = urls.len() - 1;
    for (i, url) in urls.into_iter().enumerate() {
        let (status, _, body) = get(client, url.as_str()).await?;
        if status == StatusCode::NOT_FOUND && i < last {
            continue;
        }
        if status != StatusCode::OK {
            return Err(DiscoveryError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let metadata: Metadata =
            serde_json::from_slice(&body).map_err(|e| DiscoveryError::InvalidDocument {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        if metadata.issuer != issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: metadata.issuer,
            });
        }
        let jwks = Url::parse(&metadata.jwks_uri).map_err(|e| DiscoveryError::InvalidDocument {
            url: url.to_string(),
            reason: format!("jwks_uri: {e}"),
        })?;
        if !matches!(jwks.scheme(), "http" | "https") {
            return Err(DiscoveryError::InvalidDocument {
                url: url.to_string(),
                reason: "jwks_uri is not an http(s) URL".into(),
            });
        }
        return Ok(metadata.jwks_uri);
    }
    Err(DiscoveryError::InvalidIssuer(issuer.to_owned()))
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// Fetches a JWKS and how long it may be cached, in seconds. Entries that
/// are not JWKs of a supported kind, or whose material is broken, are
/// skipped so one odd key cannot stop a rotation; conflicting kids fail.
async fn fetch_jwks(
    client: &reqwest::Client,
    url: &str,
    default_ttl: i64,
) -> Result<(KeySet, i64), DiscoveryError> {
    let (status, cache_control, body) = get(client, url).await?;
    if status != StatusCode::OK {
        return Err(DiscoveryError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let raw: RawJwks =
        serde_json::from_slice(&body).map_err(|e| DiscoveryError::InvalidDocument {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let jwks: Vec<Jwk> = raw
        .keys
        .into_iter()
        .filter_map(crate::jwks::jwk_from_json)
        .filter(|jwk| KeySet::from_keys([jwk]).is_ok())
        .collect();
    let keys = KeySet::from_keys(&jwks)?;
    let ttl = cache_control
        .as_deref()
        .map_or(Some(default_ttl), parse_max_age)
        .unwrap_or(default_ttl)
        .clamp(0, secs(MAX_JWKS_TTL));
    Ok((keys, ttl))
}

/// The freshness lifetime a `Cache-Control` value grants, in seconds:
/// `max-age`, or 0 for `no-cache`/`no-store`; `None` when it says neither.
pub(crate) fn parse_max_age(value: &str) -> Option<i64> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if name.eq_ignore_ascii_case("max-age") {
            max_age = arg
                .and_then(|a| a.parse::<u64>().ok())
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        }
    }
    max_age
}

/// GETs `url`, reading at most [`MAX_DOCUMENT_BYTES`].
async fn get(
    client: &reqwest::Client,
    url: &str,
) -> Result<(StatusCode, Option<String>, Vec<u8>), DiscoveryError> {
    let http = |e: reqwest::Error| DiscoveryError::Http {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(http)?;
    let status = response.status();
    let cache_control = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(DiscoveryError::Http {
                url: url.to_owned(),
                reason: format!("document larger than {MAX_DOCUMENT_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, cache_control, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(parse_max_age("public, max-age=300"), Some(300));
        assert_eq!(parse_max_age("MAX-AGE=\"60\""), Some(60));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("max-age=60, no-cache"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=-1"), None);
        assert_eq!(parse_max_age("s-maxage=10"), None);
    }

    #[test]
    fn metadata_urls_follow_rfc_8414_and_fall_back_to_the_appended_form() {
        let urls = |i| {
            metadata_urls(i)
                .unwrap()
                .into_iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urls("http://127.0.0.1:8080"),
            ["http://127.0.0.1:8080/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            urls("https://auth.example/"),
            ["https://auth.example/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            urls("https://example.com/auth"),
            [
                "https://example.com/.well-known/oauth-authorization-server/auth",
                "https://example.com/auth/.well-known/oauth-authorization-server",
            ]
        );
        for bad in ["ftp://x", "not a url", "https://x/?q=1", "https://x/#f"] {
            assert!(matches!(
                metadata_urls(bad),
                Err(DiscoveryError::InvalidIssuer(_))
            ));
        }
    }
}
