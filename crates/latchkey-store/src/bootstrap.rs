//! The workspace, its first-start bootstrap, signing keys and admin keys.

use latchkey_core::clock::to_unix_ms;
use latchkey_core::credential::CredentialDigest;
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::{digest_of, mode_of, time_of};
use crate::{
    AdminKeyRecord, Invalidation, SigningKeyRecord, Store, StoreError, StoreResult,
    WorkspaceRecord, Written,
};

impl Store {
    /// The workspace, if the store has been bootstrapped.
    pub async fn workspace(&self) -> StoreResult<Option<WorkspaceRecord>> {
        let _timer = self.timed("workspace");
        let row = sqlx::query("SELECT id, name, created_at FROM workspace")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(WorkspaceRecord {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: time_of(&r, "created_at")?,
            })
        })
        .transpose()
    }

    /// Creates the workspace, its root tenant in each mode, the first signing
    /// keys and admin keys, with the audit `events` that record them, all in
    /// one transaction. Fails with `Conflict` when the store already has a
    /// workspace (another node bootstrapped first).
    pub async fn bootstrap(
        &self,
        workspace: &WorkspaceRecord,
        signing_keys: &[SigningKeyRecord],
        admin_keys: &[AdminKeyRecord],
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let _timer = self.timed("bootstrap");
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT id FROM workspace")
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_some() {
            return Err(StoreError::Conflict(
                "the store already has a workspace".into(),
            ));
        }
        let created = to_unix_ms(workspace.created_at);
        sqlx::query("INSERT INTO workspace (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&workspace.id)
            .bind(&workspace.name)
            .bind(created)
            .execute(&mut *tx)
            .await?;
        for mode in Mode::ALL {
            sqlx::query(
                "INSERT INTO tenants (mode, id, name, parent_id, cascades, metadata, created_at) \
                 VALUES ($1, $2, $3, NULL, 1, '{}', $4)",
            )
            .bind(mode.as_str())
            .bind(&workspace.id)
            .bind(&workspace.name)
            .bind(created)
            .execute(&mut *tx)
            .await?;
        }
        for key in signing_keys {
            insert_signing_key(&mut tx, key).await?;
        }
        for key in admin_keys {
            sqlx::query(
                "INSERT INTO admin_keys (id, mode, digest, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&key.id)
            .bind(key.mode.as_str())
            .bind(key.digest.to_hex())
            .bind(to_unix_ms(key.created_at))
            .execute(&mut *tx)
            .await?;
        }
        crate::audit::append(&mut tx, self.backend, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every signing key of every mode, oldest first.
    pub async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let _timer = self.timed("signing_keys");
        let rows = sqlx::query(
            "SELECT kid, mode, alg, private_pkcs8, created_at, \
             COALESCE(not_before, created_at) AS not_before FROM signing_keys \
             ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRecord {
                    kid: r.try_get("kid")?,
                    mode: mode_of(r)?,
                    alg: r.try_get("alg")?,
                    private_pkcs8: r.try_get("private_pkcs8")?,
                    created_at: time_of(r, "created_at")?,
                    not_before: time_of(r, "not_before")?,
                })
            })
            .collect()
    }

    /// Adds a signing key, unless `unless_newer_than` is given and the mode
    /// already has a key created after it (so nodes rotating on the same
    /// schedule add one key, not one each). Returns whether it was added;
    /// only an added key is recorded and announced.
    pub async fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        unless_newer_than: Option<OffsetDateTime>,
        record: impl FnOnce(&bool) -> AuditEvent + Send,
    ) -> StoreResult<Written<bool>> {
        let _timer = self.timed("add_signing_key");
        let mut tx = self.begin_write().await?;
        if let Some(since) = unless_newer_than {
            let newer =
                sqlx::query("SELECT kid FROM signing_keys WHERE mode = $1 AND created_at > $2")
                    .bind(key.mode.as_str())
                    .bind(to_unix_ms(since))
                    .fetch_optional(&mut *tx)
                    .await?;
            if newer.is_some() {
                return self.commit_write(tx, false, None, Vec::new()).await;
            }
        }
        insert_signing_key(&mut tx, key).await?;
        let event = record(&true);
        self.commit_write(tx, true, Some(event), vec![Invalidation::SigningKeys])
            .await
    }

    /// Every admin key.
    pub async fn admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>> {
        let _timer = self.timed("admin_keys");
        let rows = sqlx::query("SELECT id, mode, digest, created_at FROM admin_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(admin_key_of).collect()
    }

    /// The admin key with this digest.
    pub async fn find_admin_key(
        &self,
        digest: &CredentialDigest,
    ) -> StoreResult<Option<AdminKeyRecord>> {
        let _timer = self.timed("find_admin_key");
        let row =
            sqlx::query("SELECT id, mode, digest, created_at FROM admin_keys WHERE digest = $1")
                .bind(digest.to_hex())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(admin_key_of).transpose()
    }
}

async fn insert_signing_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, mode, alg, private_pkcs8, created_at, not_before) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.kid)
    .bind(key.mode.as_str())
    .bind(&key.alg)
    .bind(&key.private_pkcs8)
    .bind(to_unix_ms(key.created_at))
    .bind(to_unix_ms(key.not_before))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn admin_key_of(r: &sqlx::any::AnyRow) -> StoreResult<AdminKeyRecord> {
    Ok(AdminKeyRecord {
        id: r.try_get("id")?,
        mode: mode_of(r)?,
        digest: digest_of(r, "digest")?,
        created_at: time_of(r, "created_at")?,
    })
}
