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
