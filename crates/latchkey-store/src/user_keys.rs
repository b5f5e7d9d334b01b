//! Public keys registered on users, and used assertion ids (replay guard).

use latchkey_core::clock::to_unix_ms;
use latchkey_types::admin::UserKey;
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::{time_of, to_json};
use crate::{Invalidation, Store, StoreError, StoreResult, Written};

const COLUMNS: &str = "id, user_id, kid, alg, jwk, created_at";

pub(crate) fn user_key_of(row: &AnyRow) -> StoreResult<UserKey> {
    let jwk: String = row.try_get("jwk")?;
    Ok(UserKey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        jwk: serde_json::from_str(&jwk)?,
        created_at: time_of(row, "created_at")?,
    })
}

impl Store {
    /// Registers a public key on an existing user; a kid already registered
    /// on the user is a `Conflict`.
    pub async fn add_user_key(
        &self,
        mode: Mode,
        key: &UserKey,
        record: impl FnOnce(&UserKey) -> AuditEvent + Send,
    ) -> StoreResult<Written<UserKey>> {
        let _timer = self.timed("add_user_key");
        let mut tx = self.begin_write().await?;
        let user = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(&key.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        let taken =
            sqlx::query("SELECT id FROM user_keys WHERE mode = $1 AND user_id = $2 AND kid = $3")
                .bind(mode.as_str())
                .bind(&key.user_id)
                .bind(&key.kid)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a key with kid {:?} is already registered on this user",
                key.kid
            )));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO user_keys (mode, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING {COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(to_json(&key.jwk)?)
        .bind(to_unix_ms(key.created_at))
        .fetch_one(&mut *tx)
        .await?;
        let created = user_key_of(&row)?;
        let event = record(&created);
        let changes = vec![Invalidation::user(mode, &key.user_id)];
        self.commit_write(tx, created, Some(event), changes).await
    }

    /// The keys of a user (the user must exist).
    pub async fn list_user_keys(&self, mode: Mode, user_id: &str) -> StoreResult<Vec<UserKey>> {
        let _timer = self.timed("list_user_keys");
        let mut tx = self.pool.begin().await?;
        let user = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM user_keys WHERE mode = $1 AND user_id = $2 ORDER BY id"
        ))
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(user_key_of).collect()
    }

    /// Removes a key from a user.
    pub async fn delete_user_key(
        &self,
        mode: Mode,
        user_id: &str,
        id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_user_key");
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM user_keys WHERE mode = $1 AND user_id = $2 AND id = $3")
                .bind(mode.as_str())
                .bind(user_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("key"));
        }
        let event = record(&());
        let changes = vec![Invalidation::user(mode, user_id)];
        self.commit_write(tx, (), Some(event), changes).await
    }

    /// Records an assertion id (already namespaced by client) until
    /// `expires_at`. Returns `false` when it was seen before: a replay.
    /// Exact across nodes: the store's primary key decides.
    pub async fn use_assertion(
        &self,
        mode: Mode,
        id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let _timer = self.timed("use_assertion");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM used_assertions WHERE expires_at <= $1")
            .bind(to_unix_ms(now))
            .execute(&mut *tx)
            .await?;
        let seen = sqlx::query("SELECT id FROM used_assertions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO used_assertions (id, mode, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(mode.as_str())
            .bind(to_unix_ms(expires_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
