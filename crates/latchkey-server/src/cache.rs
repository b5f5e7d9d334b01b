//! In-memory caches that keep token issuance off the database once warm.
//!
//! Per mode: principals (user, secret digests, direct roles), the tenant tree
//! and the role catalog. Every admin write invalidates what it touched. A
//! generation counter closes the race between a slow load and a concurrent
//! invalidation: a load only fills the cache if no invalidation happened
//! while it was reading the store. No lock is held across an await.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::credential::CredentialDigest;
use latchkey_core::rbac::{Catalog, DirectRoles, TenantTree};
use latchkey_store::{ApiKeyMatch, PrincipalRecord, SecretRecord, Store, StoreError, StoreResult};
use latchkey_types::admin::User;
use latchkey_types::Mode;
use latchkey_verify::keys::KeySet;
use parking_lot::RwLock;

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

/// Entries above this many principals per mode clear the map; a bounded,
/// configurable cache with eviction comes with the performance work.
const MAX_PRINCIPALS: usize = 100_000;
const MAX_API_KEYS: usize = 1_000_000;

#[derive(Debug, Default)]
struct ModeCache {
    /// `None` remembers that the user does not exist, so unknown client ids
    /// do not reach the store on every attempt.
    principals: RwLock<HashMap<String, Timed<Option<Arc<Principal>>>>>,
    tree: RwLock<Option<Timed<Arc<TenantTree>>>>,
    catalog: RwLock<Option<Timed<Arc<Catalog>>>>,
    /// API keys by the digest of one of their values; `None` remembers an
    /// unknown digest.
    api_keys: RwLock<HashMap<CredentialDigest, Timed<Option<Arc<ApiKeyMatch>>>>>,
    generation: AtomicU64,
}

/// A cached value and when it was read from the store.
#[derive(Debug, Clone)]
struct Timed<V> {
    at: Instant,
    value: V,
}

impl<V> Timed<V> {
    fn now(value: V) -> Self {
        Timed {
            at: Instant::now(),
            value,
        }
    }
}

/// What the cache holds for a key.
enum Lookup<V> {
    /// Read within the TTL: serve it.
    Fresh(V),
    /// Older: re-read, but serve it if the store is unavailable.
    Stale(V),
    /// Not cached.
    Missing,
}

fn lookup<V: Clone>(entry: Option<&Timed<V>>, ttl: Duration) -> Lookup<V> {
    match entry {
        Some(t) if t.at.elapsed() < ttl => Lookup::Fresh(t.value.clone()),
        Some(t) => Lookup::Stale(t.value.clone()),
        None => Lookup::Missing,
    }
}

/// Loads a value; when the store is unavailable and a stale value exists,
/// serves the stale one (the hot paths keep working through a store outage).
/// Returns the value and whether it was freshly loaded.
async fn load_or_stale<V>(
    stale: Option<V>,
    load: impl std::future::Future<Output = StoreResult<V>>,
) -> StoreResult<(V, bool)> {
    match load.await {
        Ok(v) => Ok((v, true)),
        Err(StoreError::Unavailable(e)) => match stale {
            Some(v) => {
                tracing::warn!(error = %e, "store unavailable; serving a cached entry");
                Ok((v, false))
            }
            None => Err(StoreError::Unavailable(e)),
        },
        Err(e) => Err(e),
    }
}

/// The caches of both modes. Entries are re-read from the store after `ttl`,
/// which bounds how long a write made on another node goes unseen here.
#[derive(Debug)]
pub struct Caches {
    test: ModeCache,
    live: ModeCache,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new(DEFAULT_TTL)
    }
}

/// How long a cached entry is served without re-reading the store.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

impl Caches {
    /// Empty caches whose entries are re-read after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Caches {
            test: ModeCache::default(),
            live: ModeCache::default(),
            ttl,
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

    fn counted<V>(&self, found: Lookup<V>) -> Lookup<V> {
        let counter = match found {
            Lookup::Fresh(_) => &self.hits,
            _ => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn mode(&self, mode: Mode) -> &ModeCache {
        match mode {
            Mode::Test => &self.test,
            Mode::Live => &self.live,
        }
    }

    /// The principal `user_id`, from memory or (once) from the store.
    pub async fn principal(
        &self,
        store: &Store,
        mode: Mode,
        user_id: &str,
    ) -> StoreResult<Option<Arc<Principal>>> {
        let c = self.mode(mode);
        let stale = match self.counted(lookup(c.principals.read().get(user_id), self.ttl)) {
            Lookup::Fresh(v) => return Ok(v),
            Lookup::Stale(v) => Some(v),
            Lookup::Missing => None,
        };
        let generation = c.generation.load(Ordering::Acquire);
        let (loaded, fresh) = load_or_stale(stale, async {
            Ok(store
                .load_principal(mode, user_id)
                .await?
                .map(|r| Arc::new(Principal::from(r))))
        })
        .await?;
        let mut map = c.principals.write();
        if fresh && c.generation.load(Ordering::Acquire) == generation {
            if map.len() >= MAX_PRINCIPALS {
                map.clear();
            }
            map.insert(user_id.to_owned(), Timed::now(loaded.clone()));
        }
        Ok(loaded)
    }

    /// The tenant tree of a mode.
    pub async fn tree(&self, store: &Store, mode: Mode) -> StoreResult<Arc<TenantTree>> {
        let c = self.mode(mode);
        let stale = match self.counted(lookup(c.tree.read().as_ref(), self.ttl)) {
            Lookup::Fresh(v) => return Ok(v),
            Lookup::Stale(v) => Some(v),
            Lookup::Missing => None,
        };
        let generation = c.generation.load(Ordering::Acquire);
        let (tree, fresh) = load_or_stale(stale, async {
            Ok(Arc::new(TenantTree::new(store.tenant_tree(mode).await?)))
        })
        .await?;
        let mut slot = c.tree.write();
        if fresh && c.generation.load(Ordering::Acquire) == generation {
            *slot = Some(Timed::now(tree.clone()));
        }
        Ok(tree)
    }

    /// The role catalog of a mode.
    pub async fn catalog(&self, store: &Store, mode: Mode) -> StoreResult<Arc<Catalog>> {
        let c = self.mode(mode);
        let stale = match self.counted(lookup(c.catalog.read().as_ref(), self.ttl)) {
            Lookup::Fresh(v) => return Ok(v),
            Lookup::Stale(v) => Some(v),
            Lookup::Missing => None,
        };
        let generation = c.generation.load(Ordering::Acquire);
        let (catalog, fresh) = load_or_stale(stale, async {
            Ok(Arc::new(Catalog::new(store.role_catalog(mode).await?)))
        })
        .await?;
        let mut slot = c.catalog.write();
        if fresh && c.generation.load(Ordering::Acquire) == generation {
            *slot = Some(Timed::now(catalog.clone()));
        }
        Ok(catalog)
    }

    /// The API key with a value of this digest, from memory or (once) from
    /// the store.
    pub async fn api_key(
        &self,
        store: &Store,
        mode: Mode,
        digest: &CredentialDigest,
    ) -> StoreResult<Option<Arc<ApiKeyMatch>>> {
        let c = self.mode(mode);
        let stale = match self.counted(lookup(c.api_keys.read().get(digest), self.ttl)) {
            Lookup::Fresh(v) => return Ok(v),
            Lookup::Stale(v) => Some(v),
            Lookup::Missing => None,
        };
        let generation = c.generation.load(Ordering::Acquire);
        let (loaded, fresh) = load_or_stale(stale, async {
            Ok(store.find_api_key(mode, digest).await?.map(Arc::new))
        })
        .await?;
        let mut map = c.api_keys.write();
        if fresh && c.generation.load(Ordering::Acquire) == generation {
            if map.len() >= MAX_API_KEYS {
                map.clear();
            }
            map.insert(*digest, Timed::now(loaded.clone()));
        }
        Ok(loaded)
    }

    /// Forgets an API key (after it is revoked or rotated), and any
    /// remembered miss for `new_digest` (a value just created).
    pub fn invalidate_api_key(
        &self,
        mode: Mode,
        key_id: &str,
        new_digest: Option<&CredentialDigest>,
    ) {
        let c = self.mode(mode);
        let mut map = c.api_keys.write();
        c.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, entry| entry.value.as_ref().is_none_or(|m| m.key.id != key_id));
        if let Some(d) = new_digest {
            map.remove(d);
        }
    }

    /// Forgets every API key of a user (after the user is deleted).
    pub fn invalidate_user_api_keys(&self, mode: Mode, user_id: &str) {
        let c = self.mode(mode);
        let mut map = c.api_keys.write();
        c.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, entry| {
            entry
                .value
                .as_ref()
                .is_none_or(|m| m.key.user_id != user_id)
        });
    }

    /// Forgets one user (after a change to it, its secrets or its roles).
    pub fn invalidate_user(&self, mode: Mode, user_id: &str) {
        let c = self.mode(mode);
        let mut map = c.principals.write();
        c.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(user_id);
    }

    /// Forgets the tenant tree (after a tenant is created, moved, changed or
    /// deleted).
    pub fn invalidate_tree(&self, mode: Mode) {
        let c = self.mode(mode);
        let mut slot = c.tree.write();
        c.generation.fetch_add(1, Ordering::AcqRel);
        *slot = None;
    }

    /// Forgets the role catalog (after a role is put or deleted).
    pub fn invalidate_catalog(&self, mode: Mode) {
        let c = self.mode(mode);
        let mut slot = c.catalog.write();
        c.generation.fetch_add(1, Ordering::AcqRel);
        *slot = None;
    }
}
