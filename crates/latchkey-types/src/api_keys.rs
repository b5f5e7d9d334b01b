//! API keys: creation, listing, rotation and the verify endpoint's answer.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::admin::Authorization;
use crate::ids::RoleName;
#[cfg(feature = "openapi")]
use crate::schema::ShortText;
use crate::{JsonObject, Mode};

/// A per-key rate limit: at most `limit` verifications per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Uses allowed per window (1 or more).
    #[serde(deserialize_with = "crate::whole::deserialize")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub limit: i64,
    /// Window length in seconds, 1 to 86400 (a day).
    #[serde(deserialize_with = "crate::whole::deserialize")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
    pub window_seconds: i64,
}

/// An API key as listed: the value is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// `key_…`.
    pub id: String,
    /// The user the key authenticates as.
    pub user_id: String,
    /// The tenant the key is scoped to.
    pub tenant_id: String,
    /// Label.
    pub name: Option<String>,
    /// When set, narrows the roles the user holds in the tenant.
    pub roles: Option<Vec<String>>,
    /// Free-form JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: JsonObject,
    /// Per-key rate limit.
    pub ratelimit: Option<RateLimit>,
    /// Uses left, when the key has a budget.
    pub remaining: Option<i64>,
    /// When the key stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the key was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Last successful use (recorded in batches, so it may lag a few seconds).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The key's mode.
    pub mode: Mode,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Imported from another system (its value in any format); rotating it
    /// issues a Latchkey key.
    #[serde(default)]
    pub legacy: bool,
}

/// A new or rotated API key: the only time `key` is shown.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    /// `lk_<mode>_key_…`: store it now, it is not shown again.
    pub key: String,
    /// The key's record.
    #[serde(flatten)]
    pub api_key: ApiKey,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &"[redacted]")
            .field("api_key", &self.api_key)
            .finish()
    }
}

/// `POST /v1/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// The user the key authenticates as.
    pub user_id: String,
    /// The tenant the key is scoped to; the workspace when absent.
    pub tenant_id: Option<String>,
    /// Label.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub name: Option<String>,
    /// Narrows the roles the user holds in the tenant (at most 100).
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub roles: Option<Vec<RoleName>>,
    /// When the key stops working (in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Free-form JSON object, at most 8 KiB as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<JsonObject>,
    /// Per-key rate limit.
    pub ratelimit: Option<RateLimit>,
    /// A budget of uses; each successful verification or token spends one.
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub remaining: Option<i64>,
}

/// `POST /v1/api-keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateApiKey {
    /// How long the previous value keeps working, in seconds, at most 30
    /// days (default 0: it stops now).
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2592000))]
    pub grace_period_seconds: Option<i64>,
}

/// `POST /v1/api-keys/verify` body (the key may also come in `X-Api-Key`).
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyApiKeyRequest {
    /// The key to check.
    pub key: Option<String>,
}

impl std::fmt::Debug for VerifyApiKeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyApiKeyRequest { key: [redacted] }")
    }
}

/// Why a key is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyInvalidCode {
    /// No such key.
    NotFound,
    /// Not a well-formed key (format or checksum).
    Malformed,
    /// Revoked, or a previous value whose rotation grace period ended.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its user is disabled.
    Disabled,
    /// Over its rate limit for the current window.
    RateLimited,
    /// Its `remaining` budget is spent.
    UsageExceeded,
    /// A key of the other mode.
    WrongMode,
}

/// A valid key, as `POST /v1/api-keys/verify` describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValidApiKey {
    /// Always `true`.
    pub valid: bool,
    /// The key id.
    pub key_id: String,
    /// The user the key authenticates as.
    pub user_id: String,
    /// The key's tenant.
    pub tenant_id: String,
    /// The key's mode.
    pub mode: Mode,
    /// Roles effective in the key's tenant (narrowed by the key's `roles`).
    pub roles: Vec<String>,
    /// As the `authorization` claim of a token scoped to the key's tenant
    /// (each entry narrowed by the key's `roles`), within the same byte
    /// budget.
    pub authorization: Authorization,
    /// Present and `true` when descendants with roles were left out of
    /// `authorization` for its byte budget (see the token claim of the same
    /// name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorization_truncated: bool,
    /// When the key expires (`null`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Uses left after this one, when the key has a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
}

/// An invalid key: `{valid: false, code}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvalidApiKey {
    /// Always `false`.
    pub valid: bool,
    /// Why the key is not valid.
    pub code: KeyInvalidCode,
}

/// `POST /v1/api-keys/verify` answer (always 200).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum VerifyApiKeyResponse {
    /// The key is valid.
    Valid(ValidApiKey),
    /// The key is not valid.
    Invalid(InvalidApiKey),
}

impl VerifyApiKeyResponse {
    /// A `{valid: false, code}` answer.
    pub fn invalid(code: KeyInvalidCode) -> Self {
        VerifyApiKeyResponse::Invalid(InvalidApiKey { valid: false, code })
    }
}
