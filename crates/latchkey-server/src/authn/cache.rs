//! In-memory caches that keep the hot paths (token issuance, API-key
//! verification, introspection) off the database once warm.
//!
//! Per mode: principals (user, secret digests, direct roles, public keys)
//! and API keys, each in a bounded concurrent cache with eviction
//! ([`quick_cache`], sized by configuration), plus the tenant tree and the
//! role catalog.
//!
//! - **Cold misses** do exactly one store read: concurrent lookups of the
//!   same missing entry wait for the first one's read instead of each going
//!   to the store.
//! - **Invalidation** is pushed: every admin write invalidates what it
//!   touched on this node, and other nodes hear of it through the store's
//!   notifications (see `invalidation.rs`). A generation counter closes the
//!   race between a slow load and a concurrent invalidation: a load only
//!   fills the cache if no invalidation happened while it was reading.
//! - **TTL** is a safety net for a notification that never arrived: an entry
//!   older than the TTL is still served at once, and one background re-read
//!   refreshes it (stale-while-revalidate), so a request never waits for the
//!   store on a warm entry. If the store is down the entry keeps being
//!   served (stale-if-error).
//!
//! No lock is held across an await.

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::credential::CredentialDigest;
use latchkey_core::rbac::{Catalog, DirectRoles, TenantTree};
use latchkey_store::{ApiKeyMatch, PrincipalRecord, SecretRecord, Store, StoreError, StoreResult};
use latchkey_types::admin::User;
use latchkey_types::api_keys::RateLimit;
use latchkey_types::Mode;
use latchkey_verify::jwks::KeySet;
use parking_lot::RwLock;
use quick_cache::sync::Cache as Bounded;
use time::OffsetDateTime;

/// Everything issuance needs about one user.
#[derive(Debug)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// Client secret digests and expiries.
    pub secrets: Vec<SecretRecord>,
    /// Direct roles by tenant.
    pub direct: DirectRoles,
    /// Registered public keys, parsed, for client assertions.
    pub keys: KeySet,
}

impl From<PrincipalRecord> for Principal {
    fn from(r: PrincipalRecord) -> Self {
        let direct = r
            .memberships
            .into_iter()
            .map(|(tenant, roles)| (tenant, roles.into_iter().collect::<BTreeSet<_>>()))
            .collect();
        let keys = KeySet::from_keys(r.public_keys.iter().map(|k| &k.jwk)).unwrap_or_else(|e| {
            tracing::warn!(user = %r.user.id, error = %e, "a registered key does not parse");
            KeySet::default()
        });
        Principal {
            user: r.user,
            secrets: r.secrets,
            direct,
            keys,
        }
    }
}

/// What the hot paths need of an API key, and nothing else: the name,
/// metadata and timestamps of the stored record stay in the store, so a
/// cached key costs a couple of hundred bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct CachedKey {
    /// `id`, `user_id` and `tenant_id`, in one allocation.
    ids: Box<str>,
    user_at: u16,
    tenant_at: u16,
    /// The key's mode.
    pub mode: Mode,
    /// Narrowing roles.
    pub roles: Option<Box<[Box<str>]>>,
    /// Per-key rate limit: uses per window (0: no limit; a limit is 1 or
    /// more).
    ratelimit_limit: i64,
    ratelimit_window: i64,
    /// Whether the key has a `remaining` budget (spent in the store).
    pub has_budget: bool,
    /// Whether the key was revoked.
    pub revoked: bool,
    /// The key's expiry, in Unix milliseconds (`i64::MAX`: none).
    expires_ms: i64,
    /// When this value stops working because the key was rotated, in Unix
    /// milliseconds (`i64::MAX` for the current value).
    value_expires_ms: i64,
}

/// Unix milliseconds of an optional instant; `i64::MAX` for none.
fn ms_or_never(at: Option<OffsetDateTime>) -> i64 {
    at.map_or(i64::MAX, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl CachedKey {
    /// The key id (`key_…`).
    pub fn id(&self) -> &str {
        &self.ids[..usize::from(self.user_at)]
    }

    /// The user the key authenticates as.
    pub fn user_id(&self) -> &str {
        &self.ids[usize::from(self.user_at)..usize::from(self.tenant_at)]
    }

    /// The key's tenant.
    pub fn tenant_id(&self) -> &str {
        &self.ids[usize::from(self.tenant_at)..]
    }

    /// The per-key rate limit, if any.
    pub fn ratelimit(&self) -> Option<RateLimit> {
        (self.ratelimit_limit > 0).then_some(RateLimit {
            limit: self.ratelimit_limit,
            window_seconds: self.ratelimit_window,
        })
    }

    /// Whether the key itself has expired at `now`.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_ms <= ms_or_never(Some(now))
    }

    /// Whether this value was rotated out and its grace period is over.
    pub fn value_expired(&self, now: OffsetDateTime) -> bool {
        self.value_expires_ms <= ms_or_never(Some(now))
    }

    /// The key's expiry.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        (self.expires_ms != i64::MAX)
            .then(|| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.expires_ms) * 1_000_000)
                    .ok()
            })
            .flatten()
    }
}

impl TryFrom<ApiKeyMatch> for CachedKey {
    type Error = StoreError;

    fn try_from(m: ApiKeyMatch) -> StoreResult<Self> {
        let k = m.key;
        let user_at = u16::try_from(k.id.len());
        let tenant_at = u16::try_from(k.id.len() + k.user_id.len());
        let (Ok(user_at), Ok(tenant_at), true) = (
            user_at,
            tenant_at,
            k.id.len() + k.user_id.len() + k.tenant_id.len() <= usize::from(u16::MAX),
        ) else {
            return Err(StoreError::Internal("API key ids too long".into()));
        };
        Ok(CachedKey {
            ids: format!("{}{}{}", k.id, k.user_id, k.tenant_id).into_boxed_str(),
            user_at,
            tenant_at,
            mode: k.mode,
            roles: k
                .roles
                .map(|r| r.into_iter().map(String::into_boxed_str).collect()),
            ratelimit_limit: k.ratelimit.map_or(0, |r| r.limit.max(1)),
            ratelimit_window: k.ratelimit.map_or(0, |r| r.window_seconds),
            has_budget: k.remaining.is_some(),
            revoked: k.revoked_at.is_some(),
            expires_ms: ms_or_never(k.expires_at),
            value_expires_ms: ms_or_never(m.value_expires_at),
        })
    }
}

/// The API-key cache's key: the first 128 bits of a value's SHA-256 digest.
/// Half the memory of the whole digest per entry, and finding a value whose
/// digest shares its first 128 bits with a stored key's is a 2^128 search,
/// far out of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DigestKey([u8; 16]);

impl From<&CredentialDigest> for DigestKey {
    fn from(d: &CredentialDigest) -> Self {
        let mut k = [0u8; 16];
        k.copy_from_slice(&d.0[..16]);
        DigestKey(k)
    }
}

/// Default bounds of the caches, per mode.
pub const DEFAULT_PRINCIPALS: usize = 100_000;
/// See [`DEFAULT_PRINCIPALS`].
pub const DEFAULT_API_KEYS: usize = 1_000_000;

/// How many entries each cache holds at most, per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Users (with their secrets, roles and public keys).
    pub principals: usize,
    /// API-key values (remembered unknown values count too).
    pub api_keys: usize,
}

impl Default for CacheSizes {
    fn default() -> Self {
        CacheSizes {
            principals: DEFAULT_PRINCIPALS,
            api_keys: DEFAULT_API_KEYS,
        }
    }
}

/// A cached value and when (milliseconds since the caches' epoch) it was
/// read from the store.
#[derive(Debug, Clone)]
struct Timed<V> {
    at: u64,
    value: V,
}

/// A whole-mode value (tree, catalog), when loaded.
type Slot<V> = RwLock<Option<Timed<Arc<V>>>>;

#[derive(Debug)]
struct ModeCache {
    /// `None` remembers that the user does not exist, so unknown client ids
    /// do not reach the store on every attempt.
    principals: Bounded<String, Timed<Option<Arc<Principal>>>>,
    /// API keys by the digest of one of their values; `None` remembers an
    /// unknown digest.
    api_keys: Bounded<DigestKey, Timed<Option<Arc<CachedKey>>>>,
    tree: Slot<TenantTree>,
    catalog: Slot<Catalog>,
    generation: AtomicU64,
    /// Held shared while a load fills the cache, exclusively while an
    /// invalidation bumps the generation and removes entries: a fill then
    /// either happens wholly before an invalidation or sees its generation.
    fill: RwLock<()>,
}

impl ModeCache {
    fn new(sizes: CacheSizes) -> Self {
        ModeCache {
            principals: Bounded::new(sizes.principals.max(1)),
            api_keys: Bounded::new(sizes.api_keys.max(1)),
            tree: RwLock::new(None),
            catalog: RwLock::new(None),
            generation: AtomicU64::new(0),
            fill: RwLock::new(()),
        }
    }

    /// Runs `f` as an invalidation: no fill interleaves with it, and fills
    /// whose load started before it are discarded.
    fn invalidate(&self, f: impl FnOnce()) {
        let _exclusive = self.fill.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        f();
    }

    /// Runs `f` (which fills the cache) only if no invalidation happened
    /// since `generation` was read.
    fn fill_if_current(&self, generation: u64, f: impl FnOnce()) -> bool {
        let _shared = self.fill.read();
        let current = self.generation.load(Ordering::Acquire) == generation;
        if current {
            f();
        }
        current
    }
}

/// The caches of both modes.
#[derive(Debug)]
pub struct Caches {
    test: ModeCache,
    live: ModeCache,
    ttl: Duration,
    epoch: Instant,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new(DEFAULT_TTL, CacheSizes::default())
    }
}

/// How long a cached entry is served before it is re-read in the
/// background. Invalidation is pushed; this only bounds how long a lost
/// notification can leave an entry stale.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

impl Caches {
    /// Empty caches of the given sizes whose entries are refreshed after
    /// `ttl`.
    pub fn new(ttl: Duration, sizes: CacheSizes) -> Self {
        Caches {
            test: ModeCache::new(sizes),
            live: ModeCache::new(sizes),
            ttl,
            epoch: Instant::now(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Lookups so far: (served from memory, went to the store).
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries held now: (principals, API keys), both modes together.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.test.principals.len() + self.live.principals.len(),
            self.test.api_keys.len() + self.live.api_keys.len(),
        )
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn mode(&self, mode: Mode) -> &ModeCache {
        match mode {
            Mode::Test => &self.test,
            Mode::Live => &self.live,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether an entry read at `at` is past the TTL.
    fn expired(&self, at: u64) -> bool {
        self.now().saturating_sub(at) >= self.ttl.as_millis() as u64
    }

    /// The entry `key` of `cache`: from memory when present (refreshed in
    /// the background once past the TTL), else loaded once, with concurrent
    /// lookups of the same key waiting for that one load.
    /// `load` is only called on a miss or a refresh, so a hit allocates
    /// nothing (the key is borrowed, e.g. a `&str` for a `String` key).
    async fn bounded<K, Q, V, Fut>(
        self: &Arc<Self>,
        mode: Mode,
        pick: fn(&ModeCache) -> &Bounded<K, Timed<V>>,
        key: &Q,
        load: impl FnOnce() -> Fut,
    ) -> StoreResult<V>
    where
        K: Eq + Hash + Clone + Send + Sync + 'static,
        Q: Hash + quick_cache::Equivalent<K> + ToOwned<Owned = K> + ?Sized,
        V: Clone + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<V>> + Send + 'static,
    {
        let c = self.mode(mode);
        let cache = pick(c);
        match cache.get_value_or_guard_async(key).await {
            Ok(found) => {
                if self.expired(found.at) {
                    self.count(false);
                    // Serve it now; re-read it once in the background. The
                    // entry is stamped first so concurrent lookups do not
                    // start more re-reads.
                    let generation = c.generation.load(Ordering::Acquire);
                    let restamped = Timed {
                        at: self.now(),
                        value: found.value.clone(),
                    };
                    if c.fill_if_current(generation, || cache.insert(key.to_owned(), restamped)) {
                        let caches = Arc::clone(self);
                        let key = key.to_owned();
                        let reload = load();
                        tokio::spawn(async move {
                            match reload.await {
                                Ok(value) => {
                                    let at = caches.now();
                                    let c = caches.mode(mode);
                                    c.fill_if_current(generation, || {
                                        pick(c).insert(key, Timed { at, value })
                                    });
                                }
                                Err(StoreError::Unavailable(e)) => {
                                    tracing::warn!(error = %e, "store unavailable; serving a cached entry");
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "could not refresh a cached entry");
                                    let c = caches.mode(mode);
                                    c.invalidate(|| {
                                        pick(c).remove(&key);
                                    });
                                }
                            }
                        });
                    }
                } else {
                    self.count(true);
                }
                Ok(found.value)
            }
            Err(guard) => {
                self.count(false);
                let generation = c.generation.load(Ordering::Acquire);
                // On an error the guard is dropped unfilled, and a waiting
                // lookup takes its turn to load.
                let value = load().await?;
                let at = self.now();
                let filled = value.clone();
                c.fill_if_current(generation, || {
                    let _ = guard.insert(Timed { at, value: filled });
                });
                Ok(value)
            }
        }
    }

    /// A whole-mode value (tree, catalog): from memory, refreshed in the
    /// background once past the TTL, loaded when missing.
    async fn slot<V, Fut>(
        self: &Arc<Self>,
        mode: Mode,
        pick: fn(&ModeCache) -> &Slot<V>,
        load: impl FnOnce() -> Fut,
    ) -> StoreResult<Arc<V>>
    where
        V: Send + Sync + 'static,
        Fut: Future<Output = StoreResult<V>> + Send + 'static,
    {
        let c = self.mode(mode);
        let found = pick(c)
            .read()
            .as_ref()
            .map(|t| (t.at, Arc::clone(&t.value)));
        let generation = c.generation.load(Ordering::Acquire);
        match found {
            Some((at, value)) if !self.expired(at) => {
                self.count(true);
                Ok(value)
            }
            Some((_, value)) => {
                self.count(false);
                let restamped = Timed {
                    at: self.now(),
                    value: Arc::clone(&value),
                };
                if c.fill_if_current(generation, || *pick(c).write() = Some(restamped)) {
                    let caches = Arc::clone(self);
                    let reload = load();
                    tokio::spawn(async move {
                        match reload.await {
                            Ok(v) => {
                                let at = caches.now();
                                let c = caches.mode(mode);
                                c.fill_if_current(generation, || {
                                    *pick(c).write() = Some(Timed {
                                        at,
                                        value: Arc::new(v),
                                    })
                                });
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "could not refresh a cached entry; serving it")
                            }
                        }
                    });
                }
                Ok(value)
            }
            None => {
                self.count(false);
                let value = Arc::new(load().await?);
                let at = self.now();
                c.fill_if_current(generation, || {
                    *pick(c).write() = Some(Timed {
                        at,
                        value: Arc::clone(&value),
                    })
                });
                Ok(value)
            }
        }
    }

    /// The principal `user_id`, from memory or (once) from the store.
    pub async fn principal(
        self: &Arc<Self>,
        store: &Store,
        mode: Mode,
        user_id: &str,
    ) -> StoreResult<Option<Arc<Principal>>> {
        self.bounded(
            mode,
            |c| &c.principals,
            user_id,
            || {
                let store = store.clone();
                let id = user_id.to_owned();
                async move {
                    Ok(store
                        .load_principal(mode, &id)
                        .await?
                        .map(|r| Arc::new(Principal::from(r))))
                }
            },
        )
        .await
    }

    /// The API key with a value of this digest, from memory or (once) from
    /// the store.
    pub async fn api_key(
        self: &Arc<Self>,
        store: &Store,
        mode: Mode,
        digest: &CredentialDigest,
    ) -> StoreResult<Option<Arc<CachedKey>>> {
        self.bounded(
            mode,
            |c| &c.api_keys,
            &DigestKey::from(digest),
            || {
                let store = store.clone();
                let d = *digest;
                async move {
                    store
                        .find_api_key(mode, &d)
                        .await?
                        .map(|m| CachedKey::try_from(m).map(Arc::new))
                        .transpose()
                }
            },
        )
        .await
    }

    /// The tenant tree of a mode.
    pub async fn tree(self: &Arc<Self>, store: &Store, mode: Mode) -> StoreResult<Arc<TenantTree>> {
        self.slot(
            mode,
            |c| &c.tree,
            || {
                let store = store.clone();
                async move { Ok(TenantTree::new(store.tenant_tree(mode).await?)) }
            },
        )
        .await
    }

    /// The role catalog of a mode.
    pub async fn catalog(self: &Arc<Self>, store: &Store, mode: Mode) -> StoreResult<Arc<Catalog>> {
        self.slot(
            mode,
            |c| &c.catalog,
            || {
                let store = store.clone();
                async move { Ok(Catalog::new(store.role_catalog(mode).await?)) }
            },
        )
        .await
    }

    /// Forgets the API-key values with these digests, and remembered misses
    /// for them (a value just created).
    pub fn invalidate_api_key_values(&self, mode: Mode, digests: &[CredentialDigest]) {
        let c = self.mode(mode);
        c.invalidate(|| {
            for d in digests {
                c.api_keys.remove(&DigestKey::from(d));
            }
        });
    }

    /// Forgets every cached value of an API key by scanning the cache (when
    /// its digests are not known).
    pub fn invalidate_api_key(&self, mode: Mode, key_id: &str) {
        let c = self.mode(mode);
        c.invalidate(|| {
            c.api_keys
                .retain(|_, entry| entry.value.as_ref().is_none_or(|k| k.id() != key_id));
        });
    }

    /// Forgets every API key of a user (after the user is deleted).
    pub fn invalidate_user_api_keys(&self, mode: Mode, user_id: &str) {
        let c = self.mode(mode);
        c.invalidate(|| {
            c.api_keys
                .retain(|_, entry| entry.value.as_ref().is_none_or(|k| k.user_id() != user_id));
        });
    }

    /// Forgets one user (after a change to it, its secrets or its roles).
    pub fn invalidate_user(&self, mode: Mode, user_id: &str) {
        let c = self.mode(mode);
        c.invalidate(|| {
            c.principals.remove(user_id);
        });
    }

    /// Forgets the tenant tree (after a tenant is created, moved, changed or
    /// deleted).
    pub fn invalidate_tree(&self, mode: Mode) {
        let c = self.mode(mode);
        c.invalidate(|| *c.tree.write() = None);
    }

    /// Forgets the role catalog (after a role is put or deleted).
    pub fn invalidate_catalog(&self, mode: Mode) {
        let c = self.mode(mode);
        c.invalidate(|| *c.catalog.write() = None);
    }

    /// Forgets everything (after missed notifications).
    pub fn clear(&self) {
        for mode in Mode::ALL {
            let c = self.mode(mode);
            c.invalidate(|| {
                c.principals.clear();
                c.api_keys.clear();
                *c.tree.write() = None;
                *c.catalog.write() = None;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use latchkey_types::api_keys::ApiKey;
    use time::macros::datetime;

    use super::*;

    fn stored(ratelimit: Option<RateLimit>, expires_at: Option<OffsetDateTime>) -> ApiKeyMatch {
        ApiKeyMatch {
            key: ApiKey {
                id: "key_01hzy".into(),
                user_id: "usr_é42".into(),
                tenant_id: "acme-eu".into(),
                name: Some("a long name that the cache does not keep".into()),
                roles: Some(vec!["reader".into()]),
                metadata: Default::default(),
                ratelimit,
                remaining: Some(3),
                expires_at,
                revoked_at: None,
                last_used_at: None,
                mode: Mode::Live,
                created_at: datetime!(2026-01-01 0:00 UTC),
                legacy: false,
            },
            value_expires_at: Some(datetime!(2026-06-01 12:00:00.250 UTC)),
        }
    }

    #[test]
    fn a_cached_key_keeps_what_checks_need() {
        let limit = RateLimit {
            limit: 7,
            window_seconds: 60,
        };
        let exp = datetime!(2026-03-01 0:00:00.5 UTC);
        let k = CachedKey::try_from(stored(Some(limit), Some(exp))).unwrap();
        assert_eq!(
            (k.id(), k.user_id(), k.tenant_id()),
            ("key_01hzy", "usr_é42", "acme-eu")
        );
        assert_eq!(k.mode, Mode::Live);
        assert_eq!(k.ratelimit(), Some(limit));
        assert!(k.has_budget && !k.revoked);
        assert_eq!(k.expires_at(), Some(exp));
        assert!(!k.expired(datetime!(2026-03-01 0:00:00.499 UTC)));
        assert!(k.expired(exp));
        assert!(!k.value_expired(datetime!(2026-06-01 12:00:00.249 UTC)));
        assert!(k.value_expired(datetime!(2026-06-01 12:00:00.250 UTC)));
        assert_eq!(k.roles.as_deref().map(<[Box<str>]>::len), Some(1));

        let open = CachedKey::try_from(stored(None, None)).unwrap();
        assert_eq!(open.ratelimit(), None);
        assert_eq!(open.expires_at(), None);
        assert!(!open.expired(datetime!(9999-01-01 0:00 UTC)));
        // Small enough that a million cached keys stay within budget.
        assert!(std::mem::size_of::<CachedKey>() <= 72);
    }
}
