//! SSO's records: identity providers (their client secret sealed), which
//! user each provider subject is, and the flows of browsers sent to a
//! provider, each used once.

use latchkey_core::clock::to_unix_ms;
use latchkey_types::audit::AuditEvent;
use latchkey_types::federation::PutIdentityProvider;
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::{mode_of, time_of, to_json};
use crate::tenants::replace_membership;
use crate::users::insert_user;
use crate::{
    Conditions, Invalidation, NewUser, PageRequest, PageResult, Store, StoreError, StoreResult,
    Written,
};

/// An identity provider as stored.
#[derive(Debug, Clone)]
pub struct IdentityProviderRecord {
    /// Its id.
    pub id: String,
    /// Its mode.
    pub mode: Mode,
    /// Its configuration, without the client secret.
    pub config: PutIdentityProvider,
    /// The client secret, sealed under the master key.
    pub secret_sealed: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last replaced.
    pub updated_at: OffsetDateTime,
}

/// A browser at a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoFlow {
    /// SHA-256 (hex) of the `state` sent.
    pub state_digest: String,
    /// The login it is for.
    pub login_id: String,
    /// The provider.
    pub provider_id: String,
    /// The `nonce` sent.
    pub nonce: String,
    /// The PKCE verifier, sealed.
    pub verifier_sealed: String,
    /// The application's own `state`, given back with the login.
    pub client_state: Option<String>,
    /// When the browser must be back.
    pub expires_at: OffsetDateTime,
}

/// A provider's subject and the user it is.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The provider.
    pub provider_id: &'a str,
    /// Its subject.
    pub subject: &'a str,
    /// The user.
    pub user_id: &'a str,
}

/// What a provider's replacement does with its secret and links.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderSecret<'a> {
    /// A new sealed client secret; `None` keeps the stored one (unless
    /// `new_source`).
    pub sealed: Option<&'a str>,
    /// The configuration names another provider than before: the stored
    /// secret and the old provider's links to users are dropped.
    pub new_source: bool,
}

/// A user created for an identity, with its roles in a tenant.
#[derive(Debug, Clone, Copy)]
pub struct NewLinkedUser<'a> {
    /// The user (its id is the identity's `user_id`).
    pub user: &'a NewUser,
    /// The tenant it joins.
    pub tenant: Option<&'a str>,
    /// Its roles there.
    pub roles: &'a [String],
}

const PROVIDER_COLUMNS: &str = "mode, id, config, secret_sealed, created_at, updated_at";

fn provider_of(row: &AnyRow) -> StoreResult<IdentityProviderRecord> {
    let config: String = row.try_get("config")?;
    Ok(IdentityProviderRecord {
        id: row.try_get("id")?,
        mode: mode_of(row)?,
        config: serde_json::from_str(&config)?,
        secret_sealed: row.try_get("secret_sealed")?,
        created_at: time_of(row, "created_at")?,
        updated_at: time_of(row, "updated_at")?,
    })
}

impl Store {
    /// Creates or replaces an identity provider. A replacement without a
    /// new sealed secret keeps the stored one, unless `secret.new_source`
    /// (it names another provider than before): then the stored secret and
    /// every link of the old provider's subjects to users are dropped, in
    /// the same transaction. Returns it and whether it was new.
    pub async fn put_identity_provider(
        &self,
        mode: Mode,
        id: &str,
        config: &PutIdentityProvider,
        secret: ProviderSecret<'_>,
        now: OffsetDateTime,
        record: impl FnOnce(&(IdentityProviderRecord, bool)) -> AuditEvent + Send,
    ) -> StoreResult<Written<(IdentityProviderRecord, bool)>> {
        let _timer = self.timed("put_identity_provider");
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(
            "SELECT created_at, secret_sealed FROM identity_providers WHERE mode = $1 AND id = $2",
        )
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, kept): (i64, Option<String>) = match &existing {
            Some(row) => (row.try_get("created_at")?, row.try_get("secret_sealed")?),
            None => (to_unix_ms(now), None),
        };
        let ProviderSecret {
            sealed: secret_sealed,
            new_source,
        } = secret;
        let kept = if new_source {
            sqlx::query("DELETE FROM user_identities WHERE mode = $1 AND provider_id = $2")
                .bind(mode.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            None
        } else {
            kept
        };
        let secret = secret_sealed.map(str::to_owned).or(kept);
        let mut stored = config.clone();
        stored.client_secret = None;
        sqlx::query("DELETE FROM identity_providers WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO identity_providers ({PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {PROVIDER_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(id)
        .bind(to_json(&stored)?)
        .bind(secret)
        .bind(created_at)
        .bind(to_unix_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let put = (provider_of(&row)?, existing.is_none());
        let event = record(&put);
        self.commit_write(tx, put, Some(event), Vec::new()).await
    }

    /// One identity provider; `None` when there is none.
    pub async fn identity_provider(
        &self,
        mode: Mode,
        id: &str,
    ) -> StoreResult<Option<IdentityProviderRecord>> {
        let _timer = self.timed("identity_provider");
        sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| provider_of(&row))
        .transpose()
    }

    /// A page of the mode's identity providers, by id.
    pub async fn list_identity_providers(
        &self,
        mode: Mode,
        page: &PageRequest,
    ) -> StoreResult<PageResult<IdentityProviderRecord>> {
        let _timer = self.timed("list_identity_providers");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.fetch_page(
            &self.pool,
            PROVIDER_COLUMNS,
            "identity_providers",
            "id",
            page,
            provider_of,
            |p| p.id.clone(),
        )
        .await
    }

    /// Removes an identity provider and every link to it: logins through
    /// it stop at once; its users stay.
    pub async fn delete_identity_provider(
        &self,
        mode: Mode,
        id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_identity_provider");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM identity_providers WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("identity provider"));
        }
        sqlx::query("DELETE FROM user_identities WHERE mode = $1 AND provider_id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new()).await
    }

    /// Stores a browser's flow, and drops flows that expired.
    pub async fn create_sso_flow(
        &self,
        mode: Mode,
        flow: &SsoFlow,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let _timer = self.timed("create_sso_flow");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM sso_flows WHERE expires_at < $1")
            .bind(to_unix_ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sso_flows (mode, state_digest, login_id, provider_id, nonce, \
             verifier_sealed, client_state, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(mode.as_str())
        .bind(&flow.state_digest)
        .bind(&flow.login_id)
        .bind(&flow.provider_id)
        .bind(&flow.nonce)
        .bind(&flow.verifier_sealed)
        .bind(&flow.client_state)
        .bind(to_unix_ms(flow.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the flow of a `state` digest: it is deleted as it is read, so
    /// a second use of the same `state` (a replayed callback) finds
    /// nothing. An expired flow is taken and refused (`None`).
    pub async fn take_sso_flow(
        &self,
        mode: Mode,
        state_digest: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<SsoFlow>> {
        let _timer = self.timed("take_sso_flow");
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "DELETE FROM sso_flows WHERE mode = $1 AND state_digest = $2 RETURNING \
             state_digest, login_id, provider_id, nonce, verifier_sealed, client_state, expires_at",
        )
        .bind(mode.as_str())
        .bind(state_digest)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let flow = SsoFlow {
            state_digest: row.try_get("state_digest")?,
            login_id: row.try_get("login_id")?,
            provider_id: row.try_get("provider_id")?,
            nonce: row.try_get("nonce")?,
            verifier_sealed: row.try_get("verifier_sealed")?,
            client_state: row.try_get("client_state")?,
            expires_at: time_of(&row, "expires_at")?,
        };
        Ok((flow.expires_at > now).then_some(flow))
    }

    /// Records a SAML assertion id as used, until `remember_until` (Unix
    /// seconds): `true` the first time, `false` when it was seen before (a
    /// replay). Ids past their time are forgotten on the way.
    pub async fn accept_saml_assertion(
        &self,
        mode: Mode,
        provider_id: &str,
        assertion_id: &str,
        remember_until: i64,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let _timer = self.timed("accept_saml_assertion");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM saml_assertions WHERE expires_at < $1")
            .bind(now.unix_timestamp())
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO saml_assertions (mode, provider_id, assertion_id, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (mode, provider_id, assertion_id) DO NOTHING",
        )
        .bind(mode.as_str())
        .bind(provider_id)
        .bind(assertion_id)
        .bind(remember_until)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// The user a provider's subject is linked to.
    pub async fn linked_user(
        &self,
        mode: Mode,
        provider_id: &str,
        subject: &str,
    ) -> StoreResult<Option<String>> {
        let _timer = self.timed("linked_user");
        let row = sqlx::query(
            "SELECT user_id FROM user_identities WHERE mode = $1 AND provider_id = $2 AND subject = $3",
        )
        .bind(mode.as_str())
        .bind(provider_id)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("user_id").map_err(Into::into))
            .transpose()
    }

    /// The one user with this email address (case-insensitive); `None` for
    /// none or several.
    pub async fn user_by_email(&self, mode: Mode, email: &str) -> StoreResult<Option<String>> {
        let _timer = self.timed("user_by_email");
        if email.contains('\0') {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id FROM users WHERE mode = $1 AND lower(email) = lower($2) LIMIT 2",
        )
        .bind(mode.as_str())
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        Ok(match rows.as_slice() {
            [one] => Some(one.try_get("id")?),
            _ => None,
        })
    }

    /// Links a provider's subject to a user, creating the user first when
    /// `new_user` is given (with `roles` in `tenant`), all in one
    /// transaction. A subject linked meanwhile (another node's login) is a
    /// `Conflict`: read the link again.
    pub async fn link_identity(
        &self,
        mode: Mode,
        identity: &Identity<'_>,
        new_user: Option<NewLinkedUser<'_>>,
        now: OffsetDateTime,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("link_identity");
        let Identity {
            provider_id,
            subject,
            user_id,
        } = *identity;
        let mut tx = self.begin_write().await?;
        if let Some(NewLinkedUser {
            user,
            tenant,
            roles,
        }) = new_user
        {
            insert_user(&mut tx, mode, user, now).await?;
            if let Some(tenant) = tenant {
                let exists = sqlx::query("SELECT id FROM tenants WHERE mode = $1 AND id = $2")
                    .bind(mode.as_str())
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound("tenant"));
                }
                replace_membership(&mut tx, mode, tenant, user_id, roles, now).await?;
            }
        }
        sqlx::query(
            "INSERT INTO user_identities (mode, provider_id, subject, user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(mode.as_str())
        .bind(provider_id)
        .bind(subject)
        .bind(user_id)
        .bind(to_unix_ms(now))
        .execute(&mut *tx)
        .await?;
        let event = record(&());
        self.commit_write(tx, (), Some(event), vec![Invalidation::user(mode, user_id)])
            .await
    }

    /// Records an SSO factor on a login, and its user when the login had
    /// none yet, if the login still holds `before`, is not complete, and
    /// has no other user, with the digest of the code the browser is
    /// handed. `false` when it changed: read it again.
    pub async fn login_sso_passed(
        &self,
        mode: Mode,
        id: &str,
        before: &[String],
        after: &[String],
        user_id: &str,
        browser_code_digest: &str,
    ) -> StoreResult<bool> {
        let _timer = self.timed("login_sso_passed");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE logins SET satisfied = $4, user_id = $5, subject = $5, \
             browser_code_digest = $6 \
             WHERE mode = $1 AND id = $2 AND satisfied = $3 AND session_id IS NULL \
             AND (user_id IS NULL OR user_id = $5)",
        )
        .bind(mode.as_str())
        .bind(id)
        .bind(to_json(&before)?)
        .bind(to_json(&after)?)
        .bind(user_id)
        .bind(browser_code_digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
