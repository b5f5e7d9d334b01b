//! OAuth 2.0 shapes: token responses, access-token claims (RFC 9068 plus
//! Latchkey's Userfront-compatible claims), server metadata (RFC 8414) and
//! the JWKS (RFC 7517).

use serde::{Deserialize, Serialize};

use crate::admin::Authorization;
#[cfg(feature = "openapi")]
use crate::schema::{ScopeList, SigningAlgorithm};
use crate::{JsonObject, Mode, UserKind};

/// `POST /oauth/token` success (RFC 6749 §5.1).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// The granted scope, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The next refresh token of a session (refresh-token grant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `urn:ietf:params:oauth:token-type:access_token` (token exchange
    /// only, RFC 8693 §2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names this audience.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(list) => list.iter().any(|a| a == aud),
        }
    }
}

/// A JWS signature algorithm Latchkey signs and verifies with: one
/// definition for the server (which signs) and `latchkey-verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037), the default: fast and small.
    #[default]
    EdDSA,
    /// ECDSA P-256 with SHA-256 (fixed-size `r || s` signatures).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys when Latchkey makes
    /// them; 2048 to 8192 bits verified), for old verifiers.
    RS256,
}

impl Algorithm {
    /// Every algorithm, for metadata.
    pub const ALL: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

    /// The JOSE name (`EdDSA`, `ES256`, `RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Parses the JOSE name.
    pub fn parse(s: &str) -> Option<Self> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the claims of an access token ([`AccessTokenClaims`]): one
/// definition for the reserved list below and for `latchkey-verify`'s
/// one-pass claims reader (a test holds the serde names to them).
pub mod claim {
    /// Issuer.
    pub const ISS: &str = "iss";
    /// Subject (the user id).
    pub const SUB: &str = "sub";
    /// Audience(s).
    pub const AUD: &str = "aud";
    /// Expiry.
    pub const EXP: &str = "exp";
    /// Issue time.
    pub const IAT: &str = "iat";
    /// Not before.
    pub const NBF: &str = "nbf";
    /// Token id.
    pub const JTI: &str = "jti";
    /// The OAuth client (the user id).
    pub const CLIENT_ID: &str = "client_id";
    /// Granted scope.
    pub const SCOPE: &str = "scope";
    /// `test` or `live`.
    pub const MODE: &str = "mode";
    /// The token's tenant.
    pub const TENANT_ID: &str = "tenantId";
    /// The user id.
    pub const USER_ID: &str = "userId";
    /// Machine or human.
    pub const KIND: &str = "kind";
    /// Roles by tenant.
    pub const AUTHORIZATION: &str = "authorization";
    /// The authorization claim was cut to its budget.
    pub const AUTHORIZATION_TRUNCATED: &str = "authorizationTruncated";
    /// The session a login token belongs to (OpenID Connect).
    pub const SID: &str = "sid";
    /// How the session's user authenticated (RFC 8176 values).
    pub const AMR: &str = "amr";
    /// When the session's user authenticated, seconds since the epoch.
    pub const AUTH_TIME: &str = "auth_time";
    /// The external identity a token was exchanged for (RFC 8693 §4.1):
    /// `{iss, sub}` of the trusted issuer's token.
    pub const ACT: &str = "act";

    /// Every claim Latchkey sets, in the order of [`super::AccessTokenClaims`].
    pub const ALL: [&str; 19] = [
        ISS,
        SUB,
        AUD,
        EXP,
        IAT,
        NBF,
        JTI,
        CLIENT_ID,
        SCOPE,
        MODE,
        TENANT_ID,
        USER_ID,
        KIND,
        AUTHORIZATION,
        AUTHORIZATION_TRUNCATED,
        SID,
        AMR,
        AUTH_TIME,
        ACT,
    ];
}

/// The `grant_type`s the token endpoint takes, in the order metadata
/// lists them: client credentials (RFC 6749 §4.4), the JWT-bearer grant
/// (RFC 7523 §2.1) and a session's refresh token (RFC 6749 §6).
pub const GRANT_TYPES: [&str; 4] = [
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

/// Names of the claims Latchkey sets itself, and registered claims too
/// easy to misread if set freely (RFC 7519, RFC 9068, OpenID Connect):
/// custom claims may not use them.
pub const RESERVED_CLAIMS: &[&str] = &[
    claim::ISS,
    claim::SUB,
    claim::AUD,
    claim::EXP,
    claim::IAT,
    claim::NBF,
    claim::JTI,
    claim::CLIENT_ID,
    claim::SCOPE,
    claim::MODE,
    claim::TENANT_ID,
    claim::USER_ID,
    claim::KIND,
    claim::AUTHORIZATION,
    claim::AUTHORIZATION_TRUNCATED,
    claim::SID,
    claim::AMR,
    claim::AUTH_TIME,
    claim::ACT,
    "typ",
    "acr",
    "azp",
    "cnf",
    "may_act",
];

/// The claims of a Latchkey access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessTokenClaims {
    /// The issuer URL of the token's mode.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The audience(s).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Not-before, seconds since the epoch.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The OAuth client (the user id).
    pub client_id: String,
    /// Granted scope, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `test` or `live`.
    pub mode: Mode,
    /// The tenant the token is scoped to.
    #[serde(rename = "tenantId")]
    pub tenant_id: String,
    /// The user id (= `sub`).
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Machine or human.
    pub kind: UserKind,
    /// Roles effective in the token's tenant and its descendants, within
    /// the server's byte budget (nearest descendants first).
    pub authorization: Authorization,
    /// `true` when descendants where the user holds roles were left out of
    /// `authorization` to keep the token within its byte budget (absent
    /// otherwise). Missing entries only ever under-grant; a token scoped to
    /// a deeper tenant carries that tenant's entry.
    #[serde(
        rename = "authorizationTruncated",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub authorization_truncated: bool,
    /// The session, for tokens of a login's session (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// How the session's user authenticated, RFC 8176 values (sessions
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// When the session's user authenticated (sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The external identity this token was exchanged for (workload
    /// identity federation; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The user's custom claims.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom: JsonObject,
}

/// The `act` claim (RFC 8693 §4.1) of a token issued for another issuer's
/// token: who that token named, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// The trusted issuer (its `iss`).
    pub iss: String,
    /// The subject there (its `sub`).
    pub sub: String,
}

/// RFC 8414 authorization server metadata of one mode's issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerMetadata {
    /// The issuer URL: the configured URL for live, `{issuer}/test` for
    /// test.
    pub issuer: String,
    /// `POST` here for tokens (shared by both modes).
    pub token_endpoint: String,
    /// This mode's public signing keys (only this mode's).
    pub jwks_uri: String,
    /// RFC 7662 introspection.
    pub introspection_endpoint: String,
    /// RFC 7009 revocation.
    pub revocation_endpoint: String,
    /// Client authentication at the introspection endpoint (admin keys as
    /// bearer tokens are accepted too).
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Grant types the token endpoint accepts.
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Response types (none: there is no authorization endpoint yet).
    pub response_types_supported: Vec<String>,
    /// Signature algorithms of access tokens.
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// Algorithms accepted for `private_key_jwt` client assertions.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Where the API is described.
    pub service_documentation: String,
    /// Default access-token lifetime in seconds (Latchkey extension).
    pub latchkey_access_token_lifetime: i64,
}

/// One public key of the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jwk {
    /// `OKP`, `EC` or `RSA`.
    pub kty: String,
    /// Key id, as in the token header.
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Curve (`Ed25519`, `P-256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public point (OKP, EC), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Public point y (EC), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent, base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A mode's JWKS: `GET /.well-known/jwks.json` (live),
/// `GET /test/.well-known/jwks.json` (test).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwkSet {
    /// The published keys of the issuer's mode, and of no other.
    pub keys: Vec<Jwk>,
}

/// A signing key as `GET /v1/signing-keys` lists it (public half only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyInfo {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// Its mode.
    pub mode: Mode,
    /// `next` (published, not signing yet), `active`, `retired` (published
    /// while its tokens may live) or `removed`.
    pub status: String,
    /// Creation, which is also when it appeared in the JWKS.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When it starts (or started) signing.
    #[serde(with = "time::serde::rfc3339")]
    pub activates_at: time::OffsetDateTime,
    /// When it stops (or stopped) signing, once a successor exists.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retires_at: Option<time::OffsetDateTime>,
    /// When it leaves (or left) the JWKS.
    #[serde(with = "time::serde::rfc3339::option")]
    pub removed_at: Option<time::OffsetDateTime>,
    /// The public key.
    pub public_jwk: Jwk,
}

/// `POST /v1/signing-keys/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSigningKey {
    /// Algorithm of the new key (default: the current key's).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<SigningAlgorithm>))]
    pub alg: Option<String>,
    /// Sign with the new key at once instead of after the publish-ahead
    /// delay (verifiers with a cached JWKS may then meet an unknown `kid`).
    pub immediate: Option<bool>,
}

/// `POST /v1/tokens`: custom authentication, where your own system vouched
/// for the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// The user the token is for.
    pub user_id: String,
    /// The token's tenant (default: the workspace).
    pub tenant_id: Option<String>,
    /// The audience (default: the issuer).
    pub audience: Option<String>,
    /// Space-separated permissions, each granted by a role the user holds.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ScopeList>))]
    pub scope: Option<String>,
    /// Lifetime in seconds, at most the server's
    /// `custom_token_max_ttl_seconds` (the served document says this
    /// server's; the setting's ceiling is a day).
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
    pub ttl_seconds: Option<i64>,
    /// Extra claims, at most 8 KiB as JSON; reserved claim names are refused.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub claims: Option<JsonObject>,
}

/// `POST /v1/tokens` answer.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The granted scope, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde names of [`AccessTokenClaims`] are exactly [`claim::ALL`]
    /// (plus custom claims), every one reserved.
    #[test]
    fn claim_names_are_the_serde_names() {
        let mut custom = crate::JsonObject::new();
        custom.insert("region".into(), "eu".into());
        let claims = AccessTokenClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: Audience::One("a".into()),
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            client_id: "c".into(),
            scope: Some("x".into()),
            mode: crate::Mode::Test,
            tenant_id: "t".into(),
            user_id: "u".into(),
            kind: crate::UserKind::Machine,
            authorization: Default::default(),
            authorization_truncated: true,
            sid: Some("ses_1".into()),
            amr: Some(vec!["pwd".into()]),
            auth_time: Some(1),
            act: Some(Actor {
                iss: "https://k8s".into(),
                sub: "system:serviceaccount:a:b".into(),
            }),
            custom,
        };
        let serde_json::Value::Object(json) = serde_json::to_value(&claims).unwrap() else {
            panic!("not an object");
        };
        let mut names: Vec<&str> = json.keys().map(String::as_str).collect();
        names.retain(|n| *n != "region");
        names.sort_unstable();
        let mut all = claim::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(names, all);
        assert!(claim::ALL.iter().all(|c| RESERVED_CLAIMS.contains(c)));
    }
}
