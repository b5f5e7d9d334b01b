//! Login flows: the factors a login can satisfy, named the same in policies,
//! login objects and the API paths.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{Identifier, ProviderId};

/// The prefix of an SSO factor's name: `sso:<providerId>`.
pub const SSO_PREFIX: &str = "sso:";

/// One way of proving who you are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Factor {
    /// A password (Argon2id).
    Password,
    /// A 6-digit code sent by email.
    EmailCode,
    /// A 6-digit code sent by SMS.
    SmsCode,
    /// A link sent by email, consumed by a POST.
    MagicLink,
    /// An RFC 6238 authenticator code.
    Totp,
    /// One of the user's single-use backup codes; it stands in for `totp`.
    BackupCode,
    /// A login at an identity provider (Federation), by its id.
    Sso(String),
}

/// Why a factor name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown factor {0:?}: one of password, email_code, sms_code, magic_link, totp, backup_code, sso:<providerId>")]
pub struct UnknownFactor(pub String);

impl Factor {
    /// Every factor that is not an SSO provider, in a stable order.
    pub const BUILT_IN: [Factor; 6] = [
        Factor::Password,
        Factor::EmailCode,
        Factor::SmsCode,
        Factor::MagicLink,
        Factor::Totp,
        Factor::BackupCode,
    ];

    /// The name used in policies and login objects.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Factor::Password => "password".into(),
            Factor::EmailCode => "email_code".into(),
            Factor::SmsCode => "sms_code".into(),
            Factor::MagicLink => "magic_link".into(),
            Factor::Totp => "totp".into(),
            Factor::BackupCode => "backup_code".into(),
            Factor::Sso(id) => format!("{SSO_PREFIX}{id}").into(),
        }
    }

    /// The path segment of its step: `/auth/logins/{id}/<step>`.
    pub fn step(&self) -> Option<&'static str> {
        match self {
            Factor::Password => Some("password"),
            Factor::EmailCode => Some("email-code"),
            Factor::SmsCode => Some("sms-code"),
            Factor::MagicLink => Some("magic-link"),
            Factor::Totp => Some("totp"),
            Factor::BackupCode => Some("backup-code"),
            Factor::Sso(_) => None,
        }
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Factor {
    type Err = UnknownFactor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(found) = Factor::BUILT_IN.iter().find(|f| f.name() == s) {
            return Ok(found.clone());
        }
        match s.strip_prefix(SSO_PREFIX) {
            Some(id) if ProviderId::is_valid(id) => Ok(Factor::Sso(id.to_owned())),
            _ => Err(UnknownFactor(s.chars().take(80).collect())),
        }
    }
}

impl Serialize for Factor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Factor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(format!(
                "^(password|email_code|sms_code|magic_link|totp|backup_code|sso:{})$",
                ProviderId::SHAPE
                    .pattern()
                    .trim_start_matches('^')
                    .trim_end_matches('$')
            )))
            .description(Some("A login factor."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Factor {}

/// A tenant's login policy as stored and answered: every field set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginPolicy {
    /// The factors a login may use.
    pub factors: Vec<Factor>,
    /// The combinations, any one of which completes a login.
    pub require: Vec<Vec<Factor>>,
    /// A session's absolute lifetime, seconds.
    pub session_lifetime_seconds: i64,
    /// A session ends after this long without a refresh, seconds.
    pub idle_timeout_seconds: i64,
    /// The shortest password accepted when one is set.
    pub password_min_length: i64,
    /// Whether a user who enrolled TOTP must also pass it.
    pub require_enrolled_factors: bool,
    /// Whether a session may create API keys (`POST /v1/me/api-keys`).
    pub self_service_api_keys: bool,
    /// Where a login's browser may be sent back (`redirectUri`), exactly.
    #[serde(default)]
    pub allowed_redirect_uris: Vec<String>,
}

/// `PUT /v1/tenants/{id}/login-policy`: fields left out take the
/// workspace default of the contract.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutLoginPolicy {
    /// The factors a login may use (default: every built-in factor).
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub factors: Option<Vec<Factor>>,
    /// The combinations, any one of which completes a login (default:
    /// `[["password"], ["email_code"], ["magic_link"]]`). Each combination
    /// names 1 to 4 factors, each allowed by `factors`; `backup_code`
    /// stands in for `totp` and is not required itself.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 16))]
    pub require: Option<Vec<Vec<Factor>>>,
    /// Default 2592000 (30 days); 300 to 31536000.
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 300, maximum = 31536000))]
    pub session_lifetime_seconds: Option<i64>,
    /// Default 604800 (7 days); 300 to the lifetime.
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 300, maximum = 31536000))]
    pub idle_timeout_seconds: Option<i64>,
    /// Default 12; 8 to 64.
    #[serde(default, deserialize_with = "crate::whole::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 8, maximum = 64))]
    pub password_min_length: Option<i64>,
    /// Default `true`.
    pub require_enrolled_factors: Option<bool>,
    /// Default `false`.
    pub self_service_api_keys: Option<bool>,
    /// The `redirectUri`s a login may name, compared exactly: absolute
    /// http(s) URLs without a fragment (default none).
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub allowed_redirect_uris: Option<Vec<String>>,
}

/// `GET /v1/tenants/{id}/login-policy`: the policy in force and where it
/// comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EffectiveLoginPolicy {
    /// The tenant asked about.
    pub tenant_id: String,
    /// The tenant whose policy this is (itself or the nearest ancestor
    /// above it while cascading); `null` for the built-in default.
    pub source_tenant_id: Option<String>,
    /// `tenant` (set on `sourceTenantId`) or `default`.
    pub source: String,
    /// The policy.
    pub policy: LoginPolicy,
}

/// `POST /auth/logins`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateLogin {
    /// `test` (default) or `live` (needs TLS).
    pub mode: Option<crate::Mode>,
    /// An email, username, phone number or user id.
    #[cfg_attr(feature = "openapi", schema(max_length = 320))]
    pub identifier: Option<String>,
    /// The tenant the session is for (default: the workspace).
    pub tenant_id: Option<String>,
    /// Where a browser goes when the login completes (hosted pages).
    #[cfg_attr(feature = "openapi", schema(max_length = 2048))]
    pub redirect_uri: Option<String>,
    /// Start with this identity provider's factor (`sso:<id>`): the answer
    /// carries its `authorizationUrl`. Usually without `identifier`: the
    /// provider says who signs in.
    pub sso: Option<crate::ids::ProviderId>,
    /// With `sso`: given back to `redirectUri` with `login_id`.
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub state: Option<String>,
}

/// A login in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoginObject {
    /// `lgn_…`.
    pub id: String,
    /// Present once, in the answer that created the login: every later
    /// call on it sends `Authorization: Bearer <secret>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `test` or `live`.
    pub mode: crate::Mode,
    /// The tenant the session will be for.
    pub tenant_id: String,
    /// When the login dies.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    /// The factors that can be passed next.
    pub factors: Vec<Factor>,
    /// The factors passed.
    pub satisfied: Vec<Factor>,
    /// For each combination still open, the factors it still needs.
    pub remaining: Vec<Vec<Factor>>,
    /// Whether a combination is met.
    pub complete: bool,
    /// The session, once: in the first answer after completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTokens>,
    /// Where to send the browser, for a login started with `sso`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
}

/// The tokens of a new session (or of a refresh).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionTokens {
    /// `ses_…`.
    pub id: String,
    /// The access token (with `sid`, `amr`, `auth_time`).
    pub access_token: String,
    /// `lk_<mode>_refresh_…`, for `grant_type=refresh_token`.
    pub refresh_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// The access token's lifetime, seconds.
    pub expires_in: i64,
}

impl fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTokens")
            .field("id", &self.id)
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// `POST /auth/logins/{id}/password`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordStep {
    /// The password.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub password: String,
}

/// `POST /auth/logins/{id}/totp` and `/backup-code`; with a code, the
/// email and SMS steps check it, without one they send one.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeStep {
    /// The code.
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub code: Option<String>,
}

macro_rules! redacted_debug {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($ty), "([redacted])"))
            }
        }
    )*};
}
redacted_debug!(
    PasswordStep,
    CodeStep,
    SetPassword,
    ChangePassword,
    Logout,
    TotpEnrolment,
    BackupCodes
);

/// A session, as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `ses_…`.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The tenant its tokens are scoped to.
    pub tenant_id: String,
    /// The factors its login passed.
    pub factors: Vec<Factor>,
    /// When its login completed.
    #[serde(with = "time::serde::rfc3339")]
    pub authenticated_at: time::OffsetDateTime,
    /// Last refresh (or creation).
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: time::OffsetDateTime,
    /// When it ends at the latest (absolute lifetime).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    /// When it ends without a refresh (idle timeout).
    #[serde(with = "time::serde::rfc3339")]
    pub idle_expires_at: time::OffsetDateTime,
}

/// `PUT /v1/users/{id}/password` (admin).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPassword {
    /// The new password (checked against the workspace policy's length
    /// and the common-password list).
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub password: String,
}

/// `PUT /v1/me/password`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePassword {
    /// The password now.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub current_password: String,
    /// The new one.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub new_password: String,
}

/// `POST /auth/logout` without a Bearer access token.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logout {
    /// The session's refresh token.
    pub refresh_token: Option<String>,
}

/// `POST /v1/me/totp`: a TOTP secret to confirm.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator.
    pub secret: String,
    /// `otpauth://totp/…`.
    pub otpauth_uri: String,
    /// The URI as a QR code, SVG.
    pub qr_code_svg: String,
}

/// Ten single-use backup codes, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BackupCodes {
    /// `xxxx-xxxx`, each usable once where `totp` is asked.
    pub backup_codes: Vec<String>,
}

/// `POST /v1/me/api-keys`: an API key of the session's user, never
/// broader than the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOwnApiKey {
    /// Label.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::ShortText>))]
    pub name: Option<String>,
    /// The session's tenant (default) or a tenant below it.
    pub tenant_id: Option<String>,
    /// Narrows the key to these roles, each held in its tenant.
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub roles: Option<Vec<crate::ids::RoleName>>,
    /// When the key stops working: in the future, and not after the
    /// session's end (the default).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The user.
    pub user: crate::admin::User,
    /// The session the token belongs to.
    pub session: Session,
    /// The factors the user has set up.
    pub factors: EnrolledFactors,
}

/// What a user has set up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EnrolledFactors {
    /// A password is set.
    pub password: bool,
    /// TOTP is confirmed.
    pub totp: bool,
    /// Unused backup codes left.
    pub backup_codes_left: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialize_as_strings() {
        let mut all = Factor::BUILT_IN.to_vec();
        all.push(Factor::Sso("github".into()));
        for f in all {
            assert_eq!(f.name().parse::<Factor>(), Ok(f.clone()));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
            assert_eq!(serde_json::from_str::<Factor>(&json).unwrap(), f);
        }
    }

    #[test]
    fn unknown_names_and_bad_provider_ids_are_refused() {
        for bad in [
            "",
            "Password",
            "pwd",
            "sso:",
            "sso:UPPER",
            "sso:-x",
            "sso:a b",
            &format!("sso:{}", "a".repeat(64)),
        ] {
            assert!(bad.parse::<Factor>().is_err(), "{bad}");
            assert!(serde_json::from_str::<Factor>(&format!("{bad:?}")).is_err());
        }
        assert!(format!("sso:{}", "a".repeat(63)).parse::<Factor>().is_ok());
    }
}
