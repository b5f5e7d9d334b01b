//! The audit log: who did what to which record, when and from where.
//! Events never hold a secret: values of keys, secrets, tokens and private
//! keys are not part of any event, only the ids of the records.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{JsonObject, Mode};

/// One audit event (`GET /v1/audit-events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `evt_…`.
    pub id: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The partition it happened in; `null` for failed authentication that
    /// named no credential of a known mode (listed in both modes).
    pub mode: Option<Mode>,
    /// What happened.
    pub action: AuditAction,
    /// Who did it.
    pub actor: AuditActor,
    /// What it was done to.
    pub target: AuditTarget,
    /// The tenant concerned, when there is one.
    pub tenant_id: Option<String>,
    /// The client's address (the peer, or the address a trusted proxy
    /// forwarded for).
    pub source_address: Option<String>,
    /// Facts about the change that are not secret (roles granted, grace
    /// period, algorithm, failure count…).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: JsonObject,
}

impl AuditEvent {
    /// The same event, about `tenant_id`.
    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The same event, with one more detail.
    pub fn with_detail(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }
}

/// The kinds of audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuditAction {
    /// The workspace was created (first start), in this mode's partition.
    #[serde(rename = "workspace.created")]
    WorkspaceCreated,
    /// An admin key was installed (first start).
    #[serde(rename = "admin_key.created")]
    AdminKeyCreated,
    /// A mode's first signing key was created (first start).
    #[serde(rename = "signing_key.created")]
    SigningKeyCreated,
    /// A tenant was created.
    #[serde(rename = "tenant.created")]
    TenantCreated,
    /// A tenant's name, cascade or metadata changed.
    #[serde(rename = "tenant.updated")]
    TenantUpdated,
    /// A tenant was deleted.
    #[serde(rename = "tenant.deleted")]
    TenantDeleted,
    /// A user's roles in a tenant were set.
    #[serde(rename = "membership.set")]
    MembershipSet,
    /// A role was created or replaced in the catalog.
    #[serde(rename = "role.put")]
    RolePut,
    /// A role was deleted from the catalog.
    #[serde(rename = "role.deleted")]
    RoleDeleted,
    /// A user (machine or person) was created.
    #[serde(rename = "user.created")]
    UserCreated,
    /// A user changed (name, roles, disabled, lifetime…).
    #[serde(rename = "user.updated")]
    UserUpdated,
    /// A user was deleted, with its credentials.
    #[serde(rename = "user.deleted")]
    UserDeleted,
    /// A client secret was created.
    #[serde(rename = "client_secret.created")]
    ClientSecretCreated,
    /// A client secret was revoked.
    #[serde(rename = "client_secret.revoked")]
    ClientSecretRevoked,
    /// A public key was registered on a user.
    #[serde(rename = "user_key.added")]
    UserKeyAdded,
    /// A public key was removed from a user.
    #[serde(rename = "user_key.removed")]
    UserKeyRemoved,
    /// An API key was created.
    #[serde(rename = "api_key.created")]
    ApiKeyCreated,
    /// An API key got a new value.
    #[serde(rename = "api_key.rotated")]
    ApiKeyRotated,
    /// An API key was revoked.
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked,
    /// A signing key was added (by an admin, or by the schedule).
    #[serde(rename = "signing_key.rotated")]
    SigningKeyRotated,
    /// An admin minted a custom token.
    #[serde(rename = "token.minted")]
    TokenMinted,
    /// An access token was revoked (`/oauth/revoke`).
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// Failed authentication reached a brute-force limit: later attempts
    /// from the address (for the client) are refused until the window ends.
    #[serde(rename = "auth.failures_exceeded")]
    AuthFailuresExceeded,
    /// A login completed and its session began.
    #[serde(rename = "session.created")]
    SessionCreated,
    /// A session ended: logout, by its user, by an admin, or with the user's other sessions at a password change.
    #[serde(rename = "session.ended")]
    SessionEnded,
    /// A spent refresh token was presented after the retry window: the session (the whole token family) was ended.
    #[serde(rename = "session.refresh_token_reused")]
    RefreshTokenReused,
    /// A tenant's login policy was set.
    #[serde(rename = "login_policy.set")]
    LoginPolicySet,
    /// A tenant's own login policy was removed (it takes the one above again).
    #[serde(rename = "login_policy.deleted")]
    LoginPolicyDeleted,
    /// A user's password was set or changed (by an admin or by the user).
    #[serde(rename = "password.set")]
    PasswordSet,
    /// A user confirmed a TOTP authenticator (and got backup codes).
    #[serde(rename = "totp.enrolled")]
    TotpEnrolled,
    /// A user's backup codes were replaced.
    #[serde(rename = "backup_codes.generated")]
    BackupCodesGenerated,
    /// A user's factor (password, totp, backup codes) was removed.
    #[serde(rename = "factor.removed")]
    FactorRemoved,
    /// A trusted issuer (workload identity federation) was created or replaced.
    #[serde(rename = "trusted_issuer.put")]
    TrustedIssuerPut,
    /// A trusted issuer was deleted.
    #[serde(rename = "trusted_issuer.deleted")]
    TrustedIssuerDeleted,
    /// An identity provider was created or replaced.
    #[serde(rename = "identity_provider.put")]
    IdentityProviderPut,
    /// An identity provider was deleted, with its links to users.
    #[serde(rename = "identity_provider.deleted")]
    IdentityProviderDeleted,
    /// A provider's account was linked to a user (by a verified email, or a
    /// user provisioned for it).
    #[serde(rename = "identity.linked")]
    IdentityLinked,
    /// Records were imported (`POST /v1/import`; the detail has the counts).
    #[serde(rename = "import.completed")]
    ImportCompleted,
    /// The mode's records were exported (`GET /v1/export`).
    #[serde(rename = "export.started")]
    ExportStarted,
}

impl AuditAction {
    /// Every action, in a stable order.
    pub const ALL: [AuditAction; 39] = [
        AuditAction::WorkspaceCreated,
        AuditAction::AdminKeyCreated,
        AuditAction::SigningKeyCreated,
        AuditAction::TenantCreated,
        AuditAction::TenantUpdated,
        AuditAction::TenantDeleted,
        AuditAction::MembershipSet,
        AuditAction::RolePut,
        AuditAction::RoleDeleted,
        AuditAction::UserCreated,
        AuditAction::UserUpdated,
        AuditAction::UserDeleted,
        AuditAction::ClientSecretCreated,
        AuditAction::ClientSecretRevoked,
        AuditAction::UserKeyAdded,
        AuditAction::UserKeyRemoved,
        AuditAction::ApiKeyCreated,
        AuditAction::ApiKeyRotated,
        AuditAction::ApiKeyRevoked,
        AuditAction::SigningKeyRotated,
        AuditAction::TokenMinted,
        AuditAction::TokenRevoked,
        AuditAction::AuthFailuresExceeded,
        AuditAction::SessionCreated,
        AuditAction::SessionEnded,
        AuditAction::RefreshTokenReused,
        AuditAction::LoginPolicySet,
        AuditAction::LoginPolicyDeleted,
        AuditAction::PasswordSet,
        AuditAction::TotpEnrolled,
        AuditAction::BackupCodesGenerated,
        AuditAction::FactorRemoved,
        AuditAction::TrustedIssuerPut,
        AuditAction::TrustedIssuerDeleted,
        AuditAction::IdentityProviderPut,
        AuditAction::IdentityProviderDeleted,
        AuditAction::IdentityLinked,
        AuditAction::ImportCompleted,
        AuditAction::ExportStarted,
    ];

    /// The dotted name (`api_key.created`), as in JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::WorkspaceCreated => "workspace.created",
            AuditAction::AdminKeyCreated => "admin_key.created",
            AuditAction::SigningKeyCreated => "signing_key.created",
            AuditAction::TenantCreated => "tenant.created",
            AuditAction::TenantUpdated => "tenant.updated",
            AuditAction::TenantDeleted => "tenant.deleted",
            AuditAction::MembershipSet => "membership.set",
            AuditAction::RolePut => "role.put",
            AuditAction::RoleDeleted => "role.deleted",
            AuditAction::UserCreated => "user.created",
            AuditAction::UserUpdated => "user.updated",
            AuditAction::UserDeleted => "user.deleted",
            AuditAction::ClientSecretCreated => "client_secret.created",
            AuditAction::ClientSecretRevoked => "client_secret.revoked",
            AuditAction::UserKeyAdded => "user_key.added",
            AuditAction::UserKeyRemoved => "user_key.removed",
            AuditAction::ApiKeyCreated => "api_key.created",
            AuditAction::ApiKeyRotated => "api_key.rotated",
            AuditAction::ApiKeyRevoked => "api_key.revoked",
            AuditAction::SigningKeyRotated => "signing_key.rotated",
            AuditAction::TokenMinted => "token.minted",
            AuditAction::TokenRevoked => "token.revoked",
            AuditAction::AuthFailuresExceeded => "auth.failures_exceeded",
            AuditAction::SessionCreated => "session.created",
            AuditAction::SessionEnded => "session.ended",
            AuditAction::RefreshTokenReused => "session.refresh_token_reused",
            AuditAction::LoginPolicySet => "login_policy.set",
            AuditAction::LoginPolicyDeleted => "login_policy.deleted",
            AuditAction::PasswordSet => "password.set",
            AuditAction::TotpEnrolled => "totp.enrolled",
            AuditAction::BackupCodesGenerated => "backup_codes.generated",
            AuditAction::TrustedIssuerPut => "trusted_issuer.put",
            AuditAction::TrustedIssuerDeleted => "trusted_issuer.deleted",
            AuditAction::IdentityProviderPut => "identity_provider.put",
            AuditAction::IdentityProviderDeleted => "identity_provider.deleted",
            AuditAction::IdentityLinked => "identity.linked",
            AuditAction::ImportCompleted => "import.completed",
            AuditAction::ExportStarted => "export.started",
            AuditAction::FactorRemoved => "factor.removed",
        }
    }

    /// Parses the dotted name.
    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditActor {
    /// `admin_key` (the `adm_…` id of the admin key), `client` (the `usr_…`
    /// that authenticated), `system` (the server itself, such as scheduled
    /// key rotation) or `anonymous` (an unauthenticated caller).
    #[serde(rename = "type")]
    pub kind: String,
    /// The actor's id, when it has one.
    pub id: Option<String>,
}

impl AuditActor {
    /// An admin key, by its `adm_…` id.
    pub fn admin_key(id: impl Into<String>) -> Self {
        AuditActor {
            kind: "admin_key".into(),
            id: Some(id.into()),
        }
    }

    /// An authenticated client (user).
    pub fn client(id: impl Into<String>) -> Self {
        AuditActor {
            kind: "client".into(),
            id: Some(id.into()),
        }
    }

    /// The server itself.
    pub fn system() -> Self {
        AuditActor {
            kind: "system".into(),
            id: None,
        }
    }

    /// An unauthenticated caller.
    pub fn anonymous() -> Self {
        AuditActor {
            kind: "anonymous".into(),
            id: None,
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditTarget {
    /// `workspace`, `admin_key`, `tenant`, `role`, `user`, `client_secret`,
    /// `user_key`, `api_key`, `signing_key`, `token` (by its `jti`),
    /// `client` (a client id named in failed attempts) or `address`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id (for `address`, the address).
    pub id: String,
}

impl AuditTarget {
    /// A target of `kind` with `id`.
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        AuditTarget {
            kind: kind.to_owned(),
            id: id.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_match_their_json() {
        for action in AuditAction::ALL {
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, serde_json::Value::String(action.as_str().into()));
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("user.exploded"), None);
    }
}
