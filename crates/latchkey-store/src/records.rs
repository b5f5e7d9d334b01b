//! Records the store reads and writes that are not plain wire types, and the
//! mapping of rows to types.

use latchkey_core::clock::from_unix_ms;
use latchkey_core::credential::CredentialDigest;
use latchkey_types::admin::{ClientSecret, Membership, Role, Tenant, User};
use latchkey_types::{JsonObject, Mode, UserKind};
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::{StoreError, StoreResult};

/// The workspace row.
#[derive(Debug, Clone)]
pub struct WorkspaceRecord {
    /// Workspace (root tenant) id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A stored signing key. `private_pkcs8` is its PKCS#8 DER sealed under the
/// master key (`latchkey_core::sealing`). Its phase is not stored: the
/// schedule gives it (`latchkey_core::keyplan`).
#[derive(Clone)]
pub struct SigningKeyRecord {
    /// Key id.
    pub kid: String,
    /// Mode whose tokens it signs.
    pub mode: Mode,
    /// JOSE algorithm name.
    pub alg: String,
    /// Private key, sealed PKCS#8 DER.
    pub private_pkcs8: String,
    /// Creation (publication) time.
    pub created_at: OffsetDateTime,
    /// When it starts signing.
    pub not_before: OffsetDateTime,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("mode", &self.mode)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A stored admin key (its digest only).
#[derive(Debug, Clone)]
pub struct AdminKeyRecord {
    /// `adm_…`.
    pub id: String,
    /// The partition the key administers.
    pub mode: Mode,
    /// SHA-256 of the key.
    pub digest: CredentialDigest,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A client secret with its digest, for authentication.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    /// `sec_…`.
    pub id: String,
    /// SHA-256 of the secret.
    pub digest: CredentialDigest,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
}

/// Everything token issuance needs to know about one user, read together.
#[derive(Debug, Clone)]
pub struct PrincipalRecord {
    /// The user.
    pub user: User,
    /// Its client secrets.
    pub secrets: Vec<SecretRecord>,
    /// Its direct roles, by tenant.
    pub memberships: Vec<(String, Vec<String>)>,
    /// Its registered public keys.
    pub public_keys: Vec<latchkey_types::admin::UserKey>,
}

/// A new tenant, validated by the caller.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parent id (the workspace for top-level tenants).
    pub parent_id: String,
    /// Cascade flag.
    pub cascade: bool,
    /// Metadata.
    pub metadata: JsonObject,
}

/// A new user, validated by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// `usr_…`.
    pub id: String,
    /// Machine or human.
    pub kind: UserKind,
    /// The id in the system it was imported from.
    pub external_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Email.
    pub email: Option<String>,
    /// Unique user name.
    pub username: Option<String>,
    /// Phone number.
    pub phone_number: Option<String>,
    /// The email is proven.
    pub email_verified: bool,
    /// The phone number is proven.
    pub phone_verified: bool,
    /// Metadata.
    pub metadata: JsonObject,
    /// Custom claims.
    pub custom_claims: JsonObject,
    /// Disabled flag.
    pub disabled: bool,
    /// Token lifetime override.
    pub token_ttl_seconds: Option<i64>,
}

/// A new client secret (its digest only).
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// `sec_…`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Label.
    pub name: Option<String>,
    /// SHA-256 of the secret.
    pub digest: CredentialDigest,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
}

pub(crate) fn mode_of(row: &AnyRow) -> StoreResult<Mode> {
    let s: String = row.try_get("mode")?;
    Mode::parse(&s).ok_or_else(|| StoreError::Internal(format!("bad mode {s:?}").into()))
}

pub(crate) fn time_of(row: &AnyRow, col: &str) -> StoreResult<OffsetDateTime> {
    Ok(from_unix_ms(row.try_get::<i64, _>(col)?))
}

pub(crate) fn opt_time_of(row: &AnyRow, col: &str) -> StoreResult<Option<OffsetDateTime>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_unix_ms))
}

pub(crate) fn json_of(row: &AnyRow, col: &str) -> StoreResult<JsonObject> {
    let s: String = row.try_get(col)?;
    Ok(serde_json::from_str(&s)?)
}

pub(crate) fn list_of(row: &AnyRow, col: &str) -> StoreResult<Vec<String>> {
    let s: String = row.try_get(col)?;
    Ok(serde_json::from_str(&s)?)
}

pub(crate) fn digest_of(row: &AnyRow, col: &str) -> StoreResult<CredentialDigest> {
    let s: String = row.try_get(col)?;
    CredentialDigest::from_hex(&s).ok_or_else(|| StoreError::Internal("bad digest".into()))
}

pub(crate) const TENANT_COLUMNS: &str = "mode, id, name, parent_id, cascades, metadata, created_at";

pub(crate) fn tenant_of(row: &AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        parent_id: row.try_get("parent_id")?,
        cascade: row.try_get::<i64, _>("cascades")? != 0,
        metadata: json_of(row, "metadata")?,
        mode: mode_of(row)?,
        created_at: time_of(row, "created_at")?,
    })
}

pub(crate) const USER_COLUMNS: &str = "mode, id, kind, name, email, username, phone_number, \
     metadata, custom_claims, disabled, token_ttl_seconds, created_at, updated_at, \
     email_verified, phone_verified, external_id";

pub(crate) fn user_of(row: &AnyRow) -> StoreResult<User> {
    let kind: String = row.try_get("kind")?;
    Ok(User {
        id: row.try_get("id")?,
        kind: UserKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("bad kind {kind:?}").into()))?,
        external_id: row.try_get("external_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        username: row.try_get("username")?,
        phone_number: row.try_get("phone_number")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        phone_verified: row.try_get::<i64, _>("phone_verified")? != 0,
        metadata: json_of(row, "metadata")?,
        custom_claims: json_of(row, "custom_claims")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        token_ttl_seconds: row.try_get("token_ttl_seconds")?,
        mode: mode_of(row)?,
        created_at: time_of(row, "created_at")?,
        updated_at: time_of(row, "updated_at")?,
    })
}

pub(crate) fn membership_of(row: &AnyRow) -> StoreResult<Membership> {
    Ok(Membership {
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        roles: list_of(row, "roles")?,
        updated_at: time_of(row, "updated_at")?,
    })
}

pub(crate) fn role_of(row: &AnyRow) -> StoreResult<Role> {
    Ok(Role {
        name: row.try_get("name")?,
        permissions: list_of(row, "permissions")?,
        description: row.try_get("description")?,
        mode: mode_of(row)?,
        updated_at: time_of(row, "updated_at")?,
    })
}

pub(crate) fn secret_of(row: &AnyRow) -> StoreResult<ClientSecret> {
    Ok(ClientSecret {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        created_at: time_of(row, "created_at")?,
        expires_at: opt_time_of(row, "expires_at")?,
    })
}

pub(crate) fn bool_int(b: bool) -> i64 {
    i64::from(b)
}

pub(crate) fn to_json(v: &impl serde::Serialize) -> StoreResult<String> {
    Ok(serde_json::to_string(v)?)
}
