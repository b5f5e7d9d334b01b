//! Remote API-key checks (feature `remote`): `POST {issuer}/v1/api-keys/verify`
//! with a short positive and negative cache.
//!
//! Keys whose format or checksum is wrong, that are not API keys, or that
//! belong to the other mode are refused locally and never reach the
//! network. Answers are cached by the key's SHA-256 digest (never the key
//! itself): valid ones for a short time (default 30 s, never past the key's
//! expiry, never for keys with a `remaining` budget, whose every use must be
//! counted by the issuer), invalid ones for less (default 5 s). Both caches
//! are bounded, separately, so a flood of bogus keys cannot push out the
//! good ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use latchkey_types::admin::Authorization;
use latchkey_types::Mode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::apikey::{parse_credential, CredentialKind, KeyDigest};
use crate::clock::{Clock, SystemClock};
use crate::remote::{default_client, DiscoveryError};

/// The default lifetime of a cached "valid" answer.
pub const DEFAULT_POSITIVE_TTL: Duration = Duration::from_secs(30);
/// The default lifetime of a cached "not valid" answer.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The default bound of each cache, in entries.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The largest answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why the issuer (or the local pre-check) says a key is not valid: the
/// contract's `code`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalCode {
    /// No such key.
    NotFound,
    /// Not a well-formed API key (format, checksum or type); decided
    /// locally when the format says so.
    Malformed,
    /// Revoked, or a previous value whose rotation grace period ended.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its user is disabled.
    Disabled,
    /// Over its rate limit for the current window.
    RateLimited,
    /// Its `remaining` budget is spent.
    UsageExceeded,
    /// A key of the other mode (decided locally when the modes are known).
    WrongMode,
    /// A code this version does not know yet.
    Other(String),
}

impl RefusalCode {
    fn parse(code: &str) -> Self {
        match code {
            "not_found" => RefusalCode::NotFound,
            "malformed" => RefusalCode::Malformed,
            "revoked" => RefusalCode::Revoked,
            "expired" => RefusalCode::Expired,
            "disabled" => RefusalCode::Disabled,
            "rate_limited" => RefusalCode::RateLimited,
            "usage_exceeded" => RefusalCode::UsageExceeded,
            "wrong_mode" => RefusalCode::WrongMode,
            other => RefusalCode::Other(other.to_owned()),
        }
    }

    /// The code as the contract spells it.
    pub fn as_str(&self) -> &str {
        match self {
            RefusalCode::NotFound => "not_found",
            RefusalCode::Malformed => "malformed",
            RefusalCode::Revoked => "revoked",
            RefusalCode::Expired => "expired",
            RefusalCode::Disabled => "disabled",
            RefusalCode::RateLimited => "rate_limited",
            RefusalCode::UsageExceeded => "usage_exceeded",
            RefusalCode::WrongMode => "wrong_mode",
            RefusalCode::Other(code) => code,
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an API key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The key is not valid (a 401 for the client that sent it).
    #[error("API key refused: {0}")]
    Refused(RefusalCode),
    /// The issuer refused *our* credential (the one in `Authorization`):
    /// a configuration problem of this service, not the client's.
    #[error("the issuer refused this verifier's credential ({status}{})",
        code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    CallerRejected {
        /// The HTTP status (401, 403).
        status: u16,
        /// The problem document's `code`, when there was one.
        code: Option<String>,
    },
    /// The issuer could not be asked, or answered something unusable.
    #[error("API-key verification unavailable: {0}")]
    Unavailable(String),
}

impl ApiKeyError {
    /// Whether the failure is this service's (issuer unreachable, our own
    /// credential refused) rather than the key's: a 503, not a 401.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, ApiKeyError::Refused(_))
    }
}

/// A valid key, as the issuer describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyInfo {
    /// The key id (`key_…`).
    pub key_id: String,
    /// The user the key authenticates as.
    pub user_id: String,
    /// The key's tenant.
    pub tenant_id: String,
    /// The key's mode.
    pub mode: Mode,
    /// Roles effective in the key's tenant (narrowed by the key's roles).
    pub roles: Vec<String>,
    /// Roles by tenant, like a token's `authorization` claim.
    pub authorization: Authorization,
    /// When the key expires, seconds since the Unix epoch; `None`: never.
    pub expires_at: Option<i64>,
    /// Uses left after this one, when the key has a budget.
    pub remaining: Option<i64>,
}

impl ApiKeyInfo {
    /// Whether the key holds `role` in `tenant`.
    pub fn has_role(&self, tenant: &str, role: &str) -> bool {
        self.authorization
            .get(tenant)
            .is_some_and(|t| t.roles.iter().any(|r| r == role))
    }
}

/// The wire shape of the answer; lenient about fields it does not need so
/// that additions to the contract do not break deployed verifiers.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    valid: bool,
    code: Option<String>,
    key_id: Option<String>,
    user_id: Option<String>,
    tenant_id: Option<String>,
    mode: Option<Mode>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    authorization: Authorization,
    expires_at: Option<String>,
    remaining: Option<i64>,
}

impl Answer {
    fn into_result(self) -> Result<Result<ApiKeyInfo, RefusalCode>, String> {
        if !self.valid {
            let code = self.code.ok_or("a refusal without a code")?;
            return Ok(Err(RefusalCode::parse(&code)));
        }
        let expires_at = match self.expires_at {
            None => None,
            Some(s) => Some(
                time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| format!("expiresAt {s:?} is not RFC 3339"))?
                    .unix_timestamp(),
            ),
        };
        Ok(Ok(ApiKeyInfo {
            key_id: self.key_id.ok_or("no keyId")?,
            user_id: self.user_id.ok_or("no userId")?,
            tenant_id: self.tenant_id.ok_or("no tenantId")?,
            mode: self.mode.ok_or("no mode")?,
            roles: self.roles,
            authorization: self.authorization,
            expires_at,
            remaining: self.remaining,
        }))
    }
}

/// A problem document, for its `code`.
#[derive(Deserialize)]
struct Problem {
    code: Option<String>,
}

/// A secret kept out of `Debug` output.
struct Secret(String);

/// Configures a [`RemoteKeyVerifier`]; see [`RemoteKeyVerifier::builder`].
pub struct RemoteKeyVerifierBuilder {
    issuer: String,
    credential: String,
    mode: Option<Mode>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    client: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RemoteKeyVerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeyVerifierBuilder")
            .field("issuer", &self.issuer)
            .field("credential", &"[redacted]")
            .field("mode", &self.mode)
            .field("positive_ttl", &self.positive_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl RemoteKeyVerifierBuilder {
    /// Accepts keys of `mode` only; others are refused locally with
    /// [`RefusalCode::WrongMode`]. By default the mode of the caller
    /// credential, when it is a Latchkey key (an access token as caller
    /// credential says nothing locally, and the issuer decides).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// How long a "valid" answer is reused (default 30 s; zero disables the
    /// positive cache, so a revocation is seen at once).
    pub fn positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl;
        self
    }

    /// How long a "not valid" answer is reused (default 5 s; zero disables).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The bound of each cache (positive and negative), in entries
    /// (default 10 000).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// The HTTP client to use (default: 10 s timeout, no redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The time source of the caches (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the verifier. No request is made yet.
    ///
    /// # Errors
    /// [`DiscoveryError::InvalidIssuer`] for an issuer that is not an
    /// absolute http(s) URL; [`DiscoveryError::Http`] if no HTTP client
    /// could be made.
    pub fn build(self) -> Result<RemoteKeyVerifier, DiscoveryError> {
        let issuer = Url::parse(&self.issuer)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| DiscoveryError::InvalidIssuer(self.issuer.clone()))?;
        let endpoint = format!(
            "{}/v1/api-keys/verify",
            issuer.as_str().trim_end_matches('/')
        );
        let client = match self.client {
            Some(c) => c,
            None => default_client()?,
        };
        let caller_mode = parse_credential(&self.credential).ok().map(|i| i.mode);
        Ok(RemoteKeyVerifier {
            inner: Arc::new(Inner {
                client,
                endpoint,
                credential: ArcSwap::from_pointee(Secret(self.credential)),
                mode: self.mode.or(caller_mode),
                positive_ttl: secs(self.positive_ttl),
                negative_ttl: secs(self.negative_ttl),
                max_entries: self.max_entries,
                clock: self.clock,
                valid: Mutex::new(HashMap::new()),
                invalid: Mutex::new(HashMap::new()),
                requests: AtomicU64::new(0),
            }),
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Verifies API keys through the issuer's `POST /v1/api-keys/verify`, with
/// a short cache. Cheap to clone (an `Arc`).
///
/// ```no_run
/// # async fn demo(key_from_request: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use latchkey_verify::RemoteKeyVerifier;
///
/// // This service's own credential: an API key or access token of the
/// // same mode as the keys it checks.
/// let keys = RemoteKeyVerifier::builder("https://auth.example.com", "lk_live_key_…")
///     .build()?;
/// let info = keys.verify(key_from_request).await?;
/// println!("{} in {}", info.user_id, info.tenant_id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteKeyVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    endpoint: String,
    credential: ArcSwap<Secret>,
    mode: Option<Mode>,
    positive_ttl: i64,
    negative_ttl: i64,
    max_entries: usize,
    clock: Arc<dyn Clock>,
    /// Never locked across an await.
    valid: Mutex<HashMap<KeyDigest, (Arc<ApiKeyInfo>, i64)>>,
    /// Never locked across an await.
    invalid: Mutex<HashMap<KeyDigest, (RefusalCode, i64)>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for RemoteKeyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeyVerifier")
            .field("endpoint", &self.inner.endpoint)
            .field("credential", &"[redacted]")
            .field("mode", &self.inner.mode)
            .field("positive_ttl", &self.inner.positive_ttl)
            .field("negative_ttl", &self.inner.negative_ttl)
            .finish_non_exhaustive()
    }
}

impl RemoteKeyVerifier {
    /// Starts configuring a verifier that asks the Latchkey server at
    /// `issuer` (its base URL, the configured issuer URL: one verify
    /// endpoint serves both modes, so this is the same for test keys,
    /// whose token issuer is `{url}/test`), authenticating with
    /// `caller_credential`: an admin key, an API key or an access token of
    /// the same mode as the keys it will check.
    pub fn builder(
        issuer: impl Into<String>,
        caller_credential: impl Into<String>,
    ) -> RemoteKeyVerifierBuilder {
        RemoteKeyVerifierBuilder {
            issuer: issuer.into(),
            credential: caller_credential.into(),
            mode: None,
            positive_ttl: DEFAULT_POSITIVE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            client: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the caller credential (say, a fresh access token), for
    /// every clone of this verifier.
    pub fn set_caller_credential(&self, credential: impl Into<String>) {
        self.inner
            .credential
            .store(Arc::new(Secret(credential.into())));
    }

    /// Checks `key`: locally first (format, checksum, type, mode), then in
    /// the cache, then with the issuer.
    ///
    /// # Errors
    /// [`ApiKeyError::Refused`] when the key is not valid;
    /// [`ApiKeyError::CallerRejected`] or [`ApiKeyError::Unavailable`] when
    /// the issuer could not give an answer.
    pub async fn verify(&self, key: &str) -> Result<ApiKeyInfo, ApiKeyError> {
        let inner = &*self.inner;
        let info =
            parse_credential(key).map_err(|_| ApiKeyError::Refused(RefusalCode::Malformed))?;
        if info.kind != CredentialKind::ApiKey {
            return Err(ApiKeyError::Refused(RefusalCode::Malformed));
        }
        if inner.mode.is_some_and(|m| m != info.mode) {
            return Err(ApiKeyError::Refused(RefusalCode::WrongMode));
        }
        let digest = KeyDigest::of(key);
        if let Some(cached) = inner.cached(&digest) {
            return cached;
        }
        let answer = inner.ask(key).await?;
        inner.remember(digest, &answer);
        answer
            .map(|info| (*info).clone())
            .map_err(ApiKeyError::Refused)
    }

    /// How many requests were sent to the issuer so far (for tests and
    /// metrics).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Forgets every cached answer (say, after a key was revoked here).
    pub fn clear_cache(&self) {
        lock(&self.inner.valid).clear();
        lock(&self.inner.invalid).clear();
    }
}

/// Locks a cache map. A panic while holding it cannot leave a map in a
/// state worse than "some entries missing", so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Outcome = Result<Arc<ApiKeyInfo>, RefusalCode>;

impl Inner {
    fn cached(&self, digest: &KeyDigest) -> Option<Result<ApiKeyInfo, ApiKeyError>> {
        let now = self.clock.now_unix();
        if let Some((info, until)) = lock(&self.valid).get(digest) {
            if now < *until {
                return Some(Ok((**info).clone()));
            }
        }
        if let Some((code, until)) = lock(&self.invalid).get(digest) {
            if now < *until {
                return Some(Err(ApiKeyError::Refused(code.clone())));
            }
        }
        None
    }

    fn remember(&self, digest: KeyDigest, answer: &Outcome) {
        let now = self.clock.now_unix();
        match answer {
            Ok(info) => {
                // A key with a budget must be counted by the issuer on every
                // use, so its answers are never reused.
                if info.remaining.is_some() || self.positive_ttl == 0 {
                    return;
                }
                let mut until = now.saturating_add(self.positive_ttl);
                if let Some(expiry) = info.expires_at {
                    until = until.min(expiry);
                }
                lock(&self.invalid).remove(&digest);
                insert_bounded(
                    &mut lock(&self.valid),
                    digest,
                    (info.clone(), until),
                    now,
                    self.max_entries,
                );
            }
            Err(code) => {
                if self.negative_ttl == 0 {
                    return;
                }
                lock(&self.valid).remove(&digest);
                let until = now.saturating_add(self.negative_ttl);
                insert_bounded(
                    &mut lock(&self.invalid),
                    digest,
                    (code.clone(), until),
                    now,
                    self.max_entries,
                );
            }
        }
    }

    /// One request to the issuer.
    async fn ask(&self, key: &str) -> Result<Outcome, ApiKeyError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let credential = self.credential.load_full();
        let unavailable = |e: reqwest::Error| ApiKeyError::Unavailable(e.without_url().to_string());
        let mut response = self
            .client
            .post(&self.endpoint)
            .header("x-api-key", key)
            .header(AUTHORIZATION, format!("Bearer {}", credential.0))
            .header(CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ApiKeyError::Unavailable("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            StatusCode::OK => {
                let answer: Answer = serde_json::from_slice(&body)
                    .map_err(|e| ApiKeyError::Unavailable(format!("unexpected answer: {e}")))?;
                let outcome = answer
                    .into_result()
                    .map_err(|e| ApiKeyError::Unavailable(format!("unexpected answer: {e}")))?;
                Ok(outcome.map(Arc::new))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let code = serde_json::from_slice::<Problem>(&body)
                    .ok()
                    .and_then(|p| p.code);
                Err(ApiKeyError::CallerRejected {
                    status: status.as_u16(),
                    code,
                })
            }
            other => Err(ApiKeyError::Unavailable(format!(
                "the issuer answered {}",
                other.as_u16()
            ))),
        }
    }
}

/// Inserts into a cache of at most `max` entries: when full, expired
/// entries go first, then an arbitrary eighth of the rest.
fn insert_bounded<V>(
    map: &mut HashMap<KeyDigest, (V, i64)>,
    digest: KeyDigest,
    value: (V, i64),
    now: i64,
    max: usize,
) {
    if max == 0 {
        return;
    }
    if map.len() >= max && !map.contains_key(&digest) {
        map.retain(|_, (_, until)| now < *until);
        if map.len() >= max {
            let drop: Vec<KeyDigest> = map.keys().take((max / 8).max(1)).copied().collect();
            for d in drop {
                map.remove(&d);
            }
        }
    }
    map.insert(digest, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_the_contract_parse_and_unknown_codes_are_kept() {
        let valid: Answer = serde_json::from_str(
            r#"{"valid":true,"keyId":"key_1","userId":"usr_1","tenantId":"acme",
                "mode":"live","roles":["reader"],
                "authorization":{"acme":{"roles":["reader"]}},
                "expiresAt":"2030-01-01T00:00:00Z","remaining":4,"newField":1}"#,
        )
        .unwrap();
        let info = valid.into_result().unwrap().unwrap();
        assert_eq!(info.key_id, "key_1");
        assert_eq!(info.expires_at, Some(1_893_456_000));
        assert_eq!(info.remaining, Some(4));
        assert!(info.has_role("acme", "reader"));
        assert!(!info.has_role("acme", "writer"));

        let never: Answer = serde_json::from_str(
            r#"{"valid":true,"keyId":"k","userId":"u","tenantId":"t","mode":"test",
                "roles":[],"authorization":{},"expiresAt":null}"#,
        )
        .unwrap();
        assert_eq!(never.into_result().unwrap().unwrap().expires_at, None);

        for (code, want) in [
            ("revoked", RefusalCode::Revoked),
            ("usage_exceeded", RefusalCode::UsageExceeded),
            ("brand_new", RefusalCode::Other("brand_new".into())),
        ] {
            let a: Answer =
                serde_json::from_str(&format!(r#"{{"valid":false,"code":"{code}"}}"#)).unwrap();
            assert_eq!(a.into_result().unwrap(), Err(want.clone()));
            assert_eq!(want.as_str(), code);
        }
        let broken: Answer = serde_json::from_str(r#"{"valid":true}"#).unwrap();
        assert!(broken.into_result().is_err());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_and_stays_bounded() {
        let mut map = HashMap::new();
        for i in 0..8u8 {
            let until = if i < 4 { 5 } else { 100 };
            insert_bounded(&mut map, KeyDigest::of(&i.to_string()), ((), until), 0, 8);
        }
        assert_eq!(map.len(), 8);
        insert_bounded(&mut map, KeyDigest::of("new"), ((), 100), 10, 8);
        assert_eq!(map.len(), 5);
        for i in 0..100u16 {
            insert_bounded(&mut map, KeyDigest::of(&format!("x{i}")), ((), 100), 10, 8);
            assert!(map.len() <= 8);
        }
    }
}
