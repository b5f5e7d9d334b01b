//! Import: records applied inside a caller-held transaction, each one all or
//! nothing. Every record is checked (its references read, conflicts found)
//! before its first write, so a refused record has written nothing and the
//! transaction goes on; the caller commits in batches, or once for an
//! atomic import, or never for a dry run. Records are found again by
//! `externalId`, id or credential digest, so an import run twice changes
//! nothing the second time.

use std::collections::{HashMap, HashSet};

use latchkey_core::clock::to_unix_ms;
use latchkey_core::credential::CredentialDigest;
use latchkey_core::ids;
use latchkey_core::login::password;
use latchkey_core::migration::StoredCredential;
use latchkey_types::audit::AuditEvent;
use latchkey_types::migration::{
    ApiKeyRecord, MembershipRecord, RoleRecord, SecretRecord, TenantRecord, UserRecord, UserRef,
};
use latchkey_types::{JsonObject, Mode};
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::records::{bool_int, json_of, list_of, to_json, user_of, USER_COLUMNS};
use crate::tenants::{fetch_tenant, replace_membership, tenant_exists};
use crate::users::{insert_user, user_by_external_id};
use crate::{Invalidation, NewUser, Store, StoreResult, Written};

/// What a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new record.
    Created,
    /// An existing record, changed.
    Updated,
    /// An existing record, already as the file says.
    Unchanged,
}

/// Why a record was not applied. It wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It names a tenant or user not there (yet): the caller may retry it
    /// after the rest of the file.
    Missing(String),
    /// It contradicts what is stored.
    Conflict(String),
}

/// The outcome of one record.
pub type Outcome = Result<Applied, Refused>;

/// One record, checked by the caller, ready to apply.
#[derive(Debug, Clone)]
pub enum ImportItem {
    /// A tenant.
    Tenant(TenantRecord),
    /// A role.
    Role(RoleRecord),
    /// A user and the hash to store for its password (in the form the
    /// login checks).
    User(UserRecord, Option<String>),
    /// A membership.
    Membership(MembershipRecord),
    /// An API key and what its value is stored as.
    ApiKey(ApiKeyRecord, StoredCredential, bool),
    /// A client secret and its digest.
    Secret(SecretRecord, CredentialDigest),
}

/// An import's transaction.
#[derive(Debug)]
pub struct ImportTx {
    tx: Transaction<'static, Any>,
    mode: Mode,
    workspace: String,
    now: i64,
    /// Tenants seen to exist in this transaction (an import never deletes
    /// one).
    tenants: HashSet<String>,
    /// External ids resolved in this transaction, bounded.
    users: HashMap<String, String>,
}

/// What an import's committed transactions found (tenants that exist,
/// users by external id), carried into its next transaction.
#[derive(Debug, Default)]
pub struct ImportMemory {
    tenants: HashSet<String>,
    users: HashMap<String, String>,
}

/// The most external ids an import transaction remembers.
const REMEMBERED_USERS: usize = 100_000;

impl Store {
    /// Starts an import's transaction in `mode`, with what an earlier,
    /// committed transaction of the same import learned.
    pub async fn begin_import(
        &self,
        mode: Mode,
        now: OffsetDateTime,
        memory: Option<ImportMemory>,
    ) -> StoreResult<ImportTx> {
        let mut tx = self.begin_write().await?;
        if self.backend == crate::Backend::Sqlite && memory.is_none() {
            // Imports insert into indexes on random digests: a page cache
            // of 64 MiB (instead of 2) keeps them off the disk. It stays on
            // the one writer connection, a bound, not a growth.
            sqlx::query("PRAGMA cache_size = -65536")
                .execute(&mut *tx)
                .await?;
        }
        if self.backend == crate::Backend::Postgres {
            // The import grows tables from nothing within minutes: a cached
            // generic plan made while a table was empty scans it whole for
            // every lookup. Plan each statement with the table as it is.
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query("SELECT id FROM workspace")
            .fetch_one(&mut *tx)
            .await?;
        let memory = memory.unwrap_or_default();
        Ok(ImportTx {
            tx,
            mode,
            workspace: row.try_get("id")?,
            now: to_unix_ms(now),
            tenants: memory.tenants,
            users: memory.users,
        })
    }

    /// Commits an import's transaction with its audit event, and gives back
    /// what it learned for the next one. Every cache of every node drops
    /// what it holds (an import can touch anything).
    pub async fn commit_import(
        &self,
        import: ImportTx,
        event: Option<AuditEvent>,
    ) -> StoreResult<Written<ImportMemory>> {
        let mode = import.mode;
        let memory = ImportMemory {
            tenants: import.tenants,
            users: import.users,
        };
        self.commit_write(
            import.tx,
            memory,
            event,
            vec![Invalidation::Everything { mode }],
        )
        .await
    }
}

fn changed<T: PartialEq>(current: &T, wanted: &Option<T>) -> bool {
    wanted.as_ref().is_some_and(|w| w != current)
}

impl ImportTx {
    async fn tenant_here(&mut self, id: &str) -> StoreResult<bool> {
        if self.tenants.contains(id) {
            return Ok(true);
        }
        let here = tenant_exists(&mut self.tx, self.mode, id).await?;
        if here {
            self.tenants.insert(id.to_owned());
        }
        Ok(here)
    }

    fn remember_user(&mut self, external_id: &str, id: &str) {
        if self.users.len() >= REMEMBERED_USERS {
            self.users.clear();
        }
        self.users.insert(external_id.to_owned(), id.to_owned());
    }

    /// Discards everything (a dry run, a failed atomic import).
    pub async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// Applies one record.
    pub async fn apply(&mut self, item: &ImportItem) -> StoreResult<Outcome> {
        match item {
            ImportItem::Tenant(r) => self.tenant(r).await,
            ImportItem::Role(r) => self.role(r).await,
            ImportItem::User(r, hash) => self.user(r, hash.as_deref()).await,
            ImportItem::Membership(r) => self.membership(r).await,
            ImportItem::ApiKey(r, stored, legacy) => self.api_key(r, stored, *legacy).await,
            ImportItem::Secret(r, digest) => self.secret(r, digest).await,
        }
    }

    fn m(&self) -> &'static str {
        self.mode.as_str()
    }

    async fn tenant(&mut self, r: &TenantRecord) -> StoreResult<Outcome> {
        let id = r.id.as_str();
        let parent = r
            .parent_id
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| self.workspace.clone());
        if id == self.workspace {
            return Ok(Err(Refused::Conflict(
                "id: the workspace itself is not imported (tenants without parentId go under it)"
                    .into(),
            )));
        }
        if !self.tenant_here(&parent).await? {
            return Ok(Err(Refused::Missing(format!(
                "parentId: no tenant {parent:?} here or earlier in the file"
            ))));
        }
        let cascade = r.cascade.unwrap_or(true);
        let metadata = r.metadata.clone().unwrap_or_default();
        if !self.tenant_here(id).await? {
            sqlx::query(
                "INSERT INTO tenants (mode, id, name, parent_id, cascades, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(self.m())
            .bind(id)
            .bind(&r.name)
            .bind(&parent)
            .bind(bool_int(cascade))
            .bind(to_json(&metadata)?)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
            self.tenants.insert(id.to_owned());
            return Ok(Ok(Applied::Created));
        }
        let current = fetch_tenant(&mut self.tx, self.mode, id).await?;
        let same = current.name == r.name
            && current.parent_id.as_deref() == Some(parent.as_str())
            && current.cascade == cascade
            && r.metadata.as_ref().is_none_or(|m| *m == current.metadata);
        if same {
            return Ok(Ok(Applied::Unchanged));
        }
        if current.parent_id.as_deref() != Some(parent.as_str()) {
            // Walk up from the new parent: meeting the tenant itself means
            // the move would make it its own ancestor.
            let mut cursor = Some(parent.clone());
            let mut steps = 0;
            while let Some(here) = cursor {
                if here == id || steps > 100_000 {
                    return Ok(Err(Refused::Conflict(
                        "parentId: a tenant cannot move under itself or a descendant".into(),
                    )));
                }
                steps += 1;
                cursor = fetch_tenant(&mut self.tx, self.mode, &here)
                    .await?
                    .parent_id;
            }
        }
        let metadata = r.metadata.clone().unwrap_or(current.metadata);
        sqlx::query(
            "UPDATE tenants SET name = $3, parent_id = $4, cascades = $5, metadata = $6 \
             WHERE mode = $1 AND id = $2",
        )
        .bind(self.m())
        .bind(id)
        .bind(&r.name)
        .bind(&parent)
        .bind(bool_int(cascade))
        .bind(to_json(&metadata)?)
        .execute(&mut *self.tx)
        .await?;
        Ok(Ok(Applied::Updated))
    }

    async fn role(&mut self, r: &RoleRecord) -> StoreResult<Outcome> {
        let permissions: Vec<String> = r.permissions.iter().map(|p| p.to_string()).collect();
        let row =
            sqlx::query("SELECT permissions, description FROM roles WHERE mode = $1 AND name = $2")
                .bind(self.m())
                .bind(r.name.as_str())
                .fetch_optional(&mut *self.tx)
                .await?;
        let outcome = match &row {
            None => Applied::Created,
            Some(row) => {
                let current: Vec<String> = list_of(row, "permissions")?;
                let description: Option<String> = row.try_get("description")?;
                if current == permissions
                    && (r.description.is_none() || r.description == description)
                {
                    return Ok(Ok(Applied::Unchanged));
                }
                Applied::Updated
            }
        };
        let description = match (&r.description, &row) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(row)) => row.try_get("description")?,
            (None, None) => None,
        };
        sqlx::query(
            "INSERT INTO roles (mode, name, permissions, description, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mode, name) DO UPDATE SET \
             permissions = excluded.permissions, description = excluded.description, \
             updated_at = excluded.updated_at",
        )
        .bind(self.m())
        .bind(r.name.as_str())
        .bind(to_json(&permissions)?)
        .bind(description)
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(Ok(outcome))
    }

    /// The user a record names, if it is here.
    async fn find_user(&mut self, r: &UserRef) -> StoreResult<Option<String>> {
        if let Some(ext) = &r.external_id {
            let found = match self.users.get(ext.as_str()) {
                Some(id) => Some(id.clone()),
                None => {
                    let found = user_by_external_id(&mut self.tx, self.mode, ext).await?;
                    if let Some(id) = &found {
                        self.remember_user(ext, id);
                    }
                    found
                }
            };
            return Ok(match (found, &r.id) {
                (Some(found), Some(id)) if found != id.as_str() => None,
                (found, _) => found,
            });
        }
        let Some(id) = &r.id else { return Ok(None) };
        let row = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
            .bind(self.m())
            .bind(id.as_str())
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|_| id.to_string()))
    }

    async fn user(&mut self, r: &UserRecord, hash: Option<&str>) -> StoreResult<Outcome> {
        let by_external = match &r.external_id {
            Some(ext) => user_by_external_id(&mut self.tx, self.mode, ext).await?,
            None => None,
        };
        let existing = match (&by_external, &r.id) {
            (Some(found), Some(id)) if found != id.as_str() => {
                return Ok(Err(Refused::Conflict(format!(
                    "externalId: already user {found}, not {id}"
                ))))
            }
            (Some(found), _) => Some(self.load_user(found).await?),
            (None, Some(id)) => match self.try_load_user(id.as_str()).await? {
                Some(u) if u.external_id.is_some() && u.external_id != r.external_id => {
                    return Ok(Err(Refused::Conflict(format!(
                        "id: user {id} has another externalId"
                    ))))
                }
                other => other,
            },
            (None, None) => None,
        };
        if let Some(username) = &r.username {
            let row = sqlx::query("SELECT id FROM users WHERE mode = $1 AND username = $2")
                .bind(self.m())
                .bind(username)
                .fetch_optional(&mut *self.tx)
                .await?;
            if let Some(row) = row {
                let holder: String = row.try_get("id")?;
                if existing.as_ref().is_none_or(|u| u.id != holder) {
                    return Ok(Err(Refused::Conflict(format!(
                        "username: {username:?} is already taken"
                    ))));
                }
            }
        }
        let Some(current) = existing else {
            let new = NewUser {
                id: r
                    .id
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| ids::new_prefixed_id("usr")),
                kind: r.kind.unwrap_or_default(),
                external_id: r.external_id.clone(),
                name: r.name.clone(),
                email: r.email.clone(),
                username: r.username.clone(),
                phone_number: r.phone_number.clone(),
                email_verified: r.email_verified.unwrap_or(false),
                phone_verified: r.phone_verified.unwrap_or(false),
                metadata: r.metadata.clone().unwrap_or_default(),
                custom_claims: r.custom_claims.clone().unwrap_or_default(),
                disabled: r.disabled.unwrap_or(false),
                token_ttl_seconds: r.token_ttl_seconds,
            };
            let now = latchkey_core::clock::from_unix_ms(self.now);
            insert_user(&mut self.tx, self.mode, &new, now).await?;
            if let Some(ext) = &new.external_id {
                self.remember_user(ext, &new.id);
            }
            if let Some(hash) = hash {
                self.set_password(&new.id, hash).await?;
            }
            return Ok(Ok(Applied::Created));
        };
        let some = |v: &Option<String>| v.clone().map(Some);
        let fields_changed = current.name != r.name
            || changed(&current.kind, &r.kind)
            || changed(&current.external_id, &r.external_id.clone().map(Some))
            || changed(&current.email, &some(&r.email))
            || changed(&current.username, &some(&r.username))
            || changed(&current.phone_number, &some(&r.phone_number))
            || changed(&current.email_verified, &r.email_verified)
            || changed(&current.phone_verified, &r.phone_verified)
            || changed(&current.metadata, &r.metadata)
            || changed(&current.custom_claims, &r.custom_claims)
            || changed(&current.disabled, &r.disabled)
            || changed(&current.token_ttl_seconds, &r.token_ttl_seconds.map(Some));
        let stored_hash = self.password_hash(&current.id).await?;
        // An imported hash replaces a missing one, or another imported one
        // (the old system changed it); never Latchkey's own Argon2id, which
        // a login or a password change made after the first import.
        let hash_changed = match (hash, stored_hash.as_deref()) {
            (Some(new), Some(old)) => new != old && !password::is_current(old),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !fields_changed && !hash_changed {
            return Ok(Ok(Applied::Unchanged));
        }
        if fields_changed {
            let keep = |v: &Option<String>, cur: &Option<String>| v.clone().or_else(|| cur.clone());
            sqlx::query(
                "UPDATE users SET kind = $3, name = $4, email = $5, username = $6, \
                 phone_number = $7, email_verified = $8, phone_verified = $9, metadata = $10, \
                 custom_claims = $11, disabled = $12, token_ttl_seconds = $13, external_id = $14, \
                 updated_at = $15 WHERE mode = $1 AND id = $2",
            )
            .bind(self.m())
            .bind(&current.id)
            .bind(r.kind.unwrap_or(current.kind).as_str())
            .bind(&r.name)
            .bind(keep(&r.email, &current.email))
            .bind(keep(&r.username, &current.username))
            .bind(keep(&r.phone_number, &current.phone_number))
            .bind(bool_int(r.email_verified.unwrap_or(current.email_verified)))
            .bind(bool_int(r.phone_verified.unwrap_or(current.phone_verified)))
            .bind(to_json(r.metadata.as_ref().unwrap_or(&current.metadata))?)
            .bind(to_json(
                r.custom_claims.as_ref().unwrap_or(&current.custom_claims),
            )?)
            .bind(bool_int(r.disabled.unwrap_or(current.disabled)))
            .bind(r.token_ttl_seconds.or(current.token_ttl_seconds))
            .bind(keep(&r.external_id, &current.external_id))
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
        }
        if hash_changed {
            if let Some(hash) = hash {
                self.set_password(&current.id, hash).await?;
            }
        }
        Ok(Ok(Applied::Updated))
    }

    async fn try_load_user(
        &mut self,
        id: &str,
    ) -> StoreResult<Option<latchkey_types::admin::User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE mode = $1 AND id = $2"
        ))
        .bind(self.m())
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(user_of).transpose()
    }

    async fn load_user(&mut self, id: &str) -> StoreResult<latchkey_types::admin::User> {
        self.try_load_user(id)
            .await?
            .ok_or(crate::StoreError::NotFound("user"))
    }

    async fn password_hash(&mut self, user_id: &str) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT password_hash FROM user_factors WHERE mode = $1 AND user_id = $2")
                .bind(self.m())
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(match row {
            Some(r) => r.try_get("password_hash")?,
            None => None,
        })
    }

    async fn set_password(&mut self, user_id: &str, hash: &str) -> StoreResult<()> {
        crate::logins::upsert_password(&mut self.tx, self.mode, user_id, hash, self.now).await
    }

    /// The user named, or why the record must wait.
    async fn named_user(&mut self, r: &UserRef) -> StoreResult<Result<String, Refused>> {
        if r.id.is_none() && r.external_id.is_none() {
            return Ok(Err(Refused::Conflict("user: give id or externalId".into())));
        }
        Ok(match self.find_user(r).await? {
            Some(id) => Ok(id),
            None => Err(Refused::Missing(format!(
                "user: no user {} here or earlier in the file",
                describe(r)
            ))),
        })
    }

    async fn tenant_or_workspace(
        &mut self,
        tenant: Option<&str>,
    ) -> StoreResult<Result<String, Refused>> {
        let tenant = tenant.unwrap_or(&self.workspace).to_owned();
        Ok(match self.tenant_here(&tenant).await? {
            true => Ok(tenant),
            false => Err(Refused::Missing(format!(
                "tenantId: no tenant {tenant:?} here or earlier in the file"
            ))),
        })
    }

    async fn membership(&mut self, r: &MembershipRecord) -> StoreResult<Outcome> {
        let tenant = match self
            .tenant_or_workspace(r.tenant_id.as_ref().map(|t| t.as_str()))
            .await?
        {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let user = match self.named_user(&r.user).await? {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let mut roles: Vec<String> = r.roles.iter().map(|x| x.to_string()).collect();
        roles.sort();
        roles.dedup();
        let row = sqlx::query(
            "SELECT roles FROM memberships WHERE mode = $1 AND tenant_id = $2 AND user_id = $3",
        )
        .bind(self.m())
        .bind(&tenant)
        .bind(&user)
        .fetch_optional(&mut *self.tx)
        .await?;
        let outcome = match &row {
            None if roles.is_empty() => return Ok(Ok(Applied::Unchanged)),
            None => Applied::Created,
            Some(row) => {
                let mut current: Vec<String> = list_of(row, "roles")?;
                current.sort();
                if current == roles {
                    return Ok(Ok(Applied::Unchanged));
                }
                Applied::Updated
            }
        };
        if outcome == Applied::Created {
            sqlx::query(
                "INSERT INTO memberships (mode, tenant_id, user_id, roles, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(self.m())
            .bind(&tenant)
            .bind(&user)
            .bind(to_json(&roles)?)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
        } else {
            let now = latchkey_core::clock::from_unix_ms(self.now);
            replace_membership(&mut self.tx, self.mode, &tenant, &user, &roles, now).await?;
        }
        Ok(Ok(outcome))
    }

    /// The key holding a value stored this way, if any.
    async fn key_with(&mut self, stored: &StoredCredential) -> StoreResult<Option<String>> {
        let row = match stored {
            StoredCredential::Sha256(d) => {
                sqlx::query("SELECT key_id, mode FROM api_key_digests WHERE digest = $1")
                    .bind(d.to_hex())
                    .fetch_optional(&mut *self.tx)
                    .await?
            }
            StoredCredential::Sha512(hex) => {
                sqlx::query("SELECT key_id, mode FROM api_key_legacy_hashes WHERE hash = $1")
                    .bind(hex)
                    .fetch_optional(&mut *self.tx)
                    .await?
            }
            StoredCredential::Bcrypt { hash, .. } => {
                sqlx::query("SELECT key_id, mode FROM api_key_legacy_hashes WHERE hash = $1")
                    .bind(hash)
                    .fetch_optional(&mut *self.tx)
                    .await?
            }
        };
        match row {
            None => Ok(None),
            Some(row) => {
                let mode: String = row.try_get("mode")?;
                let id: String = row.try_get("key_id")?;
                // The other mode's key with the same value: a conflict, named
                // without revealing the other mode's id.
                Ok(Some(if mode == self.m() { id } else { String::new() }))
            }
        }
    }

    async fn api_key(
        &mut self,
        r: &ApiKeyRecord,
        stored: &StoredCredential,
        legacy: bool,
    ) -> StoreResult<Outcome> {
        let holder = self.key_with(stored).await?;
        if holder.as_deref() == Some("") {
            return Ok(Err(Refused::Conflict(
                "key: this value is a key of the other mode".into(),
            )));
        }
        let user = match self.named_user(&r.user).await? {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let tenant = match self
            .tenant_or_workspace(r.tenant_id.as_ref().map(|t| t.as_str()))
            .await?
        {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let by_id = match &r.id {
            Some(id) => sqlx::query("SELECT id FROM api_keys WHERE mode = $1 AND id = $2")
                .bind(self.m())
                .bind(id.as_str())
                .fetch_optional(&mut *self.tx)
                .await?
                .map(|_| id.to_string()),
            None => None,
        };
        let id = match (holder, by_id) {
            (Some(h), Some(i)) if h != i => {
                return Ok(Err(Refused::Conflict(format!(
                    "id: this value is key {h}, not {i}"
                ))))
            }
            (None, Some(i)) => {
                return Ok(Err(Refused::Conflict(format!(
                    "id: key {i} exists with another value"
                ))))
            }
            (Some(h), None) if r.id.is_some() => {
                return Ok(Err(Refused::Conflict(format!(
                    "id: this value is already key {h}"
                ))))
            }
            (Some(h), _) => Some(h),
            (None, None) => None,
        };
        let roles = r
            .roles
            .as_ref()
            .map(|rs| rs.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        let metadata = r.metadata.clone().unwrap_or_default();
        if let Some(id) = id {
            let row = sqlx::query(
                "SELECT user_id, tenant_id, name, roles, metadata, expires_at, legacy \
                 FROM api_keys WHERE mode = $1 AND id = $2",
            )
            .bind(self.m())
            .bind(&id)
            .fetch_one(&mut *self.tx)
            .await?;
            let cur_user: String = row.try_get("user_id")?;
            let cur_tenant: String = row.try_get("tenant_id")?;
            if cur_user != user || cur_tenant != tenant {
                return Ok(Err(Refused::Conflict(format!(
                    "user, tenantId: key {id} belongs to another user or tenant"
                ))));
            }
            let cur_name: Option<String> = row.try_get("name")?;
            let cur_roles: Option<String> = row.try_get("roles")?;
            let cur_roles: Option<Vec<String>> =
                cur_roles.map(|r| serde_json::from_str(&r)).transpose()?;
            let cur_meta: JsonObject = json_of(&row, "metadata")?;
            let cur_exp: Option<i64> = row.try_get("expires_at")?;
            let exp = r.expires_at.map(to_unix_ms);
            if cur_name == r.name && cur_roles == roles && cur_meta == metadata && cur_exp == exp {
                return Ok(Ok(Applied::Unchanged));
            }
            sqlx::query(
                "UPDATE api_keys SET name = $3, roles = $4, metadata = $5, expires_at = $6 \
                 WHERE mode = $1 AND id = $2",
            )
            .bind(self.m())
            .bind(&id)
            .bind(&r.name)
            .bind(roles.as_ref().map(to_json).transpose()?)
            .bind(to_json(&metadata)?)
            .bind(exp)
            .execute(&mut *self.tx)
            .await?;
            return Ok(Ok(Applied::Updated));
        }
        let id =
            r.id.as_ref()
                .map(|i| i.to_string())
                .unwrap_or_else(|| ids::new_prefixed_id("key"));
        sqlx::query(
            "INSERT INTO api_keys (mode, id, user_id, tenant_id, name, roles, metadata, \
             ratelimit_limit, ratelimit_window_seconds, remaining, expires_at, revoked_at, \
             last_used_at, created_at, legacy) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, $13)",
        )
        .bind(self.m())
        .bind(&id)
        .bind(&user)
        .bind(&tenant)
        .bind(&r.name)
        .bind(roles.as_ref().map(to_json).transpose()?)
        .bind(to_json(&metadata)?)
        .bind(r.ratelimit.map(|x| x.limit))
        .bind(r.ratelimit.map(|x| x.window_seconds))
        .bind(r.remaining)
        .bind(r.expires_at.map(to_unix_ms))
        .bind(self.now)
        .bind(bool_int(legacy))
        .execute(&mut *self.tx)
        .await?;
        match stored {
            StoredCredential::Sha256(d) => {
                crate::api_keys::insert_digest(&mut self.tx, self.mode, &id, d).await?
            }
            StoredCredential::Sha512(hash) => {
                self.insert_legacy_hash(&id, "sha512", "", hash).await?
            }
            StoredCredential::Bcrypt { prefix, hash } => {
                self.insert_legacy_hash(&id, "bcrypt", prefix, hash).await?
            }
        }
        Ok(Ok(Applied::Created))
    }

    async fn insert_legacy_hash(
        &mut self,
        key_id: &str,
        algorithm: &str,
        prefix: &str,
        hash: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_key_legacy_hashes (mode, key_id, algorithm, prefix, hash) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.m())
        .bind(key_id)
        .bind(algorithm)
        .bind(prefix)
        .bind(hash)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn secret(
        &mut self,
        r: &SecretRecord,
        digest: &CredentialDigest,
    ) -> StoreResult<Outcome> {
        let user = match self.named_user(&r.user).await? {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let row = sqlx::query(
            "SELECT mode, id, user_id, name, expires_at FROM client_secrets WHERE digest = $1",
        )
        .bind(digest.to_hex())
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some(row) = row {
            let mode: String = row.try_get("mode")?;
            let id: String = row.try_get("id")?;
            let owner: String = row.try_get("user_id")?;
            if mode != self.m() || owner != user || r.id.as_ref().is_some_and(|i| *i != id) {
                return Ok(Err(Refused::Conflict(
                    "secret: this value is already another client secret".into(),
                )));
            }
            let name: Option<String> = row.try_get("name")?;
            let exp: Option<i64> = row.try_get("expires_at")?;
            if name == r.name && exp == r.expires_at.map(to_unix_ms) {
                return Ok(Ok(Applied::Unchanged));
            }
            sqlx::query(
                "UPDATE client_secrets SET name = $3, expires_at = $4 WHERE mode = $1 AND id = $2",
            )
            .bind(self.m())
            .bind(&id)
            .bind(&r.name)
            .bind(r.expires_at.map(to_unix_ms))
            .execute(&mut *self.tx)
            .await?;
            return Ok(Ok(Applied::Updated));
        }
        let id = r.id.clone().unwrap_or_else(|| ids::new_prefixed_id("sec"));
        let taken = sqlx::query("SELECT id FROM client_secrets WHERE mode = $1 AND id = $2")
            .bind(self.m())
            .bind(&id)
            .fetch_optional(&mut *self.tx)
            .await?;
        if taken.is_some() {
            return Ok(Err(Refused::Conflict(format!(
                "id: secret {id} exists with another value"
            ))));
        }
        sqlx::query(
            "INSERT INTO client_secrets (mode, id, user_id, name, digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.m())
        .bind(&id)
        .bind(&user)
        .bind(&r.name)
        .bind(digest.to_hex())
        .bind(self.now)
        .bind(r.expires_at.map(to_unix_ms))
        .execute(&mut *self.tx)
        .await?;
        Ok(Ok(Applied::Created))
    }
}

fn describe(r: &UserRef) -> String {
    match (&r.id, &r.external_id) {
        (_, Some(ext)) => format!("with externalId {ext:?}"),
        (Some(id), None) => id.to_string(),
        (None, None) => "(none named)".into(),
    }
}
