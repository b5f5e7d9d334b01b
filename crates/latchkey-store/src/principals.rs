//! The principal read: everything token issuance needs about one user, read
//! in one consistent snapshot so the server can cache it.

use latchkey_types::Mode;
use sqlx::Row;

use crate::records::{digest_of, list_of, opt_time_of, user_of, USER_COLUMNS};
use crate::{PrincipalRecord, SecretRecord, Store, StoreResult};

impl Store {
    /// The user with its secrets and memberships, or `None` when no such user
    /// exists in this mode.
    pub async fn load_principal(
        &self,
        mode: Mode,
        user_id: &str,
    ) -> StoreResult<Option<PrincipalRecord>> {
        let _timer = self.timed("load_principal");
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let user = user_of(&row)?;
        let secrets = sqlx::query(
            "SELECT id, digest, expires_at FROM client_secrets WHERE mode = $1 AND user_id = $2",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(SecretRecord {
                id: r.try_get("id")?,
                digest: digest_of(r, "digest")?,
                expires_at: opt_time_of(r, "expires_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        let memberships = sqlx::query(
            "SELECT tenant_id, roles FROM memberships WHERE mode = $1 AND user_id = $2",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("tenant_id")?, list_of(r, "roles")?)))
        .collect::<StoreResult<Vec<_>>>()?;
        let public_keys = sqlx::query(
            "SELECT id, user_id, kid, alg, jwk, created_at FROM user_keys \
             WHERE mode = $1 AND user_id = $2",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(crate::user_keys::user_key_of)
        .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Some(PrincipalRecord {
            user,
            secrets,
            memberships,
            public_keys,
        }))
    }
}
