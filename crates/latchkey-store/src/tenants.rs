//! Tenants (the tree) and memberships (roles per user per tenant).

use latchkey_core::clock::to_unix_ms;
use latchkey_types::admin::{Membership, Tenant, UpdateTenant};
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::records::{bool_int, membership_of, tenant_of, to_json, TENANT_COLUMNS};
use crate::{
    Conditions, Invalidation, NewTenant, PageRequest, PageResult, Store, StoreError, StoreResult,
    Written,
};

impl Store {
    /// Creates a tenant under an existing parent of the same mode.
    pub async fn create_tenant(
        &self,
        mode: Mode,
        tenant: &NewTenant,
        now: OffsetDateTime,
        record: impl FnOnce(&Tenant) -> AuditEvent + Send,
    ) -> StoreResult<Written<Tenant>> {
        let _timer = self.timed("create_tenant");
        let mut tx = self.begin_write().await?;
        if !tenant_exists(&mut tx, mode, &tenant.parent_id).await? {
            return Err(StoreError::NotFound("parent tenant"));
        }
        if tenant_exists(&mut tx, mode, &tenant.id).await? {
            return Err(StoreError::Conflict(format!(
                "a tenant with id {:?} already exists",
                tenant.id
            )));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING {TENANT_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(&tenant.parent_id)
        .bind(bool_int(tenant.cascade))
        .bind(to_json(&tenant.metadata)?)
        .bind(to_unix_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let created = tenant_of(&row)?;
        let event = record(&created);
        self.commit_write(tx, created, Some(event), vec![Invalidation::Tree { mode }])
            .await
    }

    /// One tenant (the workspace included).
    pub async fn get_tenant(&self, mode: Mode, id: &str) -> StoreResult<Tenant> {
        let _timer = self.timed("get_tenant");
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("tenant"))?;
        tenant_of(&row)
    }

    /// Tenants below the workspace, by id, optionally only the children of
    /// `parent`.
    pub async fn list_tenants(
        &self,
        mode: Mode,
        parent: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<PageResult<Tenant>> {
        let _timer = self.timed("list_tenants");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.push_raw("parent_id IS NOT NULL");
        if let Some(p) = parent {
            c.push("parent_id = {}", p);
        }
        c.fetch_page(
            &self.pool,
            TENANT_COLUMNS,
            "tenants",
            "id",
            page,
            tenant_of,
            |t| t.id.clone(),
        )
        .await
    }

    /// Changes a tenant; a new `parentId` moves it (with its subtree). Moving
    /// under itself or a descendant is a `Conflict`; the workspace cannot be
    /// changed.
    pub async fn update_tenant(
        &self,
        mode: Mode,
        id: &str,
        patch: &UpdateTenant,
        record: impl FnOnce(&Tenant) -> AuditEvent + Send,
    ) -> StoreResult<Written<Tenant>> {
        let _timer = self.timed("update_tenant");
        let mut tx = self.begin_write().await?;
        let current = fetch_tenant(&mut tx, mode, id).await?;
        if current.parent_id.is_none() {
            return Err(StoreError::Conflict(
                "the workspace is the root tenant and cannot be changed".into(),
            ));
        }
        if let Some(new_parent) = &patch.parent_id {
            if !tenant_exists(&mut tx, mode, new_parent).await? {
                return Err(StoreError::NotFound("parent tenant"));
            }
            // Walk up from the new parent: meeting the tenant itself means the
            // move would make it its own ancestor.
            let mut cursor = Some(new_parent.clone());
            let mut steps = 0;
            while let Some(here) = cursor {
                if here == id {
                    return Err(StoreError::Conflict(
                        "a tenant cannot be moved under itself or one of its descendants".into(),
                    ));
                }
                steps += 1;
                if steps > 100_000 {
                    return Err(StoreError::Internal("tenant tree has a cycle".into()));
                }
                cursor = fetch_tenant(&mut tx, mode, &here).await?.parent_id;
            }
        }
        let name = patch.name.clone().unwrap_or(current.name);
        let parent = patch.parent_id.clone().or(current.parent_id);
        let cascade = patch.cascade.unwrap_or(current.cascade);
        let metadata = patch.metadata.clone().unwrap_or(current.metadata);
        let row = sqlx::query(&format!(
            "UPDATE tenants SET name = $3, parent_id = $4, cascades = $5, metadata = $6 \
             WHERE mode = $1 AND id = $2 RETURNING {TENANT_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(id)
        .bind(name)
        .bind(parent)
        .bind(bool_int(cascade))
        .bind(to_json(&metadata)?)
        .fetch_one(&mut *tx)
        .await?;
        let updated = tenant_of(&row)?;
        let event = record(&updated);
        self.commit_write(tx, updated, Some(event), vec![Invalidation::Tree { mode }])
            .await
    }

    /// Deletes a tenant that has no children and no members.
    pub async fn delete_tenant(
        &self,
        mode: Mode,
        id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_tenant");
        let mut tx = self.begin_write().await?;
        let current = fetch_tenant(&mut tx, mode, id).await?;
        if current.parent_id.is_none() {
            return Err(StoreError::Conflict(
                "the workspace cannot be deleted".into(),
            ));
        }
        let children: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM tenants WHERE mode = $1 AND parent_id = $2")
                .bind(mode.as_str())
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        if children > 0 {
            return Err(StoreError::Conflict(
                "the tenant still has child tenants; delete or move them first".into(),
            ));
        }
        let members: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE mode = $1 AND tenant_id = $2")
                .bind(mode.as_str())
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        if members > 0 {
            return Err(StoreError::Conflict(
                "the tenant still has members; remove their roles first".into(),
            ));
        }
        let keys: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys \
                 WHERE mode = $1 AND tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(mode.as_str())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if keys > 0 {
            return Err(StoreError::Conflict(
                "the tenant still has API keys scoped to it; revoke them first".into(),
            ));
        }
        // Revoked keys go with the tenant.
        sqlx::query(
            "DELETE FROM api_key_digests WHERE mode = $1 AND key_id IN \
             (SELECT id FROM api_keys WHERE mode = $1 AND tenant_id = $2)",
        )
        .bind(mode.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM api_keys WHERE mode = $1 AND tenant_id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tenants WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let event = record(&());
        self.commit_write(tx, (), Some(event), vec![Invalidation::Tree { mode }])
            .await
    }

    /// Every tenant of the mode as `(id, parent, cascade)`, for the resolver.
    pub async fn tenant_tree(
        &self,
        mode: Mode,
    ) -> StoreResult<Vec<(String, Option<String>, bool)>> {
        let _timer = self.timed("tenant_tree");
        let rows = sqlx::query("SELECT id, parent_id, cascades FROM tenants WHERE mode = $1")
            .bind(mode.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("parent_id")?,
                    r.try_get::<i64, _>("cascades")? != 0,
                ))
            })
            .collect()
    }

    /// Sets the roles a user holds directly in a tenant; an empty list ends
    /// the membership (and returns `None`).
    pub async fn set_roles(
        &self,
        mode: Mode,
        tenant_id: &str,
        user_id: &str,
        roles: &[String],
        now: OffsetDateTime,
        record: impl FnOnce(&Option<Membership>) -> AuditEvent + Send,
    ) -> StoreResult<Written<Option<Membership>>> {
        let _timer = self.timed("set_roles");
        let mut tx = self.begin_write().await?;
        if !tenant_exists(&mut tx, mode, tenant_id).await? {
            return Err(StoreError::NotFound("tenant"));
        }
        let user = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        let result = replace_membership(&mut tx, mode, tenant_id, user_id, roles, now).await?;
        let event = record(&result);
        let changes = vec![Invalidation::user(mode, user_id)];
        self.commit_write(tx, result, Some(event), changes).await
    }

    /// The members of a tenant with their direct roles, by user id.
    pub async fn list_members(
        &self,
        mode: Mode,
        tenant_id: &str,
        page: &PageRequest,
    ) -> StoreResult<PageResult<Membership>> {
        let _timer = self.timed("list_members");
        let mut tx = self.pool.begin().await?;
        if !tenant_exists(&mut tx, mode, tenant_id).await? {
            return Err(StoreError::NotFound("tenant"));
        }
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.push("tenant_id = {}", tenant_id);
        let result = c
            .fetch_page(
                &mut *tx,
                "tenant_id, user_id, roles, updated_at",
                "memberships",
                "user_id",
                page,
                membership_of,
                |m| m.user_id.clone(),
            )
            .await?;
        tx.commit().await?;
        Ok(result)
    }
}

pub(crate) async fn tenant_exists(
    tx: &mut Transaction<'_, Any>,
    mode: Mode,
    id: &str,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM tenants WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

pub(crate) async fn fetch_tenant(
    tx: &mut Transaction<'_, Any>,
    mode: Mode,
    id: &str,
) -> StoreResult<Tenant> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE mode = $1 AND id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("tenant"))?;
    tenant_of(&row)
}

/// Sets a user's direct roles in a tenant (both known to exist); an empty
/// list ends the membership.
pub(crate) async fn replace_membership(
    tx: &mut Transaction<'static, Any>,
    mode: Mode,
    tenant_id: &str,
    user_id: &str,
    roles: &[String],
    now: OffsetDateTime,
) -> StoreResult<Option<Membership>> {
    sqlx::query("DELETE FROM memberships WHERE mode = $1 AND tenant_id = $2 AND user_id = $3")
        .bind(mode.as_str())
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    if roles.is_empty() {
        return Ok(None);
    }
    let row = sqlx::query(
        "INSERT INTO memberships (mode, tenant_id, user_id, roles, updated_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING tenant_id, user_id, roles, updated_at",
    )
    .bind(mode.as_str())
    .bind(tenant_id)
    .bind(user_id)
    .bind(to_json(&roles)?)
    .bind(to_unix_ms(now))
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(membership_of(&row)?))
}
