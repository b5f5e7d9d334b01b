//! Login policies, and how they cascade down the tenant tree.
//!
//! A policy is a set of allowed factors and a list of combinations, any one
//! of which completes a login. A tenant without a policy of its own takes
//! its nearest ancestor's, the way roles cascade; a `cascade: false` tenant
//! is a boundary: without a policy of its own it takes the built-in default,
//! never one from above it.

use std::collections::{BTreeSet, HashMap};

use latchkey_types::login::{Factor, LoginPolicy, PutLoginPolicy};

use crate::rbac::TenantTree;

/// Thirty days.
pub const DEFAULT_SESSION_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;
/// Seven days.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: i64 = 7 * 24 * 3600;
/// The default minimum password length.
pub const DEFAULT_PASSWORD_MIN_LENGTH: usize = 12;
/// No policy may ask for passwords shorter than this.
pub const MIN_PASSWORD_MIN_LENGTH: usize = 8;
/// Nor longer than this (the longest password accepted is longer still).
pub const MAX_PASSWORD_MIN_LENGTH: usize = 64;
/// The most combinations a policy may list.
pub const MAX_COMBINATIONS: usize = 16;
/// The most factors a policy may list (repeats counted, as sent).
pub const MAX_FACTORS: usize = 64;
/// The most factors one combination may ask for.
pub const MAX_COMBINATION_LEN: usize = 4;
/// The most redirect URIs a policy may list.
pub const MAX_REDIRECT_URIS: usize = 20;

/// Whether `uri` can be a login's `redirectUri`: an absolute http(s) URL
/// of at most 2048 characters, with a host, without a fragment, spaces or
/// control characters.
pub fn is_redirect_uri(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"));
    let host_present = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    host_present
        && uri.chars().count() <= 2048
        && !uri.contains('#')
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Session lifetimes, idle timeouts: between five minutes and a year.
pub const LIFETIME_RANGE: std::ops::RangeInclusive<i64> = 300..=365 * 24 * 3600;

/// A tenant's login policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The factors a login may use.
    pub factors: BTreeSet<Factor>,
    /// The combinations, any one of which completes a login.
    pub require: Vec<BTreeSet<Factor>>,
    /// A session's absolute lifetime.
    pub session_lifetime_seconds: i64,
    /// A session ends after this long without a refresh.
    pub idle_timeout_seconds: i64,
    /// The shortest password accepted when one is set.
    pub password_min_length: usize,
    /// Whether a user who enrolled TOTP must also pass it, whatever the
    /// combination.
    pub require_enrolled_factors: bool,
    /// Whether a session may create API keys (`POST /v1/me/api-keys`).
    pub self_service_api_keys: bool,
    /// The `redirectUri`s a login may name, compared exactly.
    pub allowed_redirect_uris: Vec<String>,
}

impl Default for Policy {
    /// The workspace default of the contract.
    fn default() -> Self {
        Policy {
            factors: Factor::BUILT_IN.into_iter().collect(),
            require: vec![
                BTreeSet::from([Factor::Password]),
                BTreeSet::from([Factor::EmailCode]),
                BTreeSet::from([Factor::MagicLink]),
            ],
            session_lifetime_seconds: DEFAULT_SESSION_LIFETIME_SECONDS,
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
            password_min_length: DEFAULT_PASSWORD_MIN_LENGTH,
            require_enrolled_factors: true,
            self_service_api_keys: false,
            allowed_redirect_uris: Vec::new(),
        }
    }
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No combination at all.
    #[error("require must list at least one combination")]
    NoCombination,
    /// Too many factors listed.
    #[error("factors lists at most {MAX_FACTORS} entries")]
    TooManyFactors,
    /// Too many combinations.
    #[error("require lists at most {MAX_COMBINATIONS} combinations")]
    TooManyCombinations,
    /// An empty or too long combination.
    #[error("each combination names 1 to {MAX_COMBINATION_LEN} factors")]
    CombinationSize,
    /// A combination names a factor the policy does not allow.
    #[error("the combination {0:?} names {1}, which factors does not allow")]
    NotAllowed(Vec<String>, String),
    /// `backup_code` stands in for `totp`; it cannot be asked for alone.
    #[error("backup_code stands in for totp and cannot be required itself; require totp")]
    BackupCodeRequired,
    /// A combination repeats another.
    #[error("the combination {0:?} is listed twice")]
    Duplicate(Vec<String>),
    /// Lifetime out of range.
    #[error("{0} must be between 300 and 31536000 seconds")]
    Lifetime(&'static str),
    /// The idle timeout is longer than the lifetime.
    #[error("idleTimeoutSeconds must not exceed sessionLifetimeSeconds")]
    IdleOverLifetime,
    /// A redirect URI that is not an absolute http(s) URL without a
    /// fragment, or too many of them.
    #[error("allowedRedirectUris holds at most {MAX_REDIRECT_URIS} absolute http(s) URLs of at most 2048 characters, without a fragment: {0:?}")]
    RedirectUri(String),
    /// Password length out of range.
    #[error(
        "passwordMinLength must be between {MIN_PASSWORD_MIN_LENGTH} and {MAX_PASSWORD_MIN_LENGTH}"
    )]
    PasswordLength,
}

fn names(set: &BTreeSet<Factor>) -> Vec<String> {
    set.iter().map(|f| f.name().into_owned()).collect()
}

impl Policy {
    /// Checks a policy before it is stored.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.require.is_empty() {
            return Err(PolicyError::NoCombination);
        }
        if self.require.len() > MAX_COMBINATIONS {
            return Err(PolicyError::TooManyCombinations);
        }
        for (i, combination) in self.require.iter().enumerate() {
            if combination.is_empty() || combination.len() > MAX_COMBINATION_LEN {
                return Err(PolicyError::CombinationSize);
            }
            if combination.contains(&Factor::BackupCode) {
                return Err(PolicyError::BackupCodeRequired);
            }
            if let Some(f) = combination.iter().find(|f| !self.factors.contains(f)) {
                return Err(PolicyError::NotAllowed(names(combination), f.name().into()));
            }
            if self.require[..i].contains(combination) {
                return Err(PolicyError::Duplicate(names(combination)));
            }
        }
        for (name, value) in [
            ("sessionLifetimeSeconds", self.session_lifetime_seconds),
            ("idleTimeoutSeconds", self.idle_timeout_seconds),
        ] {
            if !LIFETIME_RANGE.contains(&value) {
                return Err(PolicyError::Lifetime(name));
            }
        }
        if self.idle_timeout_seconds > self.session_lifetime_seconds {
            return Err(PolicyError::IdleOverLifetime);
        }
        if self.allowed_redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(PolicyError::RedirectUri(format!(
                "{} listed",
                self.allowed_redirect_uris.len()
            )));
        }
        if let Some(bad) = self
            .allowed_redirect_uris
            .iter()
            .find(|u| !is_redirect_uri(u))
        {
            return Err(PolicyError::RedirectUri(bad.chars().take(100).collect()));
        }
        if !(MIN_PASSWORD_MIN_LENGTH..=MAX_PASSWORD_MIN_LENGTH).contains(&self.password_min_length)
        {
            return Err(PolicyError::PasswordLength);
        }
        Ok(())
    }
}

impl Policy {
    /// The policy a `PUT` asks for: fields left out take the default,
    /// and the whole is checked.
    pub fn from_put(put: &PutLoginPolicy) -> Result<Policy, PolicyError> {
        let default = Policy::default();
        // Counted as sent: repeats collapse into a set below.
        if put.factors.as_ref().is_some_and(|f| f.len() > MAX_FACTORS) {
            return Err(PolicyError::TooManyFactors);
        }
        if let Some(require) = &put.require {
            if require.len() > MAX_COMBINATIONS {
                return Err(PolicyError::TooManyCombinations);
            }
            if require.iter().any(|c| c.len() > MAX_COMBINATION_LEN) {
                return Err(PolicyError::CombinationSize);
            }
        }
        let password_min_length = match put.password_min_length {
            Some(n) => usize::try_from(n).map_err(|_| PolicyError::PasswordLength)?,
            None => default.password_min_length,
        };
        let policy = Policy {
            factors: put
                .factors
                .as_ref()
                .map(|f| f.iter().cloned().collect())
                .unwrap_or(default.factors),
            require: put
                .require
                .as_ref()
                .map(|r| r.iter().map(|c| c.iter().cloned().collect()).collect())
                .unwrap_or(default.require),
            session_lifetime_seconds: put
                .session_lifetime_seconds
                .unwrap_or(default.session_lifetime_seconds),
            idle_timeout_seconds: put
                .idle_timeout_seconds
                .unwrap_or(default.idle_timeout_seconds),
            password_min_length,
            require_enrolled_factors: put
                .require_enrolled_factors
                .unwrap_or(default.require_enrolled_factors),
            self_service_api_keys: put
                .self_service_api_keys
                .unwrap_or(default.self_service_api_keys),
            allowed_redirect_uris: put.allowed_redirect_uris.clone().unwrap_or_default(),
        };
        if let Some(require) = &put.require {
            // A combination naming a factor twice is a mistake, not a set.
            if require
                .iter()
                .any(|c| c.iter().collect::<BTreeSet<_>>().len() != c.len())
            {
                return Err(PolicyError::CombinationSize);
            }
        }
        policy.validate()?;
        Ok(policy)
    }

    /// The policy as stored and answered.
    pub fn to_wire(&self) -> LoginPolicy {
        LoginPolicy {
            factors: self.factors.iter().cloned().collect(),
            require: self
                .require
                .iter()
                .map(|c| c.iter().cloned().collect())
                .collect(),
            session_lifetime_seconds: self.session_lifetime_seconds,
            idle_timeout_seconds: self.idle_timeout_seconds,
            password_min_length: self.password_min_length as i64,
            require_enrolled_factors: self.require_enrolled_factors,
            self_service_api_keys: self.self_service_api_keys,
            allowed_redirect_uris: self.allowed_redirect_uris.clone(),
        }
    }

    /// A stored policy (written by [`Policy::to_wire`] after
    /// [`Policy::from_put`]).
    pub fn from_wire(wire: &LoginPolicy) -> Policy {
        Policy {
            factors: wire.factors.iter().cloned().collect(),
            require: wire
                .require
                .iter()
                .map(|c| c.iter().cloned().collect())
                .collect(),
            session_lifetime_seconds: wire.session_lifetime_seconds,
            idle_timeout_seconds: wire.idle_timeout_seconds,
            password_min_length: usize::try_from(wire.password_min_length)
                .unwrap_or(DEFAULT_PASSWORD_MIN_LENGTH),
            require_enrolled_factors: wire.require_enrolled_factors,
            self_service_api_keys: wire.self_service_api_keys,
            allowed_redirect_uris: wire.allowed_redirect_uris.clone(),
        }
    }
}

/// Where a tenant's effective policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The policy set on this tenant (itself or an ancestor).
    Tenant(String),
    /// No tenant on the way has one: the built-in default.
    Default,
}

/// The policy in force in `tenant`: its own, else its nearest ancestor's
/// while the chain cascades, else the built-in default. A `cascade: false`
/// tenant's own policy counts; nothing above it does.
pub fn effective<'a>(
    tree: &TenantTree,
    policies: &'a HashMap<String, Policy>,
    tenant: &str,
) -> (std::borrow::Cow<'a, Policy>, PolicySource) {
    let mut current = tenant.to_owned();
    for _ in 0..=tree.len() {
        if let Some(policy) = policies.get(&current) {
            return (
                std::borrow::Cow::Borrowed(policy),
                PolicySource::Tenant(current),
            );
        }
        let Some(node) = tree.get(&current) else {
            break;
        };
        if !node.cascade {
            break;
        }
        match &node.parent {
            Some(parent) => current = parent.clone(),
            None => break,
        }
    }
    (
        std::borrow::Cow::Owned(Policy::default()),
        PolicySource::Default,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> TenantTree {
        // ws ─ a ─ b (boundary) ─ c
        //    └ d (boundary)
        TenantTree::new([
            ("ws".to_owned(), None, true),
            ("a".to_owned(), Some("ws".to_owned()), true),
            ("b".to_owned(), Some("a".to_owned()), false),
            ("c".to_owned(), Some("b".to_owned()), true),
            ("d".to_owned(), Some("ws".to_owned()), false),
        ])
    }

    fn only(f: Factor) -> Policy {
        Policy {
            require: vec![BTreeSet::from([f])],
            ..Policy::default()
        }
    }

    #[test]
    fn a_put_takes_defaults_for_what_it_leaves_out_and_round_trips() {
        let empty = Policy::from_put(&PutLoginPolicy::default()).unwrap();
        assert_eq!(empty, Policy::default());
        let put: PutLoginPolicy = serde_json::from_value(serde_json::json!({
            "require": [["password", "totp"]],
            "passwordMinLength": 16,
        }))
        .unwrap();
        let p = Policy::from_put(&put).unwrap();
        assert_eq!(
            p.require,
            vec![BTreeSet::from([Factor::Password, Factor::Totp])]
        );
        assert_eq!(p.password_min_length, 16);
        assert_eq!(p.idle_timeout_seconds, DEFAULT_IDLE_TIMEOUT_SECONDS);
        assert_eq!(Policy::from_wire(&p.to_wire()), p);
        for (bad, why) in [
            (
                serde_json::json!({"require": [["password", "password"]]}),
                PolicyError::CombinationSize,
            ),
            (
                serde_json::json!({"passwordMinLength": -1}),
                PolicyError::PasswordLength,
            ),
            (
                serde_json::json!({"require": []}),
                PolicyError::NoCombination,
            ),
            (
                serde_json::json!({"factors": vec!["password"; 65]}),
                PolicyError::TooManyFactors,
            ),
            (
                serde_json::json!({"require": [vec!["password"; 5]]}),
                PolicyError::CombinationSize,
            ),
            (
                serde_json::json!({"factors": ["password"], "require": [["totp"]]}),
                PolicyError::NotAllowed(vec!["totp".into()], "totp".into()),
            ),
        ] {
            let put: PutLoginPolicy = serde_json::from_value(bad.clone()).unwrap();
            assert_eq!(Policy::from_put(&put), Err(why), "{bad}");
        }
    }

    #[test]
    fn the_effective_policy_cascades_and_stops_at_boundaries() {
        let tree = tree();
        let src = |t: &str| PolicySource::Tenant(t.to_owned());
        type Case<'a> = (&'a [(&'a str, Factor)], &'a str, PolicySource);
        let cases: &[Case] = &[
            // Nothing set anywhere: the default, everywhere.
            (&[], "c", PolicySource::Default),
            (&[], "ws", PolicySource::Default),
            // The workspace's flows down to a, not into the boundaries.
            (&[("ws", Factor::Totp)], "a", src("ws")),
            (&[("ws", Factor::Totp)], "b", PolicySource::Default),
            (&[("ws", Factor::Totp)], "c", PolicySource::Default),
            (&[("ws", Factor::Totp)], "d", PolicySource::Default),
            // A boundary's own policy holds there and below it.
            (
                &[("ws", Factor::Totp), ("b", Factor::EmailCode)],
                "b",
                src("b"),
            ),
            (
                &[("ws", Factor::Totp), ("b", Factor::EmailCode)],
                "c",
                src("b"),
            ),
            // The nearest wins.
            (
                &[("ws", Factor::Totp), ("a", Factor::EmailCode)],
                "a",
                src("a"),
            ),
            (
                &[("c", Factor::Password), ("b", Factor::EmailCode)],
                "c",
                src("c"),
            ),
            // An unknown tenant only has its own.
            (&[("ws", Factor::Totp)], "zz", PolicySource::Default),
        ];
        for (set, tenant, expected) in cases {
            let policies: HashMap<String, Policy> = set
                .iter()
                .map(|(t, f)| ((*t).to_owned(), only(f.clone())))
                .collect();
            let (policy, source) = effective(&tree, &policies, tenant);
            assert_eq!(&source, expected, "{set:?} in {tenant}");
            match source {
                PolicySource::Tenant(t) => assert_eq!(*policy, policies[&t]),
                PolicySource::Default => assert_eq!(*policy, Policy::default()),
            }
        }
    }

    #[test]
    fn policies_are_checked() {
        let set = |r: &[&[Factor]]| Policy {
            require: r.iter().map(|c| c.iter().cloned().collect()).collect(),
            ..Policy::default()
        };
        use Factor::*;
        let cases: Vec<(Policy, Result<(), PolicyError>)> = vec![
            (Policy::default(), Ok(())),
            (
                set(&[&[Password, Totp], &[Sso("gh".into())]]),
                Err(PolicyError::NotAllowed(
                    vec!["sso:gh".into()],
                    "sso:gh".into(),
                )),
            ),
            (set(&[]), Err(PolicyError::NoCombination)),
            (set(&[&[]]), Err(PolicyError::CombinationSize)),
            (
                set(&[&[Password, Totp, EmailCode, SmsCode, MagicLink]]),
                Err(PolicyError::CombinationSize),
            ),
            (
                set(&[&[Password, BackupCode]]),
                Err(PolicyError::BackupCodeRequired),
            ),
            (
                set(&[&[Password], &[Password]]),
                Err(PolicyError::Duplicate(vec!["password".into()])),
            ),
            (
                Policy {
                    factors: BTreeSet::from([Password]),
                    ..set(&[&[Password, Totp]])
                },
                Err(PolicyError::NotAllowed(
                    vec!["password".into(), "totp".into()],
                    "totp".into(),
                )),
            ),
            (
                Policy {
                    session_lifetime_seconds: 299,
                    ..Policy::default()
                },
                Err(PolicyError::Lifetime("sessionLifetimeSeconds")),
            ),
            (
                Policy {
                    idle_timeout_seconds: 0,
                    ..Policy::default()
                },
                Err(PolicyError::Lifetime("idleTimeoutSeconds")),
            ),
            (
                Policy {
                    session_lifetime_seconds: 3600,
                    idle_timeout_seconds: 7200,
                    ..Policy::default()
                },
                Err(PolicyError::IdleOverLifetime),
            ),
            (
                Policy {
                    password_min_length: 7,
                    ..Policy::default()
                },
                Err(PolicyError::PasswordLength),
            ),
            (
                Policy {
                    password_min_length: 65,
                    ..Policy::default()
                },
                Err(PolicyError::PasswordLength),
            ),
            (
                Policy {
                    password_min_length: 8,
                    ..Policy::default()
                },
                Ok(()),
            ),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.validate(), expected, "{policy:?}");
        }
        let mut with_sso = set(&[&[Sso("gh".into()), Totp]]);
        with_sso.factors.insert(Sso("gh".into()));
        assert_eq!(with_sso.validate(), Ok(()));
    }
}
