//! API keys, with their current and grace-period digests.

use latchkey_core::clock::to_unix_ms;
use latchkey_core::credential::CredentialDigest;
use latchkey_core::migration::{self, StoredCredential};
use latchkey_types::api_keys::{ApiKey, RateLimit};
use latchkey_types::audit::AuditEvent;
use latchkey_types::{JsonObject, Mode};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::records::{json_of, mode_of, opt_time_of, time_of, to_json};
use crate::{
    Conditions, Invalidation, PageRequest, PageResult, Store, StoreError, StoreResult, Written,
};

const KEY_COLUMNS: &str = "mode, id, user_id, tenant_id, name, roles, metadata, ratelimit_limit, \
     ratelimit_window_seconds, remaining, expires_at, revoked_at, last_used_at, created_at, legacy";

/// A new API key (its digest only), validated by the caller.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// `key_…`.
    pub id: String,
    /// The user it authenticates as.
    pub user_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Label.
    pub name: Option<String>,
    /// Narrowing roles.
    pub roles: Option<Vec<String>>,
    /// Metadata.
    pub metadata: JsonObject,
    /// Rate limit.
    pub ratelimit: Option<RateLimit>,
    /// Budget of uses.
    pub remaining: Option<i64>,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// SHA-256 of the value.
    pub digest: CredentialDigest,
}

/// An imported key's slow hash that may match a presented value.
#[derive(Debug, Clone)]
pub struct LegacyCandidate {
    /// The key.
    pub key_id: String,
    /// The hash.
    pub stored: StoredCredential,
    /// When it stops working (the key was rotated).
    pub expires_at: Option<OffsetDateTime>,
}

/// An API key found by one of its digests.
#[derive(Debug, Clone)]
pub struct ApiKeyMatch {
    /// The key.
    pub key: ApiKey,
    /// When this value stops working because the key was rotated
    /// (`None` for the current value).
    pub value_expires_at: Option<OffsetDateTime>,
}

fn api_key_of(row: &AnyRow) -> StoreResult<ApiKey> {
    let roles: Option<String> = row.try_get("roles")?;
    let limit: Option<i64> = row.try_get("ratelimit_limit")?;
    let window: Option<i64> = row.try_get("ratelimit_window_seconds")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        roles: roles.map(|r| serde_json::from_str(&r)).transpose()?,
        metadata: json_of(row, "metadata")?,
        ratelimit: match (limit, window) {
            (Some(limit), Some(window_seconds)) => Some(RateLimit {
                limit,
                window_seconds,
            }),
            _ => None,
        },
        remaining: row.try_get("remaining")?,
        expires_at: opt_time_of(row, "expires_at")?,
        revoked_at: opt_time_of(row, "revoked_at")?,
        last_used_at: opt_time_of(row, "last_used_at")?,
        mode: mode_of(row)?,
        created_at: time_of(row, "created_at")?,
        legacy: row.try_get::<i64, _>("legacy")? != 0,
    })
}

async fn fetch_key(tx: &mut Transaction<'_, Any>, mode: Mode, id: &str) -> StoreResult<ApiKey> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE mode = $1 AND id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("API key"))?;
    api_key_of(&row)
}

impl Store {
    /// Creates an API key for an existing user, scoped to an existing tenant.
    pub async fn create_api_key(
        &self,
        mode: Mode,
        key: &NewApiKey,
        now: OffsetDateTime,
        record: impl FnOnce(&ApiKey) -> AuditEvent + Send,
    ) -> StoreResult<Written<ApiKey>> {
        let _timer = self.timed("create_api_key");
        let mut tx = self.begin_write().await?;
        let user = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(&key.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        let tenant = sqlx::query("SELECT id FROM tenants WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(&key.tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        if tenant.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        let roles = key.roles.as_ref().map(to_json).transpose()?;
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, 0) \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(roles)
        .bind(to_json(&key.metadata)?)
        .bind(key.ratelimit.map(|r| r.limit))
        .bind(key.ratelimit.map(|r| r.window_seconds))
        .bind(key.remaining)
        .bind(key.expires_at.map(to_unix_ms))
        .bind(to_unix_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let created = api_key_of(&row)?;
        insert_digest(&mut tx, mode, &key.id, &key.digest).await?;
        // A check of this value before it existed may be remembered as a
        // miss.
        let changes = vec![Invalidation::api_key(mode, &key.id, &[key.digest])];
        let event = record(&created);
        self.commit_write(tx, created, Some(event), changes).await
    }

    /// One API key.
    pub async fn get_api_key(&self, mode: Mode, id: &str) -> StoreResult<ApiKey> {
        let _timer = self.timed("get_api_key");
        let mut tx = self.pool.begin().await?;
        let key = fetch_key(&mut tx, mode, id).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// API keys by id, optionally of one user and/or one tenant.
    pub async fn list_api_keys(
        &self,
        mode: Mode,
        user_id: Option<&str>,
        tenant_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<PageResult<ApiKey>> {
        let _timer = self.timed("list_api_keys");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        if let Some(u) = user_id {
            c.push("user_id = {}", u);
        }
        if let Some(t) = tenant_id {
            c.push("tenant_id = {}", t);
        }
        c.fetch_page(
            &self.pool,
            KEY_COLUMNS,
            "api_keys",
            "id",
            page,
            api_key_of,
            |k| k.id.clone(),
        )
        .await
    }

    /// Revokes a key (idempotent); every value of it stops working.
    pub async fn revoke_api_key(
        &self,
        mode: Mode,
        id: &str,
        now: OffsetDateTime,
        record: impl FnOnce(&ApiKey) -> AuditEvent + Send,
    ) -> StoreResult<Written<ApiKey>> {
        let _timer = self.timed("revoke_api_key");
        let mut tx = self.begin_write().await?;
        fetch_key(&mut tx, mode, id).await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE mode = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(mode.as_str())
        .bind(id)
        .bind(to_unix_ms(now))
        .execute(&mut *tx)
        .await?;
        let key = fetch_key(&mut tx, mode, id).await?;
        self.commit_key_change(tx, key, record).await
    }

    /// Gives a key a new value. Current values keep working until
    /// `previous_until` (now, when there is no grace period); values already
    /// in a grace period keep theirs. A revoked key cannot be rotated.
    pub async fn rotate_api_key(
        &self,
        mode: Mode,
        id: &str,
        digest: &CredentialDigest,
        previous_until: OffsetDateTime,
        record: impl FnOnce(&ApiKey) -> AuditEvent + Send,
    ) -> StoreResult<Written<ApiKey>> {
        let _timer = self.timed("rotate_api_key");
        let mut tx = self.begin_write().await?;
        let key = fetch_key(&mut tx, mode, id).await?;
        if key.revoked_at.is_some() {
            return Err(StoreError::Conflict(
                "a revoked API key cannot be rotated".into(),
            ));
        }
        // The current value, and an imported key's slow hash, end with the
        // grace period; the key is Latchkey's from now on.
        for table in ["api_key_digests", "api_key_legacy_hashes"] {
            sqlx::query(&format!(
                "UPDATE {table} SET expires_at = $3 \
                 WHERE mode = $1 AND key_id = $2 AND expires_at IS NULL"
            ))
            .bind(mode.as_str())
            .bind(id)
            .bind(to_unix_ms(previous_until))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE api_keys SET legacy = 0 WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let mut key = key;
        key.legacy = false;
        insert_digest(&mut tx, mode, id, digest).await?;
        self.commit_key_change(tx, key, record).await
    }

    /// Commits a change to an existing key (revoked, rotated): every value
    /// it has had is invalidated (the new one may be remembered as a miss,
    /// the old ones stop or expire).
    async fn commit_key_change(
        &self,
        mut tx: Transaction<'static, Any>,
        key: ApiKey,
        record: impl FnOnce(&ApiKey) -> AuditEvent + Send,
    ) -> StoreResult<Written<ApiKey>> {
        let all = digests(&mut tx, key.mode, &key.id).await?;
        let changes = vec![Invalidation::api_key(key.mode, &key.id, &all)];
        let event = record(&key);
        self.commit_write(tx, key, Some(event), changes).await
    }

    /// The key one of whose values has this digest.
    pub async fn find_api_key(
        &self,
        mode: Mode,
        digest: &CredentialDigest,
    ) -> StoreResult<Option<ApiKeyMatch>> {
        let _timer = self.timed("find_api_key");
        let columns = KEY_COLUMNS
            .split(", ")
            .map(|c| format!("k.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "SELECT {columns}, d.expires_at AS value_expires_at FROM api_key_digests d \
             JOIN api_keys k ON k.mode = d.mode AND k.id = d.key_id \
             WHERE d.digest = $1 AND d.mode = $2"
        ))
        .bind(digest.to_hex())
        .bind(mode.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ApiKeyMatch {
                key: api_key_of(&r)?,
                value_expires_at: opt_time_of(&r, "value_expires_at")?,
            })
        })
        .transpose()
    }

    /// Whether the mode has API keys imported as a digest that is not a
    /// plain SHA-256 (SHA-512, bcrypt) and not yet presented.
    pub async fn has_slow_legacy_keys(&self, mode: Mode, now: OffsetDateTime) -> StoreResult<bool> {
        let _timer = self.timed("has_slow_legacy_keys");
        let row = sqlx::query(
            "SELECT h.key_id FROM api_key_legacy_hashes h WHERE h.mode = $1 \
             AND (h.expires_at IS NULL OR h.expires_at > $2) AND NOT EXISTS \
             (SELECT 1 FROM api_key_digests d WHERE d.mode = h.mode AND d.key_id = h.key_id \
              AND d.expires_at IS NOT DISTINCT FROM h.expires_at) \
             LIMIT 1",
        )
        .bind(mode.as_str())
        .bind(to_unix_ms(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The imported slow hashes that could match `value` in `mode`, with
    /// when they stop working (a rotated key's): its SHA-512, and bcrypt
    /// hashes under one of its prefixes (longest first); at most `limit`.
    pub async fn legacy_key_candidates(
        &self,
        mode: Mode,
        value: &str,
        limit: usize,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<LegacyCandidate>> {
        let _timer = self.timed("legacy_key_candidates");
        let prefixes = migration::candidate_prefixes(value);
        let mut sql = format!(
            "SELECT key_id, algorithm, prefix, hash, expires_at FROM api_key_legacy_hashes \
             WHERE mode = $1 AND (expires_at IS NULL OR expires_at > {}) \
             AND ((algorithm = 'sha512' AND hash = $2)",
            to_unix_ms(now)
        );
        if !prefixes.is_empty() {
            sql.push_str(" OR (algorithm = 'bcrypt' AND prefix IN (");
            for i in 0..prefixes.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i + 3));
            }
            sql.push_str("))");
        }
        sql.push_str(&format!(
            ") ORDER BY length(prefix) DESC LIMIT {}",
            limit.max(1)
        ));
        let mut q = sqlx::query(&sql)
            .bind(mode.as_str())
            .bind(migration::sha512_hex(value));
        for p in &prefixes {
            q = q.bind(*p);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let algorithm: String = r.try_get("algorithm")?;
                let hash: String = r.try_get("hash")?;
                let stored = match algorithm.as_str() {
                    "sha512" => StoredCredential::Sha512(hash),
                    _ => StoredCredential::Bcrypt {
                        prefix: r.try_get("prefix")?,
                        hash,
                    },
                };
                Ok(LegacyCandidate {
                    key_id: r.try_get("key_id")?,
                    stored,
                    expires_at: opt_time_of(r, "expires_at")?,
                })
            })
            .collect()
    }

    /// Adds the SHA-256 digest of an imported key's value, once the value
    /// matched its slow hash: later checks find it like any key's. A value
    /// already known (a race with another node) changes nothing.
    pub async fn add_legacy_key_digest(
        &self,
        mode: Mode,
        candidate: &LegacyCandidate,
        digest: &CredentialDigest,
    ) -> StoreResult<Written<()>> {
        let key_id = candidate.key_id.as_str();
        let _timer = self.timed("add_legacy_key_digest");
        let mut tx = self.begin_write().await?;
        let known = sqlx::query("SELECT key_id FROM api_key_digests WHERE digest = $1")
            .bind(digest.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            sqlx::query(
                "INSERT INTO api_key_digests (digest, mode, key_id, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(digest.to_hex())
            .bind(mode.as_str())
            .bind(key_id)
            .bind(candidate.expires_at.map(to_unix_ms))
            .execute(&mut *tx)
            .await?;
        }
        let changes = vec![Invalidation::api_key(mode, key_id, &[*digest])];
        self.commit_write(tx, (), None, changes).await
    }

    /// Spends one use of a key with a budget, atomically (exact across
    /// nodes). Returns the uses left, or `None` when the budget was spent.
    pub async fn spend_api_key_use(&self, mode: Mode, id: &str) -> StoreResult<Option<i64>> {
        let _timer = self.timed("spend_api_key_use");
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE api_keys SET remaining = remaining - 1 \
             WHERE mode = $1 AND id = $2 AND remaining > 0 RETURNING remaining",
        )
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| Ok(r.try_get::<i64, _>("remaining")?))
            .transpose()
    }

    /// Records last-used times in one transaction (called in batches, off
    /// the request path).
    pub async fn touch_api_keys(&self, uses: &[(Mode, String, OffsetDateTime)]) -> StoreResult<()> {
        let _timer = self.timed("touch_api_keys");
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (mode, id, at) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $3 WHERE mode = $1 AND id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(mode.as_str())
            .bind(id)
            .bind(to_unix_ms(*at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

pub(crate) async fn insert_digest(
    tx: &mut Transaction<'_, Any>,
    mode: Mode,
    key_id: &str,
    digest: &CredentialDigest,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_key_digests (digest, mode, key_id, expires_at) VALUES ($1, $2, $3, NULL)",
    )
    .bind(digest.to_hex())
    .bind(mode.as_str())
    .bind(key_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The digests of every value a key has had (current, in a grace period,
/// or expired), read in the write's transaction, so the invalidation it
/// sends names exactly the cached entries to drop.
async fn digests(
    tx: &mut Transaction<'_, Any>,
    mode: Mode,
    id: &str,
) -> StoreResult<Vec<CredentialDigest>> {
    let rows = sqlx::query("SELECT digest FROM api_key_digests WHERE mode = $1 AND key_id = $2")
        .bind(mode.as_str())
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| {
            let hex: String = r.try_get("digest")?;
            CredentialDigest::from_hex(&hex)
                .ok_or_else(|| StoreError::Internal("a stored digest is not hex".into()))
        })
        .collect()
}
