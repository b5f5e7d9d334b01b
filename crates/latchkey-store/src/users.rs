//! Users (machines and people) and their client secrets.

use latchkey_core::clock::to_unix_ms;
use latchkey_types::admin::{ClientSecret, UpdateUser, User};
use latchkey_types::audit::AuditEvent;
use latchkey_types::{Mode, UserKind};
use sqlx::{Any, Transaction};
use time::OffsetDateTime;

use crate::records::{bool_int, secret_of, to_json, user_of, USER_COLUMNS};
use crate::{
    Conditions, Invalidation, NewSecret, NewUser, PageRequest, PageResult, Store, StoreError,
    StoreResult, Written,
};

const SECRET_COLUMNS: &str = "id, user_id, name, created_at, expires_at";

impl Store {
    /// Creates a user. A taken `username` is a `Conflict`.
    pub async fn create_user(
        &self,
        mode: Mode,
        user: &NewUser,
        now: OffsetDateTime,
        record: impl FnOnce(&User) -> AuditEvent + Send,
    ) -> StoreResult<Written<User>> {
        let _timer = self.timed("create_user");
        let mut tx = self.begin_write().await?;
        if let Some(username) = &user.username {
            ensure_username_free(&mut tx, mode, username, None).await?;
        }
        if let Some(external_id) = &user.external_id {
            if user_by_external_id(&mut tx, mode, external_id)
                .await?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "the externalId {external_id:?} is already another user's"
                )));
            }
        }
        let created = insert_user(&mut tx, mode, user, now).await?;
        // A failed authentication with this id may have cached "no such
        // user".
        let changes = vec![Invalidation::user(mode, &created.id)];
        let event = record(&created);
        self.commit_write(tx, created, Some(event), changes).await
    }

    /// The id of the user imported with this external id.
    pub async fn user_id_by_external_id(
        &self,
        mode: Mode,
        external_id: &str,
    ) -> StoreResult<Option<String>> {
        let _timer = self.timed("user_id_by_external_id");
        let row = sqlx::query("SELECT id FROM users WHERE mode = $1 AND external_id = $2")
            .bind(mode.as_str())
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| sqlx::Row::try_get(&r, "id")).transpose()?)
    }

    /// One user.
    pub async fn get_user(&self, mode: Mode, id: &str) -> StoreResult<User> {
        let _timer = self.timed("get_user");
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
        user_of(&row)
    }

    /// Users by id, optionally of one kind and/or holding roles directly in
    /// one tenant.
    pub async fn list_users(
        &self,
        mode: Mode,
        kind: Option<UserKind>,
        tenant_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<PageResult<User>> {
        let _timer = self.timed("list_users");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        if let Some(kind) = kind {
            c.push("kind = {}", kind.as_str());
        }
        if let Some(tenant) = tenant_id {
            // `$1` is the mode, pushed first above.
            c.push(
                "id IN (SELECT user_id FROM memberships WHERE mode = $1 AND tenant_id = {})",
                tenant,
            );
        }
        c.fetch_page(
            &self.pool,
            USER_COLUMNS,
            "users",
            "id",
            page,
            user_of,
            |u| u.id.clone(),
        )
        .await
    }

    /// Applies a PATCH to a user.
    pub async fn update_user(
        &self,
        mode: Mode,
        id: &str,
        patch: &UpdateUser,
        now: OffsetDateTime,
        record: impl FnOnce(&User) -> AuditEvent + Send,
    ) -> StoreResult<Written<User>> {
        let _timer = self.timed("update_user");
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
        let mut user = user_of(&row)?;
        if let Some(name) = &patch.name {
            user.name = name.clone();
        }
        if let Some(email) = &patch.email {
            if *email != user.email {
                user.email_verified = false;
            }
            user.email = email.clone();
        }
        if let Some(username) = &patch.username {
            if let Some(u) = username {
                ensure_username_free(&mut tx, mode, u, Some(id)).await?;
            }
            user.username = username.clone();
        }
        if let Some(phone) = &patch.phone_number {
            if *phone != user.phone_number {
                user.phone_verified = false;
            }
            user.phone_number = phone.clone();
        }
        if let Some(verified) = patch.email_verified {
            user.email_verified = verified;
        }
        if let Some(verified) = patch.phone_verified {
            user.phone_verified = verified;
        }
        if let Some(metadata) = &patch.metadata {
            user.metadata = metadata.clone();
        }
        if let Some(claims) = &patch.custom_claims {
            user.custom_claims = claims.clone();
        }
        if let Some(disabled) = patch.disabled {
            user.disabled = disabled;
        }
        if let Some(ttl) = patch.token_ttl_seconds {
            user.token_ttl_seconds = ttl;
        }
        let row = sqlx::query(&format!(
            "UPDATE users SET name = $3, email = $4, username = $5, phone_number = $6, \
             metadata = $7, custom_claims = $8, disabled = $9, token_ttl_seconds = $10, \
             updated_at = $11, email_verified = $12, phone_verified = $13 \
             WHERE mode = $1 AND id = $2 RETURNING {USER_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.username)
        .bind(&user.phone_number)
        .bind(to_json(&user.metadata)?)
        .bind(to_json(&user.custom_claims)?)
        .bind(bool_int(user.disabled))
        .bind(user.token_ttl_seconds)
        .bind(to_unix_ms(now))
        .bind(bool_int(user.email_verified))
        .bind(bool_int(user.phone_verified))
        .fetch_one(&mut *tx)
        .await?;
        let updated = user_of(&row)?;
        let changes = vec![Invalidation::user(mode, id)];
        let event = record(&updated);
        self.commit_write(tx, updated, Some(event), changes).await
    }

    /// Marks a user's email (`phone: false`) or phone number as proven
    /// because a code or link sent to `address` was passed; nothing when
    /// the address changed meanwhile or was already proven.
    pub async fn mark_verified(
        &self,
        mode: Mode,
        id: &str,
        phone: bool,
        address: &str,
    ) -> StoreResult<Written<bool>> {
        let _timer = self.timed("mark_verified");
        let mut tx = self.begin_write().await?;
        let sql = if phone {
            "UPDATE users SET phone_verified = 1 WHERE mode = $1 AND id = $2 \
             AND phone_number = $3 AND phone_verified = 0"
        } else {
            "UPDATE users SET email_verified = 1 WHERE mode = $1 AND id = $2 \
             AND email = $3 AND email_verified = 0"
        };
        let done = sqlx::query(sql)
            .bind(mode.as_str())
            .bind(id)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        let changed = done.rows_affected() > 0;
        let changes = if changed {
            vec![Invalidation::user(mode, id)]
        } else {
            Vec::new()
        };
        self.commit_write(tx, changed, None, changes).await
    }

    /// Deletes a user with its memberships and secrets.
    pub async fn delete_user(
        &self,
        mode: Mode,
        id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_user");
        let mut tx = self.begin_write().await?;
        // Children first, explicitly, so the result does not depend on the
        // database enforcing ON DELETE CASCADE.
        sqlx::query(
            "DELETE FROM api_key_digests WHERE mode = $1 AND key_id IN \
             (SELECT id FROM api_keys WHERE mode = $1 AND user_id = $2)",
        )
        .bind(mode.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for table in ["memberships", "client_secrets", "api_keys", "user_keys"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE mode = $1 AND user_id = $2"
            ))
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM users WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        let changes = vec![
            Invalidation::user(mode, id),
            Invalidation::UserApiKeys {
                mode,
                user_id: id.to_owned(),
            },
        ];
        let event = record(&());
        self.commit_write(tx, (), Some(event), changes).await
    }

    /// Adds a client secret to a user.
    pub async fn create_secret(
        &self,
        mode: Mode,
        secret: &NewSecret,
        now: OffsetDateTime,
        record: impl FnOnce(&ClientSecret) -> AuditEvent + Send,
    ) -> StoreResult<Written<ClientSecret>> {
        let _timer = self.timed("create_secret");
        let mut tx = self.begin_write().await?;
        ensure_user(&mut tx, mode, &secret.user_id).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO client_secrets (mode, id, user_id, name, digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SECRET_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(&secret.id)
        .bind(&secret.user_id)
        .bind(&secret.name)
        .bind(secret.digest.to_hex())
        .bind(to_unix_ms(now))
        .bind(secret.expires_at.map(to_unix_ms))
        .fetch_one(&mut *tx)
        .await?;
        let created = secret_of(&row)?;
        let changes = vec![Invalidation::user(mode, &secret.user_id)];
        let event = record(&created);
        self.commit_write(tx, created, Some(event), changes).await
    }

    /// A user's client secrets (without their values, which are not stored).
    pub async fn list_secrets(
        &self,
        mode: Mode,
        user_id: &str,
        page: &PageRequest,
    ) -> StoreResult<PageResult<ClientSecret>> {
        let _timer = self.timed("list_secrets");
        let mut tx = self.pool.begin().await?;
        ensure_user(&mut tx, mode, user_id).await?;
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.push("user_id = {}", user_id);
        let result = c
            .fetch_page(
                &mut *tx,
                SECRET_COLUMNS,
                "client_secrets",
                "id",
                page,
                secret_of,
                |s| s.id.clone(),
            )
            .await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Deletes one client secret of a user.
    pub async fn delete_secret(
        &self,
        mode: Mode,
        user_id: &str,
        secret_id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_secret");
        let mut tx = self.begin_write().await?;
        ensure_user(&mut tx, mode, user_id).await?;
        let done =
            sqlx::query("DELETE FROM client_secrets WHERE mode = $1 AND user_id = $2 AND id = $3")
                .bind(mode.as_str())
                .bind(user_id)
                .bind(secret_id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("client secret"));
        }
        let changes = vec![Invalidation::user(mode, user_id)];
        let event = record(&());
        self.commit_write(tx, (), Some(event), changes).await
    }
}

async fn ensure_user(tx: &mut Transaction<'_, Any>, mode: Mode, id: &str) -> StoreResult<()> {
    sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|_| ())
        .ok_or(StoreError::NotFound("user"))
}

async fn ensure_username_free(
    tx: &mut Transaction<'_, Any>,
    mode: Mode,
    username: &str,
    except: Option<&str>,
) -> StoreResult<()> {
    let row = sqlx::query("SELECT id FROM users WHERE mode = $1 AND username = $2")
        .bind(mode.as_str())
        .bind(username)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) if except != Some(sqlx::Row::try_get::<String, _>(&r, "id")?.as_str()) => Err(
            StoreError::Conflict(format!("the username {username:?} is already taken")),
        ),
        _ => Ok(()),
    }
}

/// The id of the user with this external id.
pub(crate) async fn user_by_external_id(
    tx: &mut Transaction<'_, Any>,
    mode: Mode,
    external_id: &str,
) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT id FROM users WHERE mode = $1 AND external_id = $2")
        .bind(mode.as_str())
        .bind(external_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| sqlx::Row::try_get(&r, "id")).transpose()?)
}

/// Inserts a user row (the caller checked the username).
pub(crate) async fn insert_user(
    tx: &mut Transaction<'static, Any>,
    mode: Mode,
    user: &NewUser,
    now: OffsetDateTime,
) -> StoreResult<User> {
    let at = to_unix_ms(now);
    let row = sqlx::query(&format!(
        "INSERT INTO users ({USER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             RETURNING {USER_COLUMNS}"
    ))
    .bind(mode.as_str())
    .bind(&user.id)
    .bind(user.kind.as_str())
    .bind(&user.name)
    .bind(&user.email)
    .bind(&user.username)
    .bind(&user.phone_number)
    .bind(to_json(&user.metadata)?)
    .bind(to_json(&user.custom_claims)?)
    .bind(bool_int(user.disabled))
    .bind(user.token_ttl_seconds)
    .bind(at)
    .bind(at)
    .bind(bool_int(user.email_verified))
    .bind(bool_int(user.phone_verified))
    .bind(&user.external_id)
    .fetch_one(&mut **tx)
    .await?;
    user_of(&row)
}
