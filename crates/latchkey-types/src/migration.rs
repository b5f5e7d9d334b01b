//! Migration: the records `POST /v1/import` reads and `GET /v1/export`
//! writes, and the legacy credential shapes they carry (password hashes of
//! other systems, API keys as digests).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api_keys::RateLimit;
use crate::ids::{ApiKeyId, RoleName, ScopeToken, TenantId, UserId};
use crate::{JsonObject, UserKind};

/// Auth0's `custom_password_hash`: a password hash made by another system,
/// described by its algorithm and encodings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomPasswordHash {
    /// `md5`, `sha1`, `sha256`, `sha512` (a digest of the salted password),
    /// `hmac` (with `hash.digest` and `hash.key`), or `bcrypt`, `argon2`,
    /// `pbkdf2` (`hash.value` a PHC string), `ldap` (`{SSHA}…` and kin).
    pub algorithm: String,
    /// The hash.
    pub hash: CustomHashValue,
    /// The salt, for the digest algorithms and `hmac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<CustomSalt>,
    /// How the password was turned into bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<CustomPasswordEncoding>,
}

/// `custom_password_hash.hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomHashValue {
    /// The hash, encoded as `encoding` says.
    pub value: String,
    /// `hex`, `base64` or `utf8` (default: `utf8` for the string formats,
    /// `hex` for digests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// For `hmac`: the digest, `sha1`, `sha256` or `sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// For `hmac`: the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CustomEncoded>,
}

/// `custom_password_hash.salt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomSalt {
    /// The salt.
    pub value: String,
    /// `hex`, `base64` or `utf8` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `prefix` (default: salt then password) or `suffix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// A value with its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomEncoded {
    /// The value.
    pub value: String,
    /// `hex`, `base64` or `utf8` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// `custom_password_hash.password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomPasswordEncoding {
    /// `utf8` (default), `ascii`, `latin1` (also `binary`), `utf16le`
    /// (also `ucs2`).
    pub encoding: String,
}

/// One line of an import or export file: a record, tagged by `type`.
/// Fields are those of the API objects; the admin key's mode is the mode of
/// everything imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A tenant; its parent may come later in the file.
    Tenant(TenantRecord),
    /// A role of the catalog.
    Role(RoleRecord),
    /// A user, found again by `externalId` (or `id`).
    User(UserRecord),
    /// The roles a user holds in a tenant (replaced).
    Membership(MembershipRecord),
    /// An API key, as its value or a digest.
    ApiKey(ApiKeyRecord),
    /// A client secret, as its value or a digest.
    Secret(SecretRecord),
}

impl Record {
    /// The record's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Tenant(_) => "tenant",
            Record::Role(_) => "role",
            Record::User(_) => "user",
            Record::Membership(_) => "membership",
            Record::ApiKey(_) => "api_key",
            Record::Secret(_) => "secret",
        }
    }
}

/// `{"type":"tenant"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantRecord {
    /// Its id.
    pub id: TenantId,
    /// Its name.
    pub name: String,
    /// Its parent (default: the workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<TenantId>,
    /// Whether it inherits roles (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade: Option<bool>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
}

/// `{"type":"role"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRecord {
    /// The role.
    pub name: RoleName,
    /// Its permissions.
    pub permissions: Vec<ScopeToken>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A user named by a record: `{"id": …}` or `{"externalId": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRef {
    /// Latchkey's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    /// The id in the system it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `{"type":"user"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRecord {
    /// Latchkey's id (an export's; generated when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    /// The id in the system it came from: running an import twice finds
    /// the user by it. One of `id` and `externalId` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `machine` (default) or `human`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<UserKind>,
    /// Display name.
    pub name: String,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The email is proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// The phone number is proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_verified: Option<bool>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Claims added to the user's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_claims: Option<JsonObject>,
    /// Disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Token lifetime, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl_seconds: Option<i64>,
    /// A password hash string (Argon2, scrypt, PBKDF2, bcrypt, SHA-crypt,
    /// Django, LDAP; see the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// An Auth0 `custom_password_hash` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_password_hash: Option<CustomPasswordHash>,
}

/// `{"type":"membership"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipRecord {
    /// The tenant (default: the workspace, whose roles are global).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// The user.
    pub user: UserRef,
    /// The roles held there directly (replacing what was held).
    pub roles: Vec<RoleName>,
}

/// A digest of a credential made elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialHash {
    /// `sha256`, `sha512` (of the value's UTF-8 bytes) or `bcrypt`.
    pub algorithm: String,
    /// The digest: `hex` (default), `base64` or `base64url` for the SHA-2
    /// digests, the `$2b$…` string for bcrypt.
    pub value: String,
    /// The digest's encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// `{"type":"api_key"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// Latchkey's id (an export's; generated when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ApiKeyId>,
    /// The user it authenticates as.
    pub user: UserRef,
    /// Its tenant (default: the workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Narrowing roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleName>>,
    /// Expiry.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimit>,
    /// Uses left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    /// The key's value, in any format (16 to 512 characters). One of
    /// `key` and `keyHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A digest of the key's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<CredentialHash>,
    /// The key's first characters, not secret: needed with a bcrypt
    /// `keyHash` to find the key without trying every hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Made by another system (default: `true` unless `key` is a Latchkey
    /// key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<bool>,
}

/// `{"type":"secret"}`: a client secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRecord {
    /// Latchkey's id (an export's; generated when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its user.
    pub user: UserRef,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// The secret's value, in any format (16 to 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A SHA-256 digest of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<CredentialHash>,
}

/// One refused line of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImportError {
    /// The line, from 1.
    pub line: u64,
    /// `invalid_request`, `not_found` or `conflict`.
    pub code: String,
    /// What is wrong, naming the field.
    pub detail: String,
}

/// The answer of `POST /v1/import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Records created.
    pub created: u64,
    /// Records changed.
    pub updated: u64,
    /// Records already as the file says.
    pub unchanged: u64,
    /// Refused lines (the first 1000; `errorCount` counts all).
    pub errors: Vec<ImportError>,
    /// All refused lines.
    pub error_count: u64,
    /// Whether anything was written (`false` for a dry run, and for an
    /// atomic import with an error).
    pub written: bool,
}
