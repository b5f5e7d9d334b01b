//! Brute-force limits on the endpoints that check a credential
//! (`/oauth/token`, `/oauth/introspect`, `/oauth/revoke`,
//! `/v1/api-keys/verify`).
//!
//! Failed attempts are counted in fixed one-minute windows (limits from
//! [`Limits`], configurable):
//! - per source address: at `per_address` failures (50), the address gets
//!   429 with `Retry-After` on these endpoints until the window ends;
//! - per client id and source address: at `per_client` failures (10), that
//!   address gets 429 for that client id;
//! - per client id, from every address: at ten times `per_client` failures the
//!   client id is under attack, and an address that has failed for it in
//!   this window gets 429 for it. An address with no failure for the client
//!   (the real machine) is never refused because of others' failures, so an
//!   attacker cannot lock a machine out; at worst a machine behind the same
//!   address as an attacker waits for the window to end (under a minute).
//!
//! Credentials are 256-bit random values, so these limits are not what keeps
//! them from being guessed; they keep floods of guesses cheap to refuse and
//! visible (`latchkey_bruteforce_refusals_total`).
//!
//! **Where the counts live.** Each node keeps its counters in a bounded
//! cache. With `--redis-url` they are shared by every node: each failure is
//! counted in Redis (one script bumps the address, pair and client windows
//! and returns their counts), and a node reads the shared counts of an
//! address or client the first time it sees it in a window and, once that
//! address or client has failures in the window, on every attempt; an
//! attempt by a client that never failed costs one Redis read per window
//! per node. So guesses spread over N nodes meet one limit; at most one
//! attempt per node can slip past it, by a caller whose address was first
//! seen on that node without failures (a NAT shared with a good client)
//! before failing elsewhere. When Redis fails or is slow, a node counts on
//! its own, as without Redis.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_core::credential::CredentialDigest;
use parking_lot::Mutex;
use quick_cache::sync::Cache;

use latchkey_types::audit::{AuditAction, AuditActor, AuditTarget};
use latchkey_types::ids::{Identifier as _, UserId};
use latchkey_types::Mode;

use crate::authn::coordination::Redis;
use crate::http::error::{ApiError, OAuthError, OAuthErrorCode};
use crate::state::AppState;

/// Length of a counting window, in seconds.
pub const WINDOW_SECONDS: i64 = 60;

/// Failed attempts allowed per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From one address.
    pub per_address: u32,
    /// For one client id from one address (ten times this from all
    /// addresses marks the client as under attack).
    pub per_client: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_address: 50,
            per_client: 10,
        }
    }
}
/// The routes this applies to.
const GUARDED: [&str; 4] = [
    "/oauth/token",
    "/oauth/introspect",
    "/oauth/revoke",
    "/v1/api-keys/verify",
];

/// Most counters held; the coldest go first.
const MAX_COUNTERS: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Ip(IpAddr),
    Client(String),
    Pair(String, IpAddr),
}

impl Subject {
    /// This subject's counter in Redis, in the window `w`, under the
    /// deployment's `namespace`. Client ids are digested: they are
    /// whatever a caller sent, of any length.
    fn redis_key(&self, namespace: &str, w: i64) -> String {
        let client = |c: &str| CredentialDigest::of(c).to_hex()[..32].to_owned();
        match self {
            Subject::Ip(ip) => format!("latchkey:bf:{namespace}:{w}:ip:{ip}"),
            Subject::Client(c) => format!("latchkey:bf:{namespace}:{w}:client:{}", client(c)),
            Subject::Pair(c, ip) => {
                format!("latchkey:bf:{namespace}:{w}:pair:{}:{ip}", client(c))
            }
        }
    }
}

/// Failures in one window, as this node knows them.
#[derive(Debug, Default)]
struct Counter(Mutex<Window>);

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    /// The window these counts are of.
    window: i64,
    /// Failures in it.
    n: u32,
    /// The window in which the shared count was last read (with Redis).
    read_in: Option<i64>,
}

impl Counter {
    fn get(&self, window: i64) -> u32 {
        let w = self.0.lock();
        if w.window == window {
            w.n
        } else {
            0
        }
    }

    /// Counts one failure; returns the count in `window` after it.
    fn bump(&self, window: i64) -> u32 {
        let mut w = self.0.lock();
        if w.window != window {
            *w = Window {
                window,
                n: 0,
                read_in: None,
            };
        }
        w.n = w.n.saturating_add(1);
        w.n
    }

    /// Takes the shared count `n` of `window` (read from Redis, or returned
    /// by a bump there).
    fn observe(&self, window: i64, n: u32) {
        let mut w = self.0.lock();
        if w.window != window {
            *w = Window {
                window,
                n,
                read_in: Some(window),
            };
        } else {
            w.n = w.n.max(n);
            w.read_in = Some(window);
        }
    }

    /// Whether the shared count must be read before deciding: the first
    /// time in a window, and whenever the window has failures.
    fn needs_read(&self, window: i64) -> bool {
        let w = self.0.lock();
        w.read_in != Some(window) || (w.window == window && w.n > 0)
    }

    /// Marks the window as read (after a failed read: do not retry on
    /// every request).
    fn mark_read(&self, window: i64) {
        let mut w = self.0.lock();
        if w.window != window {
            *w = Window {
                window,
                n: 0,
                read_in: Some(window),
            };
        } else {
            w.read_in = Some(window);
        }
    }
}

/// The failure counters: this node's, mirroring the shared ones in Redis
/// when there is Redis.
#[derive(Debug)]
pub struct Guard {
    counters: Cache<Subject, Arc<Counter>>,
    limits: Limits,
    /// Redis, and the deployment's namespace in it (the workspace id).
    shared: Option<(Redis, String)>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new(Limits::default())
    }
}

fn window_of(now: i64) -> i64 {
    now.div_euclid(WINDOW_SECONDS)
}

/// Seconds until the window of `now` ends (at least 1).
fn retry_after(now: i64) -> u64 {
    (WINDOW_SECONDS - now.rem_euclid(WINDOW_SECONDS)).max(1) as u64
}

/// The subjects an attempt from `ip` (for `client`) counts against.
fn subjects(ip: IpAddr, client: Option<&str>) -> Vec<Subject> {
    let mut out = vec![Subject::Ip(ip)];
    if let Some(client) = client {
        out.push(Subject::Pair(client.to_owned(), ip));
        out.push(Subject::Client(client.to_owned()));
    }
    out
}

impl Guard {
    /// Empty counters with these limits, on this node only.
    pub fn new(limits: Limits) -> Self {
        Guard {
            counters: Cache::new(MAX_COUNTERS),
            limits,
            shared: None,
        }
    }

    /// Counters shared through `redis` (when given) under `namespace`.
    pub fn shared(limits: Limits, redis: Option<Redis>, namespace: &str) -> Self {
        Guard {
            shared: redis.map(|r| (r, namespace.to_owned())),
            ..Guard::new(limits)
        }
    }

    fn count(&self, s: &Subject, window: i64) -> u32 {
        self.counters.get(s).map_or(0, |c| c.get(window))
    }

    fn counter(&self, s: &Subject) -> Arc<Counter> {
        match self.counters.get(s) {
            Some(c) => c,
            None => {
                let c = Arc::new(Counter::default());
                self.counters.insert(s.clone(), Arc::clone(&c));
                c
            }
        }
    }

    fn bump(&self, s: Subject, window: i64) -> u32 {
        self.counter(&s).bump(window)
    }

    /// The limit `s` is held to, and what reaching it means.
    fn limit_of(&self, s: &Subject) -> Exceeded {
        match s {
            Subject::Ip(_) => Exceeded::Address {
                limit: self.limits.per_address,
            },
            Subject::Pair(..) => Exceeded::Client {
                limit: self.limits.per_client,
            },
            Subject::Client(_) => Exceeded::ClientUnderAttack {
                limit: self.limits.per_client.saturating_mul(10),
            },
        }
    }

    /// `Some(seconds)` when attempts from `ip` (for `client`, if known) are
    /// refused now. With Redis, reads the shared counts this node needs
    /// first (see the module documentation).
    pub async fn check(&self, ip: IpAddr, client: Option<&str>, now: i64) -> Option<u64> {
        if let Some((redis, namespace)) = &self.shared {
            let w = window_of(now);
            let stale: Vec<(Subject, Arc<Counter>)> = subjects(ip, client)
                .into_iter()
                .map(|s| {
                    let c = self.counter(&s);
                    (s, c)
                })
                .filter(|(_, c)| c.needs_read(w))
                .collect();
            if !stale.is_empty() {
                let keys: Vec<String> = stale
                    .iter()
                    .map(|(s, _)| s.redis_key(namespace, w))
                    .collect();
                match redis.counts(&keys).await {
                    Some(counts) => {
                        for ((_, c), n) in stale.iter().zip(counts) {
                            c.observe(w, n);
                        }
                    }
                    None => stale.iter().for_each(|(_, c)| c.mark_read(w)),
                }
            }
        }
        self.refused(ip, client, now)
    }

    /// Counts a failed attempt (in Redis when there is Redis, else, or when
    /// Redis fails, here), and says which limits it has just reached: each
    /// once per window, across all nodes sharing Redis.
    pub async fn record_failure(
        &self,
        ip: IpAddr,
        client: Option<&str>,
        now: i64,
    ) -> Vec<Exceeded> {
        if let Some((redis, namespace)) = &self.shared {
            let w = window_of(now);
            let subjects = subjects(ip, client);
            let keys: Vec<String> = subjects.iter().map(|s| s.redis_key(namespace, w)).collect();
            if let Some(counts) = redis.bump_all(&keys, WINDOW_SECONDS + 1).await {
                let mut reached = Vec::new();
                for (s, n) in subjects.iter().zip(counts) {
                    self.counter(s).observe(w, n);
                    let exceeded = self.limit_of(s);
                    if n == exceeded.limit() {
                        reached.push(exceeded);
                    }
                }
                return reached;
            }
        }
        self.failed(ip, client, now)
    }

    /// `Some(seconds)` when attempts from `ip` (for `client`, if known) are
    /// refused now, by the counts this node holds.
    pub fn refused(&self, ip: IpAddr, client: Option<&str>, now: i64) -> Option<u64> {
        let w = window_of(now);
        if self.count(&Subject::Ip(ip), w) >= self.limits.per_address {
            return Some(retry_after(now));
        }
        let client = client?;
        let pair = self.count(&Subject::Pair(client.to_owned(), ip), w);
        let under_attack = self.count(&Subject::Client(client.to_owned()), w)
            >= self.limits.per_client.saturating_mul(10);
        (pair >= self.limits.per_client || (under_attack && pair > 0)).then(|| retry_after(now))
    }

    /// Counts a failed attempt on this node, and says which limits it has
    /// just reached (each at most once per window, however many attempts
    /// follow).
    pub fn failed(&self, ip: IpAddr, client: Option<&str>, now: i64) -> Vec<Exceeded> {
        let w = window_of(now);
        subjects(ip, client)
            .into_iter()
            .filter_map(|s| {
                let exceeded = self.limit_of(&s);
                (self.bump(s, w) == exceeded.limit()).then_some(exceeded)
            })
            .collect()
    }
}

/// A brute-force limit a failed attempt has just reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Failures from one address (for any client).
    Address {
        /// The limit reached.
        limit: u32,
    },
    /// Failures for one client from one address.
    Client {
        /// The limit reached.
        limit: u32,
    },
    /// Failures for one client from all addresses.
    ClientUnderAttack {
        /// The limit reached.
        limit: u32,
    },
}

impl Exceeded {
    fn name(self) -> &'static str {
        match self {
            Exceeded::Address { .. } => "per_address",
            Exceeded::Client { .. } => "per_client",
            Exceeded::ClientUnderAttack { .. } => "client_under_attack",
        }
    }

    fn limit(self) -> u32 {
        match self {
            Exceeded::Address { limit }
            | Exceeded::Client { limit }
            | Exceeded::ClientUnderAttack { limit } => limit,
        }
    }
}

/// Set by a handler whose failure does not show in the status (the verify
/// endpoint answers 200 with `valid: false`).
#[derive(Debug, Default)]
pub struct Attempt {
    failed: AtomicBool,
}

impl Attempt {
    /// Marks the attempt as failed.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }
}

/// The partition a client id names a user in, if any (a burst against a
/// client is shown to that partition's admins only).
async fn partition_of(state: &AppState, client: &str) -> Option<Mode> {
    if !UserId::is_valid(client) {
        return None;
    }
    for mode in Mode::ALL {
        if let Ok(Some(_)) = state.caches.principal(&state.store, mode, client).await {
            return Some(mode);
        }
    }
    None
}

/// Records that limits were reached. A per-address event has no mode (it
/// is shown in both: the attempts may have named anything) and names only
/// the address. A per-client event is of the partition where the client
/// exists, never of one an attacker chose with a credential prefix; for a
/// client id that names no user, it is a mode-less event about the address,
/// so no partition learns client ids of another or attacker-chosen text.
async fn record_exceeded(
    state: AppState,
    reached: Vec<Exceeded>,
    ip: IpAddr,
    client: Option<String>,
    endpoint: &'static str,
) {
    for exceeded in reached {
        let (mode, target) = match (exceeded, client.as_deref()) {
            (Exceeded::Address { .. }, _) | (_, None) => {
                (None, AuditTarget::new("address", ip.to_string()))
            }
            (_, Some(client)) => match partition_of(&state, client).await {
                Some(mode) => (Some(mode), AuditTarget::new("client", client)),
                None => (None, AuditTarget::new("address", ip.to_string())),
            },
        };
        let event = crate::admin::audit::event(
            &state,
            mode,
            AuditAction::AuthFailuresExceeded,
            AuditActor::anonymous(),
            target,
            Some(ip.to_string()),
        )
        .with_detail("limit", exceeded.name())
        .with_detail("failures", exceeded.limit())
        .with_detail("windowSeconds", WINDOW_SECONDS)
        .with_detail("endpoint", endpoint);
        tracing::warn!(limit = exceeded.name(), address = %ip, endpoint, "brute-force limit reached");
        state.audit.try_record(event);
    }
}

fn too_many(oauth: bool, seconds: u64) -> Response {
    let mut response = if oauth {
        OAuthError::new(
            OAuthErrorCode::TooManyAttempts,
            "too many failed attempts; retry later",
        )
        .into_response()
    } else {
        ApiError::RateLimited.into_response()
    };
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, v);
    }
    response
}

/// The middleware (on the credential-checking routes only).
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let Some(&endpoint) = GUARDED.iter().find(|guarded| **guarded == path) else {
        return next.run(request).await;
    };
    // The client's address (behind a trusted proxy, the one it forwarded
    // for), and the client id it names, as the transport layer read them.
    let credentials = request
        .extensions()
        .get::<Arc<crate::http::transport::RequestCredentials>>()
        .cloned()
        .unwrap_or_default();
    let Some(ip) = credentials.source else {
        return next.run(request).await;
    };
    let oauth = path.starts_with("/oauth/");
    let now = state.clock.now().unix_timestamp();
    let client = credentials.client_id().map(str::to_owned);
    let mut request = request;
    if let Some(seconds) = state.bruteforce.check(ip, client.as_deref(), now).await {
        state.metrics.bruteforce_refused();
        return too_many(oauth, seconds);
    }
    let attempt = Arc::new(Attempt::default());
    request.extensions_mut().insert(Arc::clone(&attempt));
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED || attempt.failed.load(Ordering::Acquire) {
        let reached = state
            .bruteforce
            .record_failure(ip, client.as_deref(), now)
            .await;
        if !reached.is_empty() {
            // Off the response path: finding the client's partition may
            // need a store read.
            tokio::spawn(record_exceeded(
                state.clone(),
                reached,
                ip,
                client,
                endpoint,
            ));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_after_its_limit_until_the_window_ends() {
        let g = Guard::default();
        let now = 6_000_030; // 30 s into a window
        for _ in 0..Limits::default().per_address {
            assert_eq!(g.refused(ip("10.0.0.1"), None, now), None);
            g.failed(ip("10.0.0.1"), None, now);
        }
        assert_eq!(g.refused(ip("10.0.0.1"), None, now), Some(30));
        assert_eq!(g.refused(ip("10.0.0.2"), None, now), None);
        // The next window starts clean.
        assert_eq!(g.refused(ip("10.0.0.1"), None, now + 30), None);
    }

    #[test]
    fn each_limit_is_reported_reached_once_per_window() {
        let g = Guard::default();
        let now = 6_000_000;
        let limits = Limits::default();
        let mut reached = Vec::new();
        for _ in 0..(limits.per_address + 5) {
            reached.extend(g.failed(ip("10.0.0.1"), Some("usr_a"), now));
        }
        assert_eq!(
            reached,
            [
                Exceeded::Client {
                    limit: limits.per_client
                },
                Exceeded::Address {
                    limit: limits.per_address
                },
            ]
        );
        // The next window reports again.
        let next = g.failed(ip("10.0.0.1"), None, now + WINDOW_SECONDS);
        assert!(next.is_empty());
        for _ in 1..limits.per_address {
            g.failed(ip("10.0.0.1"), None, now + WINDOW_SECONDS);
        }
        assert_eq!(
            g.failed(ip("10.0.0.1"), None, now + WINDOW_SECONDS + 1),
            Vec::<Exceeded>::new(),
            "reported once, at the limit"
        );
    }

    #[test]
    fn a_pair_is_refused_after_its_limit() {
        let g = Guard::default();
        let now = 6_000_000;
        for _ in 0..Limits::default().per_client {
            assert_eq!(g.refused(ip("10.0.0.1"), Some("usr_a"), now), None);
            g.failed(ip("10.0.0.1"), Some("usr_a"), now);
        }
        assert_eq!(g.refused(ip("10.0.0.1"), Some("usr_a"), now), Some(60));
        // Another client from the same address, and the same client from
        // another address, are not refused.
        assert_eq!(g.refused(ip("10.0.0.1"), Some("usr_b"), now), None);
        assert_eq!(g.refused(ip("10.0.0.9"), Some("usr_a"), now), None);
    }

    #[test]
    fn a_client_under_attack_stays_usable_from_a_clean_address() {
        let g = Guard::default();
        let now = 6_000_000;
        // Many addresses fail a few times each for one client.
        for i in 0..(Limits::default().per_client * 10 / 2) {
            let a = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            g.failed(a, Some("usr_a"), now);
            g.failed(a, Some("usr_a"), now);
        }
        let attacker = IpAddr::from([10, 1, 0, 7]);
        assert_eq!(g.refused(attacker, Some("usr_a"), now), Some(60));
        // The real machine, which never failed, is not refused.
        assert_eq!(g.refused(ip("192.0.2.10"), Some("usr_a"), now), None);
    }

    /// With Redis, a node reads the shared count the first time it sees a
    /// subject in a window, and on every attempt while the window has
    /// failures; a subject that never failed is read once per window.
    #[test]
    fn shared_counts_are_read_once_per_window_unless_there_are_failures() {
        let c = Counter::default();
        assert!(c.needs_read(100), "first sight");
        c.observe(100, 0);
        assert!(!c.needs_read(100), "read, and clean");
        c.bump(100);
        assert!(c.needs_read(100), "failures: read each time");
        c.observe(100, 7);
        assert_eq!(c.get(100), 7, "the shared count");
        c.observe(100, 3);
        assert_eq!(c.get(100), 7, "counts only grow within a window");
        assert!(c.needs_read(101), "a new window is read again");
        assert_eq!(c.get(101), 0);
        c.mark_read(101);
        assert!(
            !c.needs_read(101),
            "a failed read is not retried per request"
        );
    }

    #[test]
    fn redis_keys_are_per_deployment_and_window_and_bounded() {
        let long = "x".repeat(10_000);
        let key = Subject::Client(long).redis_key("ws1", 42);
        assert!(key.starts_with("latchkey:bf:ws1:42:client:"), "{key}");
        assert!(key.len() < 80, "{}", key.len());
        assert_ne!(
            Subject::Ip(ip("10.0.0.1")).redis_key("ws1", 42),
            Subject::Ip(ip("10.0.0.1")).redis_key("ws2", 42)
        );
    }
}
