//! Federation: identity providers (SSO) and trusted issuers (workload
//! identity federation), as the admin API reads and answers them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{RoleName, TenantId, TrustedIssuerId, UserId};
use crate::{Mode, UserKind};

/// The most rules one trusted issuer holds.
pub const MAX_RULES: usize = 64;
/// The most conditions one rule holds.
pub const MAX_CONDITIONS: usize = 16;
/// The most audiences one trusted issuer accepts.
pub const MAX_AUDIENCES: usize = 16;
/// The longest issuer, audience, URL, claim name or pattern, in bytes.
pub const MAX_FIELD_BYTES: usize = 512;
/// The longest token lifetime a rule may give, in seconds (a day).
pub const MAX_TTL_SECONDS: i64 = 86_400;

/// `PUT /v1/trusted-issuers/{id}`: an issuer whose JWTs (a Kubernetes
/// service account's token, a CI job's OIDC token) `POST /oauth/token`
/// exchanges for Latchkey tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutTrustedIssuer {
    /// The tokens' `iss`, compared exactly (for example
    /// `https://token.actions.githubusercontent.com`). One trusted issuer
    /// per `iss` in a mode.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 512))]
    pub issuer: String,
    /// Where its public keys are published (an http(s) URL), cached by
    /// `Cache-Control` and refetched at most once per 10 s for an unknown
    /// `kid`. Exactly one of `jwksUri` and `jwks`.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub jwks_uri: Option<String>,
    /// Its public keys, given once (a cluster whose API server cannot be
    /// reached): a JWKS object `{keys: [...]}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub jwks: Option<serde_json::Value>,
    /// The `aud` values accepted: a token must name at least one. Give each
    /// mode its own (its issuer URL, say).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 16))]
    pub audiences: Vec<String>,
    /// Tried in order; the first whose every condition holds maps the
    /// token. A token no rule matches gets `invalid_grant`.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 64))]
    pub rules: Vec<WorkloadRule>,
}

/// One mapping from a workload's claims to a Latchkey user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRule {
    /// Claim name → glob (`*` any run of characters, `?` one, `\` quotes
    /// the next). A name with dots reaches into objects
    /// (`kubernetes.io.namespace`); an array claim matches when one element
    /// does. 1 to 16 conditions: a rule never matches every token by
    /// accident (write `{"sub": "*"}` to mean it).
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub when: BTreeMap<String, String>,
    /// The user the token is issued to. Exactly one of `userId` and
    /// `provision`.
    pub user_id: Option<UserId>,
    /// Create a user for each distinct subject on its first exchange
    /// (its id derived from the issuer and `sub`, so every node agrees).
    pub provision: Option<Provision>,
    /// Fixes the token's tenant (required with `provision`, which makes the
    /// user a member there).
    pub tenant_id: Option<TenantId>,
    /// Bound the roles in that tenant, like an API key's: never more than
    /// the user holds (a provisioned user holds exactly these).
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub roles: Option<Vec<RoleName>>,
    /// The lifetime of the tokens issued, 60 to 86400 s (default: the
    /// user's, else the server's).
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86400))]
    pub ttl_seconds: Option<i64>,
}

/// How a rule creates users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provision {
    /// `machine` (default) or `human`.
    pub kind: Option<UserKind>,
}

impl TrustedIssuer {
    /// Its configuration, as it was put.
    pub fn config(&self) -> PutTrustedIssuer {
        PutTrustedIssuer {
            issuer: self.issuer.clone(),
            jwks_uri: self.jwks_uri.clone(),
            jwks: self.jwks.clone(),
            audiences: self.audiences.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// A trusted issuer as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrustedIssuer {
    /// Its id.
    pub id: TrustedIssuerId,
    /// Its mode.
    pub mode: Mode,
    /// The tokens' `iss`.
    pub issuer: String,
    /// Where its keys are fetched from, when they are.
    pub jwks_uri: Option<String>,
    /// Its keys, when given once.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub jwks: Option<serde_json::Value>,
    /// The `aud` values accepted.
    pub audiences: Vec<String>,
    /// The rules, in order.
    pub rules: Vec<WorkloadRule>,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: time::OffsetDateTime,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: time::OffsetDateTime,
}

/// What kind of identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// OpenID Connect: discovery from `issuer`, the code flow with PKCE,
    /// an ID token.
    Oidc,
    /// Plain OAuth 2.0 (social logins without OpenID Connect): the code
    /// flow with PKCE, then the userinfo endpoint.
    Oauth2,
    /// SAML 2.0, Latchkey as service provider.
    Saml,
}

/// How a provider's identity finds its Latchkey user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LinkBy {
    /// By the provider's subject, once linked (default).
    #[default]
    Subject,
    /// By email address, only when the provider says it is verified.
    Email,
}

/// Whether and how a provider creates users who are not linked yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsoProvisioning {
    /// Create a user for an identity that finds none (default `false`).
    pub enabled: bool,
    /// The tenant new users join (with `roles`).
    pub tenant_id: Option<TenantId>,
    /// Their roles there.
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub roles: Option<Vec<RoleName>>,
    /// `human` (default) or `machine`.
    pub kind: Option<UserKind>,
}

/// `PUT /v1/identity-providers/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutIdentityProvider {
    /// `oidc`, `oauth2` or `saml`.
    #[serde(rename = "type")]
    pub kind: Option<ProviderType>,
    /// OpenID Connect: the issuer, discovered at
    /// `{issuer}/.well-known/openid-configuration`.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub issuer: Option<String>,
    /// OAuth 2.0: where the browser is sent.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub authorization_url: Option<String>,
    /// OAuth 2.0: where the code is exchanged.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub token_url: Option<String>,
    /// OAuth 2.0: where the user's claims are read.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub userinfo_url: Option<String>,
    /// The client id registered at the provider.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub client_id: Option<String>,
    /// The client secret registered at the provider: sealed at rest, never
    /// shown again. Left out of a replacement, the stored one is kept.
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub client_secret: Option<String>,
    /// Scopes asked for (default `openid email profile` for OIDC, none
    /// for OAuth 2.0).
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub scopes: Option<Vec<String>>,
    /// SAML: the IdP's metadata document (at most 32 KiB: the whole body
    /// is limited to 64 KiB).
    #[cfg_attr(feature = "openapi", schema(max_length = 32768))]
    pub metadata_xml: Option<String>,
    /// SAML: the IdP's entity id (without `metadataXml`).
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub entity_id: Option<String>,
    /// SAML: the IdP's single sign-on URL (redirect binding).
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub sso_url: Option<String>,
    /// SAML: the IdP's signing certificates (PEM, one or more
    /// `CERTIFICATE` blocks, at most 4: old and new during a rollover).
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub certificate_pem: Option<String>,
    /// SAML: accept RSA-SHA1 signatures and SHA-1 digests (default
    /// `false`; only for an IdP that can do nothing better).
    pub allow_sha1: Option<bool>,
    /// SAML: the clock skew allowed on `NotBefore`/`NotOnOrAfter`, in
    /// seconds (default 60, at most 600).
    #[cfg_attr(feature = "openapi", schema(maximum = 600))]
    pub clock_skew_seconds: Option<u32>,
    /// Where each of `subject`, `email`, `emailVerified` and `name` is read
    /// from in the provider's claims (defaults: `sub`, `email`,
    /// `email_verified`, `name`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, String>>))]
    pub claim_mapping: Option<BTreeMap<String, String>>,
    /// `subject` (default) or `email` (only when the provider says the
    /// address is verified).
    pub link_by: Option<LinkBy>,
    /// Create users the provider vouches for and nobody links to.
    pub provisioning: Option<SsoProvisioning>,
    /// Count the provider's own multi-factor login (`amr` naming a second
    /// factor, or `mfa`) as this login's `totp` (default `false`).
    pub trust_upstream_mfa: Option<bool>,
}

/// An identity provider as the API answers it: never its client secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct IdentityProvider {
    /// Its id (the factor `sso:<id>`).
    pub id: crate::ids::ProviderId,
    /// Its mode.
    pub mode: Mode,
    /// `oidc`, `oauth2` or `saml`.
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// OIDC issuer.
    pub issuer: Option<String>,
    /// OAuth 2.0 endpoints.
    pub authorization_url: Option<String>,
    /// OAuth 2.0 token endpoint.
    pub token_url: Option<String>,
    /// OAuth 2.0 userinfo endpoint.
    pub userinfo_url: Option<String>,
    /// The client id at the provider.
    pub client_id: Option<String>,
    /// Whether a client secret is stored.
    pub client_secret_set: bool,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Claim names read.
    pub claim_mapping: BTreeMap<String, String>,
    /// How identities find users.
    pub link_by: LinkBy,
    /// How users are created.
    pub provisioning: SsoProvisioning,
    /// Whether the provider's MFA counts.
    pub trust_upstream_mfa: bool,
    /// OIDC/OAuth 2.0: the redirect URI to register at the provider.
    pub callback_url: Option<String>,
    /// SAML: the IdP's entity id.
    pub entity_id: Option<String>,
    /// SAML: the IdP's single sign-on URL.
    pub sso_url: Option<String>,
    /// SAML: whether SHA-1 signatures are accepted.
    #[serde(default)]
    pub allow_sha1: bool,
    /// SAML: the clock skew allowed, in seconds.
    pub clock_skew_seconds: Option<u32>,
    /// SAML: this service provider's metadata (its URL is also its entity
    /// id).
    pub metadata_url: Option<String>,
    /// SAML: the assertion consumer service (POST binding).
    pub acs_url: Option<String>,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: time::OffsetDateTime,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: time::OffsetDateTime,
}

/// `POST /auth/logins/{id}/sso/{providerId}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartSso {
    /// Given back to the login's `redirectUri` with `login_id`, for the
    /// application to tie the return to its request.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub state: Option<String>,
}

/// Where to send the browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SsoRedirect {
    /// The provider's authorization URL, with state, nonce and PKCE.
    pub authorization_url: String,
}
