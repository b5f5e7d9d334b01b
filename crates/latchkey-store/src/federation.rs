//! Federation's records: trusted issuers (workload identity federation).

use latchkey_core::clock::to_unix_ms;
use latchkey_types::audit::AuditEvent;
use latchkey_types::federation::{PutTrustedIssuer, TrustedIssuer};
use latchkey_types::ids::{Identifier as _, TrustedIssuerId};
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use latchkey_types::admin::User;

use crate::records::{list_of, mode_of, time_of, to_json};
use crate::tenants::replace_membership;
use crate::users::insert_user;
use crate::{
    Conditions, Invalidation, NewUser, PageRequest, PageResult, Store, StoreError, StoreResult,
    Written,
};

const TRUSTED_ISSUER_COLUMNS: &str = "mode, id, issuer, config, created_at, updated_at";

fn trusted_issuer_of(row: &AnyRow) -> StoreResult<TrustedIssuer> {
    let id: String = row.try_get("id")?;
    let config: String = row.try_get("config")?;
    let config: PutTrustedIssuer = serde_json::from_str(&config)?;
    Ok(TrustedIssuer {
        id: TrustedIssuerId::parse(&id)
            .map_err(|_| StoreError::Internal(format!("bad trusted issuer id {id:?}").into()))?,
        mode: mode_of(row)?,
        issuer: config.issuer,
        jwks_uri: config.jwks_uri,
        jwks: config.jwks,
        audiences: config.audiences,
        rules: config.rules,
        created_at: time_of(row, "created_at")?,
        updated_at: time_of(row, "updated_at")?,
    })
}

/// What [`Store::provision_workload_user`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// The user, when it was created now.
    pub created: Option<User>,
    /// The user's roles in the tenant, when they were widened now.
    pub roles: Option<Vec<String>>,
}

impl Provisioned {
    /// Whether anything was written.
    pub fn wrote(&self) -> bool {
        self.created.is_some() || self.roles.is_some()
    }
}

impl Store {
    /// Makes sure the user a workload rule provisions exists and holds at
    /// least `roles` in `tenant_id`, in one transaction: the user is created
    /// when absent, and its roles there widened when they lack one of
    /// `roles`. Two nodes provisioning the same user at once both succeed
    /// (the loser of the race finds the user). `record` makes the audit
    /// event of a write; nothing written, no event.
    pub async fn provision_workload_user(
        &self,
        mode: Mode,
        user: &NewUser,
        tenant_id: &str,
        roles: &[String],
        now: OffsetDateTime,
        record: impl FnOnce(&Provisioned) -> AuditEvent + Send,
    ) -> StoreResult<Written<Provisioned>> {
        let _timer = self.timed("provision_workload_user");
        let mut tx = self.begin_write().await?;
        let tenant = sqlx::query("SELECT id FROM tenants WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        if tenant.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        let exists = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let mut done = Provisioned::default();
        if !exists {
            done.created = Some(insert_user(&mut tx, mode, user, now).await?);
        }
        let held: Vec<String> = match sqlx::query(
            "SELECT roles FROM memberships WHERE mode = $1 AND tenant_id = $2 AND user_id = $3",
        )
        .bind(mode.as_str())
        .bind(tenant_id)
        .bind(&user.id)
        .fetch_optional(&mut *tx)
        .await?
        {
            Some(row) => list_of(&row, "roles")?,
            None => Vec::new(),
        };
        if roles.iter().any(|r| !held.contains(r)) {
            let mut wider = held;
            wider.extend(roles.iter().cloned());
            wider.sort_unstable();
            wider.dedup();
            replace_membership(&mut tx, mode, tenant_id, &user.id, &wider, now).await?;
            done.roles = Some(wider);
        }
        if !done.wrote() {
            return self.commit_write(tx, done, None, Vec::new()).await;
        }
        let event = record(&done);
        let changes = vec![Invalidation::user(mode, &user.id)];
        self.commit_write(tx, done, Some(event), changes).await
    }

    /// Creates or replaces a trusted issuer. Returns it and whether it was
    /// new. Another trusted issuer of the mode with the same `issuer` is a
    /// `Conflict`.
    pub async fn put_trusted_issuer(
        &self,
        mode: Mode,
        id: &str,
        config: &PutTrustedIssuer,
        now: OffsetDateTime,
        record: impl FnOnce(&(TrustedIssuer, bool)) -> AuditEvent + Send,
    ) -> StoreResult<Written<(TrustedIssuer, bool)>> {
        let _timer = self.timed("put_trusted_issuer");
        let mut tx = self.begin_write().await?;
        let existing =
            sqlx::query("SELECT created_at FROM trusted_issuers WHERE mode = $1 AND id = $2")
                .bind(mode.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let created_at = match &existing {
            Some(row) => row.try_get::<i64, _>("created_at")?,
            None => to_unix_ms(now),
        };
        let taken = sqlx::query(
            "SELECT id FROM trusted_issuers WHERE mode = $1 AND issuer = $2 AND id <> $3",
        )
        .bind(mode.as_str())
        .bind(&config.issuer)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(
                "another trusted issuer of this mode has this issuer".into(),
            ));
        }
        sqlx::query("DELETE FROM trusted_issuers WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO trusted_issuers ({TRUSTED_ISSUER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {TRUSTED_ISSUER_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(id)
        .bind(&config.issuer)
        .bind(to_json(config)?)
        .bind(created_at)
        .bind(to_unix_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let put = (trusted_issuer_of(&row)?, existing.is_none());
        let event = record(&put);
        self.commit_write(
            tx,
            put,
            Some(event),
            vec![Invalidation::TrustedIssuers { mode }],
        )
        .await
    }

    /// One trusted issuer.
    pub async fn get_trusted_issuer(&self, mode: Mode, id: &str) -> StoreResult<TrustedIssuer> {
        let _timer = self.timed("get_trusted_issuer");
        let row = sqlx::query(&format!(
            "SELECT {TRUSTED_ISSUER_COLUMNS} FROM trusted_issuers WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("trusted issuer"))?;
        trusted_issuer_of(&row)
    }

    /// A page of the mode's trusted issuers, by id.
    pub async fn list_trusted_issuers(
        &self,
        mode: Mode,
        page: &PageRequest,
    ) -> StoreResult<PageResult<TrustedIssuer>> {
        let _timer = self.timed("list_trusted_issuers");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.fetch_page(
            &self.pool,
            TRUSTED_ISSUER_COLUMNS,
            "trusted_issuers",
            "id",
            page,
            trusted_issuer_of,
            |t| t.id.as_str().to_owned(),
        )
        .await
    }

    /// Every trusted issuer of the mode (for the token endpoint's cache).
    pub async fn all_trusted_issuers(&self, mode: Mode) -> StoreResult<Vec<TrustedIssuer>> {
        let _timer = self.timed("all_trusted_issuers");
        let rows = sqlx::query(&format!(
            "SELECT {TRUSTED_ISSUER_COLUMNS} FROM trusted_issuers WHERE mode = $1 ORDER BY id"
        ))
        .bind(mode.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(trusted_issuer_of).collect()
    }

    /// Removes a trusted issuer: its tokens are refused from then on (users
    /// it provisioned stay, with their memberships).
    pub async fn delete_trusted_issuer(
        &self,
        mode: Mode,
        id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_trusted_issuer");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM trusted_issuers WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("trusted issuer"));
        }
        let event = record(&());
        self.commit_write(
            tx,
            (),
            Some(event),
            vec![Invalidation::TrustedIssuers { mode }],
        )
        .await
    }
}
