//! Migration: the records `POST /v1/import` reads and `GET /v1/export`
//! writes, and the legacy credential shapes they carry (password hashes of
//! other systems, API keys as digests).

use serde::{Deserialize, Serialize};

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
