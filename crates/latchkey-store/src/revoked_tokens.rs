//! The deny-list of revoked access tokens: each `jti` until the token would
//! have expired.

use latchkey_core::clock::to_unix_ms;
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::time_of;
use crate::{Invalidation, Store, StoreResult, Written};

impl Store {
    /// Adds an access token to the deny-list until it would have expired.
    pub async fn revoke_token(
        &self,
        mode: Mode,
        jti: &str,
        expires_at: OffsetDateTime,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("revoke_token");
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT jti FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            sqlx::query("INSERT INTO revoked_tokens (jti, mode, expires_at) VALUES ($1, $2, $3)")
                .bind(jti)
                .bind(mode.as_str())
                .bind(to_unix_ms(expires_at))
                .execute(&mut *tx)
                .await?;
        }
        let changes = vec![Invalidation::TokenRevoked {
            jti: jti.to_owned(),
            until: expires_at.unix_timestamp(),
        }];
        let event = record(&());
        self.commit_write(tx, (), Some(event), changes).await
    }

    /// The deny-list entries that have not expired: `(jti, expires_at)`.
    pub async fn revoked_tokens(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(String, OffsetDateTime)>> {
        let _timer = self.timed("revoked_tokens");
        let rows = sqlx::query("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
            .bind(to_unix_ms(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("jti")?, time_of(r, "expires_at")?)))
            .collect()
    }

    /// Removes deny-list entries whose tokens have expired anyway.
    pub async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let _timer = self.timed("purge_revoked_tokens");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1")
            .bind(to_unix_ms(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
