//! The role catalog: role name → permissions.

use latchkey_core::clock::to_unix_ms;
use latchkey_types::admin::Role;
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::{list_of, role_of, to_json};
use crate::{
    Conditions, Invalidation, PageRequest, PageResult, Store, StoreError, StoreResult, Written,
};

const ROLE_COLUMNS: &str = "mode, name, permissions, description, updated_at";

impl Store {
    /// Creates or replaces a role. Returns the role and whether it was new.
    pub async fn put_role(
        &self,
        mode: Mode,
        name: &str,
        permissions: &[String],
        description: Option<&str>,
        now: OffsetDateTime,
        record: impl FnOnce(&(Role, bool)) -> AuditEvent + Send,
    ) -> StoreResult<Written<(Role, bool)>> {
        let _timer = self.timed("put_role");
        let mut tx = self.begin_write().await?;
        let existed = sqlx::query("DELETE FROM roles WHERE mode = $1 AND name = $2")
            .bind(mode.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let row = sqlx::query(&format!(
            "INSERT INTO roles ({ROLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5) RETURNING {ROLE_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(name)
        .bind(to_json(&permissions)?)
        .bind(description)
        .bind(to_unix_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let put = (role_of(&row)?, !existed);
        let event = record(&put);
        self.commit_write(tx, put, Some(event), vec![Invalidation::Catalog { mode }])
            .await
    }

    /// One role.
    pub async fn get_role(&self, mode: Mode, name: &str) -> StoreResult<Role> {
        let _timer = self.timed("get_role");
        let row = sqlx::query(&format!(
            "SELECT {ROLE_COLUMNS} FROM roles WHERE mode = $1 AND name = $2"
        ))
        .bind(mode.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("role"))?;
        role_of(&row)
    }

    /// The catalog, by name.
    pub async fn list_roles(
        &self,
        mode: Mode,
        page: &PageRequest,
    ) -> StoreResult<PageResult<Role>> {
        let _timer = self.timed("list_roles");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.fetch_page(
            &self.pool,
            ROLE_COLUMNS,
            "roles",
            "name",
            page,
            role_of,
            |r| r.name.clone(),
        )
        .await
    }

    /// Removes a role from the catalog. Users who hold it keep the name, which
    /// then grants no permission.
    pub async fn delete_role(
        &self,
        mode: Mode,
        name: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("delete_role");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM roles WHERE mode = $1 AND name = $2")
            .bind(mode.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("role"));
        }
        let event = record(&());
        self.commit_write(tx, (), Some(event), vec![Invalidation::Catalog { mode }])
            .await
    }

    /// The whole catalog of a mode as `(role, permissions)`, for the resolver.
    pub async fn role_catalog(&self, mode: Mode) -> StoreResult<Vec<(String, Vec<String>)>> {
        let _timer = self.timed("role_catalog");
        let rows = sqlx::query("SELECT name, permissions FROM roles WHERE mode = $1")
            .bind(mode.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, list_of(r, "permissions")?)))
            .collect()
    }
}
