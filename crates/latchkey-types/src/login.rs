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
