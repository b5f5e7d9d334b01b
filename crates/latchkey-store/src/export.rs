//! Export: every record of a mode as import records, page by page, so the
//! server streams it. Credentials leave as their digests, never as values;
//! the workspace itself is not exported (tenants under it and memberships
//! in it name no parent and no tenant, so a file imports into a server with
//! another workspace id).

use latchkey_types::api_keys::RateLimit;
use latchkey_types::ids::{ApiKeyId, RoleName, ScopeToken, TenantId, UserId};
use latchkey_types::migration::{
    ApiKeyRecord, CredentialHash, CustomPasswordHash, MembershipRecord, Record, RoleRecord,
    SecretRecord, TenantRecord, UserRecord, UserRef,
};
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::records::{json_of, list_of, opt_time_of, user_of, USER_COLUMNS};
use crate::{Store, StoreError, StoreResult};

/// The parts of an export, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportSection {
    /// Tenants, parents first.
    Tenants,
    /// The role catalog.
    Roles,
    /// Users, with their password hashes.
    Users,
    /// Memberships.
    Memberships,
    /// API keys that are not revoked, by their current value's digest.
    ApiKeys,
    /// Client secrets.
    Secrets,
}

impl ExportSection {
    /// Every section, in order.
    pub const ALL: [ExportSection; 6] = [
        ExportSection::Tenants,
        ExportSection::Roles,
        ExportSection::Users,
        ExportSection::Memberships,
        ExportSection::ApiKeys,
        ExportSection::Secrets,
    ];
}

fn id<T: TryFrom<String>>(value: String) -> StoreResult<T> {
    T::try_from(value.clone())
        .map_err(|_| StoreError::Internal(format!("a stored id {value:?} is malformed").into()))
}

fn user_ref(user_id: String) -> StoreResult<UserRef> {
    Ok(UserRef {
        id: Some(id::<UserId>(user_id)?),
        external_id: None,
    })
}

impl Store {
    /// One page of a section: up to `limit` records after `cursor` (the
    /// page's last one is the next cursor; `None` when the section ends).
    pub async fn export_page(
        &self,
        mode: Mode,
        section: ExportSection,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<Record>, Option<String>)> {
        let _timer = self.timed("export_page");
        let m = mode.as_str();
        let after = cursor.unwrap_or("");
        let lim = limit as i64;
        let (records, last): (Vec<Record>, Option<String>) = match section {
            ExportSection::Tenants => {
                // All at once, parents before children: the tree is small
                // enough to be cached whole anyway.
                if cursor.is_some() {
                    return Ok((Vec::new(), None));
                }
                let rows = sqlx::query(
                    "SELECT id, name, parent_id, cascades, metadata FROM tenants WHERE mode = $1",
                )
                .bind(m)
                .fetch_all(&self.pool)
                .await?;
                return Ok((tenants_in_order(&rows)?, None));
            }
            ExportSection::Roles => {
                let rows = sqlx::query(
                    "SELECT name, permissions, description FROM roles WHERE mode = $1 AND \
                     name > $2 ORDER BY name LIMIT $3",
                )
                .bind(m)
                .bind(after)
                .bind(lim)
                .fetch_all(&self.pool)
                .await?;
                let last = page_end(&rows, limit, "name")?;
                let records = rows
                    .iter()
                    .map(|r| {
                        let permissions = list_of(r, "permissions")?
                            .into_iter()
                            .map(id::<ScopeToken>)
                            .collect::<StoreResult<_>>()?;
                        Ok(Record::Role(RoleRecord {
                            name: id::<RoleName>(r.try_get("name")?)?,
                            permissions,
                            description: r.try_get("description")?,
                        }))
                    })
                    .collect::<StoreResult<_>>()?;
                (records, last)
            }
            ExportSection::Users => {
                let cols = USER_COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows = sqlx::query(&format!(
                    "SELECT {cols}, f.password_hash FROM users u LEFT JOIN user_factors f \
                     ON f.mode = u.mode AND f.user_id = u.id WHERE u.mode = $1 AND u.id > $2 \
                     ORDER BY u.id LIMIT $3"
                ))
                .bind(m)
                .bind(after)
                .bind(lim)
                .fetch_all(&self.pool)
                .await?;
                let last = page_end(&rows, limit, "id")?;
                let records = rows.iter().map(user_record).collect::<StoreResult<_>>()?;
                (records, last)
            }
            ExportSection::Memberships => {
                let (user, tenant) = after.split_once('\n').unwrap_or((after, ""));
                let rows = sqlx::query(
                    "SELECT user_id, tenant_id, roles FROM memberships WHERE mode = $1 AND \
                     (user_id > $2 OR (user_id = $2 AND tenant_id > $3)) \
                     ORDER BY user_id, tenant_id LIMIT $4",
                )
                .bind(m)
                .bind(user)
                .bind(tenant)
                .bind(lim)
                .fetch_all(&self.pool)
                .await?;
                let last = match rows.last().filter(|_| rows.len() == limit) {
                    Some(r) => Some(format!(
                        "{}\n{}",
                        r.try_get::<String, _>("user_id")?,
                        r.try_get::<String, _>("tenant_id")?
                    )),
                    None => None,
                };
                let workspace = self.workspace_id().await?;
                let records = rows
                    .iter()
                    .map(|r| {
                        let tenant: String = r.try_get("tenant_id")?;
                        Ok(Record::Membership(MembershipRecord {
                            tenant_id: match tenant == workspace {
                                true => None,
                                false => Some(id::<TenantId>(tenant)?),
                            },
                            user: user_ref(r.try_get("user_id")?)?,
                            roles: list_of(r, "roles")?
                                .into_iter()
                                .map(id::<RoleName>)
                                .collect::<StoreResult<_>>()?,
                        }))
                    })
                    .collect::<StoreResult<_>>()?;
                (records, last)
            }
            ExportSection::ApiKeys => {
                let rows = sqlx::query(
                    "SELECT k.id, k.user_id, k.tenant_id, k.name, k.roles, k.metadata, \
                     k.ratelimit_limit, k.ratelimit_window_seconds, k.remaining, k.expires_at, \
                     k.legacy, \
                     (SELECT d.digest FROM api_key_digests d WHERE d.mode = k.mode AND \
                      d.key_id = k.id AND d.expires_at IS NULL) AS digest, \
                     h.algorithm, h.prefix, h.hash \
                     FROM api_keys k LEFT JOIN api_key_legacy_hashes h \
                     ON h.mode = k.mode AND h.key_id = k.id \
                     WHERE k.mode = $1 AND k.revoked_at IS NULL AND k.id > $2 \
                     ORDER BY k.id LIMIT $3",
                )
                .bind(m)
                .bind(after)
                .bind(lim)
                .fetch_all(&self.pool)
                .await?;
                let last = page_end(&rows, limit, "id")?;
                let workspace = self.workspace_id().await?;
                let mut records = Vec::with_capacity(rows.len());
                for r in &rows {
                    if let Some(rec) = key_record(r, &workspace)? {
                        records.push(rec);
                    }
                }
                (records, last)
            }
            ExportSection::Secrets => {
                let rows = sqlx::query(
                    "SELECT id, user_id, name, digest, expires_at FROM client_secrets \
                     WHERE mode = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(m)
                .bind(after)
                .bind(lim)
                .fetch_all(&self.pool)
                .await?;
                let last = page_end(&rows, limit, "id")?;
                let records = rows
                    .iter()
                    .map(|r| {
                        Ok(Record::Secret(SecretRecord {
                            id: Some(r.try_get("id")?),
                            user: user_ref(r.try_get("user_id")?)?,
                            name: r.try_get("name")?,
                            expires_at: opt_time_of(r, "expires_at")?,
                            secret: None,
                            secret_hash: Some(CredentialHash {
                                algorithm: "sha256".into(),
                                value: r.try_get("digest")?,
                                encoding: None,
                            }),
                        }))
                    })
                    .collect::<StoreResult<_>>()?;
                (records, last)
            }
        };
        Ok((records, last))
    }

    async fn workspace_id(&self) -> StoreResult<String> {
        let row = sqlx::query("SELECT id FROM workspace")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("id")?)
    }
}

/// The cursor after a page: its last row's `col`, when the page is full
/// (a short page ends the section).
fn page_end(rows: &[AnyRow], limit: usize, col: &str) -> StoreResult<Option<String>> {
    match rows.last() {
        Some(r) if rows.len() == limit => Ok(Some(r.try_get(col)?)),
        _ => Ok(None),
    }
}

fn tenants_in_order(rows: &[AnyRow]) -> StoreResult<Vec<Record>> {
    use std::collections::BTreeMap;
    let mut children: BTreeMap<Option<String>, Vec<&AnyRow>> = BTreeMap::new();
    for r in rows {
        children
            .entry(r.try_get::<Option<String>, _>("parent_id")?)
            .or_default()
            .push(r);
    }
    let Some(roots) = children.get(&None) else {
        return Ok(Vec::new());
    };
    let workspace: String = roots[0].try_get("id")?;
    let mut out = Vec::with_capacity(rows.len());
    let mut queue = std::collections::VecDeque::from([workspace.clone()]);
    while let Some(parent) = queue.pop_front() {
        for r in children.get(&Some(parent.clone())).into_iter().flatten() {
            let tenant: String = r.try_get("id")?;
            queue.push_back(tenant.clone());
            out.push(Record::Tenant(TenantRecord {
                id: id::<TenantId>(tenant)?,
                name: r.try_get("name")?,
                parent_id: match parent == workspace {
                    true => None,
                    false => Some(id::<TenantId>(parent.clone())?),
                },
                cascade: Some(r.try_get::<i64, _>("cascades")? != 0),
                metadata: Some(json_of(r, "metadata")?).filter(|m| !m.is_empty()),
            }));
        }
    }
    Ok(out)
}

fn user_record(r: &AnyRow) -> StoreResult<Record> {
    let u = user_of(r)?;
    let hash: Option<String> = r.try_get("password_hash")?;
    let (password_hash, custom_password_hash) = match hash {
        Some(h) if h.starts_with('{') && h.ends_with('}') && h.contains("\"algorithm\"") => {
            (None, Some(serde_json::from_str::<CustomPasswordHash>(&h)?))
        }
        other => (other, None),
    };
    Ok(Record::User(UserRecord {
        id: Some(id::<UserId>(u.id)?),
        external_id: u.external_id,
        kind: Some(u.kind),
        name: u.name,
        email: u.email,
        email_verified: Some(u.email_verified),
        username: u.username,
        phone_number: u.phone_number,
        phone_verified: Some(u.phone_verified),
        metadata: Some(u.metadata).filter(|m| !m.is_empty()),
        custom_claims: Some(u.custom_claims).filter(|m| !m.is_empty()),
        disabled: Some(u.disabled),
        token_ttl_seconds: u.token_ttl_seconds,
        password_hash,
        custom_password_hash,
    }))
}

fn key_record(r: &AnyRow, workspace: &str) -> StoreResult<Option<Record>> {
    let digest: Option<String> = r.try_get("digest")?;
    let algorithm: Option<String> = r.try_get("algorithm")?;
    let (key_hash, prefix) = match (digest, algorithm) {
        (Some(d), _) => (
            CredentialHash {
                algorithm: "sha256".into(),
                value: d,
                encoding: None,
            },
            None,
        ),
        (None, Some(alg)) => {
            let prefix: String = r.try_get("prefix")?;
            (
                CredentialHash {
                    algorithm: alg,
                    value: r.try_get("hash")?,
                    encoding: None,
                },
                Some(prefix).filter(|p| !p.is_empty()),
            )
        }
        // Only values in a rotation grace period are left: nothing current
        // to export.
        (None, None) => return Ok(None),
    };
    let tenant: String = r.try_get("tenant_id")?;
    let roles: Option<String> = r.try_get("roles")?;
    let roles: Option<Vec<String>> = roles.map(|s| serde_json::from_str(&s)).transpose()?;
    let limit: Option<i64> = r.try_get("ratelimit_limit")?;
    let window: Option<i64> = r.try_get("ratelimit_window_seconds")?;
    Ok(Some(Record::ApiKey(ApiKeyRecord {
        id: Some(id::<ApiKeyId>(r.try_get("id")?)?),
        user: user_ref(r.try_get("user_id")?)?,
        tenant_id: match tenant == workspace {
            true => None,
            false => Some(id::<TenantId>(tenant)?),
        },
        name: r.try_get("name")?,
        roles: roles
            .map(|rs| {
                rs.into_iter()
                    .map(id::<RoleName>)
                    .collect::<StoreResult<_>>()
            })
            .transpose()?,
        expires_at: opt_time_of(r, "expires_at")?,
        metadata: Some(json_of(r, "metadata")?).filter(|m| !m.is_empty()),
        ratelimit: match (limit, window) {
            (Some(limit), Some(window_seconds)) => Some(RateLimit {
                limit,
                window_seconds,
            }),
            _ => None,
        },
        remaining: r.try_get("remaining")?,
        key: None,
        key_hash: Some(key_hash),
        prefix,
        legacy: Some(r.try_get::<i64, _>("legacy")? != 0),
    })))
}
