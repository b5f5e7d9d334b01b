//! What the nodes of a cluster must agree on besides the store: per-key
//! rate-limit windows, the assertion ids (`jti`) already used, and the
//! failure counts of the brute-force limits (`bruteforce.rs`).
//!
//! - **Rate limits.** With `--redis-url`, a window is one Redis counter
//!   bumped by an atomic script, so a limit holds exactly across every node.
//!   Without it, each node counts its own uses (exact on one node; on N
//!   nodes behind a balancer a key may get up to N times its limit).
//! - **Assertion replay.** With `--redis-url`, a `jti` is claimed with one
//!   `SET NX` (exact across nodes, no database write). Without it, the store
//!   decides (its primary key), which costs one store write per
//!   `private_key_jwt` or JWT-bearer token.
//!
//! A Redis call that fails or takes longer than [`REDIS_TIMEOUT`] falls back
//! to the per-node limit or to the store, and is logged: an outage of Redis
//! degrades exactness, never availability or replay protection.

use std::collections::HashMap;
use std::time::Duration;

use latchkey_store::{Store, StoreResult};
use latchkey_types::Mode;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};
use time::OffsetDateTime;

/// Longest wait for Redis before falling back.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// Bumps a window's counter, giving it a lifetime on first use; returns the
/// count. One script, so the increment and the expiry are atomic.
const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// Bumps several windows' counters at once (each given a lifetime on its
/// first use); returns their counts, in order.
const WINDOWS_SCRIPT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  out[i] = n
end
return out
";

/// A connection to Redis, shared by the limiter, the replay guard and the
/// brute-force guard.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    window: Script,
    windows: Script,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis")
    }
}

impl Redis {
    /// Connects (reconnecting by itself later). Fails when Redis cannot be
    /// reached now, so a mistyped URL stops the server at start-up.
    pub async fn connect(url: &str) -> Result<Redis, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Redis {
            conn,
            window: Script::new(WINDOW_SCRIPT),
            windows: Script::new(WINDOWS_SCRIPT),
        })
    }

    /// Counts one use in a window; returns the count, `None` on failure.
    async fn bump(&self, key: &str, ttl_seconds: i64) -> Option<i64> {
        let mut conn = self.conn.clone();
        let mut invocation = self.window.key(key);
        invocation.arg(ttl_seconds);
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis rate-limit call failed; counting on this node");
                None
            }
            Err(_) => {
                tracing::warn!("Redis rate-limit call timed out; counting on this node");
                None
            }
        }
    }

    /// Counts one failure in each of `keys` (windows of `ttl_seconds`);
    /// returns their counts, `None` on failure.
    pub async fn bump_all(&self, keys: &[String], ttl_seconds: i64) -> Option<Vec<u32>> {
        let mut conn = self.conn.clone();
        let mut invocation = self.windows.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(ttl_seconds);
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(counts)) => Some(counts),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis failure count failed; counting on this node");
                None
            }
            Err(_) => {
                tracing::warn!("Redis failure count timed out; counting on this node");
                None
            }
        }
    }

    /// The counts of `keys` (0 for a key that does not exist), `None` on
    /// failure.
    pub async fn counts(&self, keys: &[String]) -> Option<Vec<u32>> {
        let mut conn = self.conn.clone();
        let mut mget = redis::cmd("MGET");
        mget.arg(keys);
        let call = mget.query_async::<Vec<Option<u32>>>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(counts)) => Some(counts.into_iter().map(Option::unwrap_or_default).collect()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis failure-count read failed; using this node's");
                None
            }
            Err(_) => {
                tracing::warn!("Redis failure-count read timed out; using this node's");
                None
            }
        }
    }

    /// Claims `key` until `until_ms` (Unix ms): `Some(true)` when it was
    /// free, `Some(false)` when it was taken, `None` on failure.
    async fn claim(&self, key: &str, until_ms: i64) -> Option<bool> {
        let mut conn = self.conn.clone();
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PXAT(until_ms.max(1) as u64));
        let call = conn.set_options::<_, _, Option<String>>(key, 1, options);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(set)) => Some(set.is_some()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis replay check failed; using the store");
                None
            }
            Err(_) => {
                tracing::warn!("Redis replay check timed out; using the store");
                None
            }
        }
    }
}

/// Fixed-window rate limits per key: in Redis when configured, else (or
/// when Redis fails) on this node.
#[derive(Debug, Default)]
pub struct RateLimiter {
    redis: Option<Redis>,
    local: Mutex<HashMap<(Mode, String), (i64, i64)>>,
}

impl RateLimiter {
    /// A limiter counting in `redis` when given.
    pub fn new(redis: Option<Redis>) -> Self {
        RateLimiter {
            redis,
            local: Mutex::default(),
        }
    }

    /// Counts one use; `false` when the key is over `limit` in the current
    /// window of `window_seconds`.
    pub async fn allow(
        &self,
        mode: Mode,
        key_id: &str,
        limit: i64,
        window_seconds: i64,
        now: OffsetDateTime,
    ) -> bool {
        let window_seconds = window_seconds.max(1);
        let window = now.unix_timestamp().div_euclid(window_seconds);
        if let Some(redis) = &self.redis {
            let key = format!("latchkey:rl:{mode}:{key_id}:{window}");
            if let Some(n) = redis.bump(&key, window_seconds + 1).await {
                return n <= limit;
            }
        }
        self.allow_here(mode, key_id, limit, window)
    }

    fn allow_here(&self, mode: Mode, key_id: &str, limit: i64, window: i64) -> bool {
        let mut map = self.local.lock();
        if map.len() > 1_000_000 {
            // Windows of idle keys: drop the ones not in their current window.
            map.retain(|_, (w, _)| *w == window);
        }
        let entry = map.entry((mode, key_id.to_owned())).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// Accepts each client assertion id once.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    redis: Option<Redis>,
}

impl ReplayGuard {
    /// A guard claiming ids in `redis` when given, else in the store.
    pub fn new(redis: Option<Redis>) -> Self {
        ReplayGuard { redis }
    }

    /// Whether this is the first use of assertion `id` (valid until
    /// `expires_at`); records the use.
    pub async fn first_use(
        &self,
        store: &Store,
        mode: Mode,
        id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        if let Some(redis) = &self.redis {
            let until_ms = (expires_at.unix_timestamp_nanos() / 1_000_000) as i64;
            if let Some(first) = redis
                .claim(&format!("latchkey:jti:{mode}:{id}"), until_ms)
                .await
            {
                return Ok(first);
            }
        }
        store.use_assertion(mode, id, expires_at, now).await
    }
}
