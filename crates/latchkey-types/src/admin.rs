//! Bodies of the `/v1` admin API: workspace, tenants, memberships, the role
//! catalog, users and client secrets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{RoleName, ScopeToken, TenantId};
#[cfg(feature = "openapi")]
use crate::schema::{EmailAddress, ShortText};
use crate::{JsonObject, Mode, UserKind};

/// `GET /v1/workspace`: the root tenant, seen from one mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// The workspace id, which is also the id of the root tenant.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The mode of the admin key that asked.
    pub mode: Mode,
    /// The issuer URL of this mode's tokens (live: the configured URL;
    /// test: `{issuer}/test`).
    pub issuer: String,
    /// Default lifetime of access tokens, in seconds.
    pub token_ttl_seconds: i64,
}

/// A tenant: a node of the tenant tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The parent tenant; the workspace for top-level tenants, `null` for the
    /// workspace itself.
    pub parent_id: Option<String>,
    /// Whether roles held in the parent flow into this tenant.
    pub cascade: bool,
    /// Free-form JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: JsonObject,
    /// The tenant's mode.
    pub mode: Mode,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    /// Chosen id; 8 random lowercase letters and digits when absent.
    pub id: Option<TenantId>,
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(value_type = ShortText))]
    pub name: String,
    /// Parent tenant; the workspace when absent.
    pub parent_id: Option<String>,
    /// Inherit the parent's roles (default `true`).
    pub cascade: Option<bool>,
    /// Free-form JSON object, at most 8 KiB as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<JsonObject>,
}

/// `PATCH /v1/tenants/{id}`: every field optional; `parentId` moves the tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenant {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub name: Option<String>,
    /// New parent (a move). Moving under the tenant itself or a descendant is 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// New cascade flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cascade: Option<bool>,
    /// Replaces the metadata object (at most 8 KiB as JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
}

/// `PUT /v1/tenants/{tenantId}/users/{userId}/roles`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRoles {
    /// The roles the user holds directly in the tenant (at most 100);
    /// empty ends the membership.
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub roles: Vec<RoleName>,
}

/// A user's direct roles in one tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The tenant.
    pub tenant_id: String,
    /// The user.
    pub user_id: String,
    /// Roles held directly in this tenant (inherited ones are not listed).
    pub roles: Vec<String>,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `PUT /v1/roles/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutRole {
    /// OAuth scope tokens the role grants, such as `telemetry:write` (at
    /// most 200).
    #[cfg_attr(feature = "openapi", schema(max_items = 200))]
    pub permissions: Vec<ScopeToken>,
    /// What the role is for.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub description: Option<String>,
}

/// An entry of the role catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// `[a-z0-9][a-z0-9:_-]{0,63}`.
    pub name: String,
    /// Scope tokens granted by the role.
    pub permissions: Vec<String>,
    /// What the role is for.
    pub description: Option<String>,
    /// The role's mode.
    pub mode: Mode,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A user: a machine or a person.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// `usr_…`; also the OAuth `client_id`.
    pub id: String,
    /// Machine or human.
    pub kind: UserKind,
    /// The user's id in the system it came from (set by an import, or at
    /// creation); unique per mode. A client may also use it as its OAuth
    /// `client_id`.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: Option<String>,
    /// Unique user name within the mode.
    pub username: Option<String>,
    /// Phone number.
    pub phone_number: Option<String>,
    /// Whether the email was proven (by an admin, or a code or link sent
    /// there); a new email is unproven.
    #[serde(default)]
    pub email_verified: bool,
    /// Whether the phone number was proven (by an admin, or an SMS code).
    #[serde(default)]
    pub phone_verified: bool,
    /// Free-form JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: JsonObject,
    /// Claims added to this user's access tokens.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_claims: JsonObject,
    /// A disabled user's credentials all stop working at once.
    pub disabled: bool,
    /// Token lifetime for this user, overriding the workspace's.
    pub token_ttl_seconds: Option<i64>,
    /// The user's mode.
    pub mode: Mode,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    /// `machine` (default) or `human`.
    pub kind: Option<UserKind>,
    /// The user's id in another system, unique per mode (1 to 255
    /// printable characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub external_id: Option<String>,
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(value_type = ShortText))]
    pub name: String,
    /// Email address.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EmailAddress>))]
    pub email: Option<String>,
    /// Unique user name within the mode.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub username: Option<String>,
    /// Phone number.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub phone_number: Option<String>,
    /// The email is known to be the user's (default `false`).
    pub email_verified: Option<bool>,
    /// The phone number is known to be the user's (default `false`).
    pub phone_verified: Option<bool>,
    /// Free-form JSON object, at most 8 KiB as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<JsonObject>,
    /// Claims added to this user's tokens, at most 8 KiB as JSON; reserved
    /// claim names are refused.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub custom_claims: Option<JsonObject>,
    /// Create the user disabled.
    pub disabled: Option<bool>,
    /// Token lifetime for this user, in seconds (at most a day).
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
    pub token_ttl_seconds: Option<i64>,
}

/// `PATCH /v1/users/{id}`: absent fields are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub name: Option<String>,
    /// New email (`null` clears).
    #[serde(
        default,
        deserialize_with = "crate::nullable::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EmailAddress>))]
    pub email: Option<Option<String>>,
    /// New user name (`null` clears).
    #[serde(
        default,
        deserialize_with = "crate::nullable::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub username: Option<Option<String>>,
    /// New phone number (`null` clears).
    #[serde(
        default,
        deserialize_with = "crate::nullable::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub phone_number: Option<Option<String>>,
    /// Marks the email proven or not (a changed email is unproven unless
    /// this says otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Marks the phone number proven or not (likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_verified: Option<bool>,
    /// Replaces the metadata object (at most 8 KiB as JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Replaces the custom claims (at most 8 KiB as JSON; reserved claim
    /// names are refused).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_claims: Option<JsonObject>,
    /// Disable or enable every credential of the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// New token lifetime in seconds, at most a day (`null` falls back to
    /// the workspace's).
    #[serde(
        default,
        deserialize_with = "crate::whole::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, minimum = 1, maximum = 86400))]
    pub token_ttl_seconds: Option<Option<i64>>,
}

/// `POST /v1/users/{id}/secrets`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSecret {
    /// A label, such as the host the secret is deployed to.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ShortText>))]
    pub name: Option<String>,
    /// When the secret stops working (in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A client secret as listed: the value itself is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    /// `sec_…`.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// Label.
    pub name: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the secret stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// `POST /v1/users/{id}/secrets` response: the only time `secret` is shown.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedSecret {
    /// `sec_…`.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// Label.
    pub name: Option<String>,
    /// `lk_<mode>_secret_…`: store it now, it is not shown again.
    pub secret: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the secret stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for CreatedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSecret")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The roles effective in one tenant, as in the `authorization` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantRoles {
    /// Sorted role names.
    pub roles: Vec<String>,
}

/// The `authorization` claim: tenant id → roles effective there.
pub type Authorization = BTreeMap<String, TenantRoles>;

/// A public key registered on a user, for `private_key_jwt` and the
/// JWT-bearer grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserKey {
    /// `pk_…`.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// Key id: the JWK's `kid`, or its RFC 7638 thumbprint.
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// The public JWK.
    pub jwk: crate::oauth::Jwk,
    /// Registration time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/users/{id}/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserKey {
    /// A public EdDSA (OKP Ed25519), ES256 (EC P-256) or RS256 (RSA) JWK.
    /// A private JWK is refused.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub jwk: serde_json::Map<String, serde_json::Value>,
}
