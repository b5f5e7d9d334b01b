//! What a login offers, what it still needs, when it is complete and what
//! its token's `amr` says: pure rules over the policy, what the user has
//! enrolled and the factors satisfied so far.
//!
//! Until a first factor is passed, a login shows only what the policy says,
//! the same for every identifier, known or not: nobody learns who exists or
//! who enrolled what by starting logins. Once a factor proves who is
//! logging in, the login narrows to that user: combinations the user cannot
//! do leave, and with `requireEnrolledFactors` an enrolled TOTP joins every
//! combination. A combination that needs more than another open one is
//! dropped. `backup_code` stands in for `totp` wherever it is asked,
//! in any slot.

use std::collections::BTreeSet;

use latchkey_types::login::Factor;

use super::policy::Policy;

/// A login lives this long at most.
pub const LOGIN_TTL_SECONDS: i64 = 15 * 60;
/// A sent code or link lives this long.
pub const CODE_TTL_SECONDS: i64 = 10 * 60;
/// A code dies after this many wrong tries.
pub const MAX_CODE_TRIES: u32 = 5;
/// A login dies after this many failed steps.
pub const MAX_LOGIN_FAILURES: u32 = 10;

/// The factors a user can use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrolled {
    /// A password is set.
    pub password: bool,
    /// An email address is on record.
    pub email: bool,
    /// A phone number is on record.
    pub phone: bool,
    /// TOTP is confirmed.
    pub totp: bool,
    /// Unused backup codes remain.
    pub backup_codes: bool,
    /// Identity providers the user is linked to.
    pub sso: BTreeSet<String>,
}

impl Enrolled {
    /// Whether the user can pass this factor.
    pub fn can(&self, factor: &Factor) -> bool {
        match factor {
            Factor::Password => self.password,
            Factor::EmailCode | Factor::MagicLink => self.email,
            Factor::SmsCode => self.phone,
            Factor::Totp => self.totp,
            Factor::BackupCode => self.totp && self.backup_codes,
            // A provider can also create or link the user on the way in.
            Factor::Sso(_) => true,
        }
    }
}

/// What a login object shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginView {
    /// The factors that can be passed next.
    pub factors: BTreeSet<Factor>,
    /// For each combination still open, the factors it still needs.
    pub remaining: Vec<BTreeSet<Factor>>,
    /// Whether a combination is met.
    pub complete: bool,
}

/// Whether `factor` is satisfied: itself, or `totp` by a backup code.
fn passed(factor: &Factor, satisfied: &BTreeSet<Factor>) -> bool {
    satisfied.contains(factor)
        || (*factor == Factor::Totp && satisfied.contains(&Factor::BackupCode))
}

/// The combinations that apply: the policy's, and, once the user is known
/// (`enrolled` after a first factor), only those the user can do, each with
/// the enrolled TOTP when the policy asks for enrolled factors.
/// A factor already passed counts even when the user has not set it up
/// (an identity provider trusted for MFA stands in for `totp`).
fn combinations(
    policy: &Policy,
    enrolled: Option<&Enrolled>,
    satisfied: &BTreeSet<Factor>,
) -> Vec<BTreeSet<Factor>> {
    let mut out: Vec<BTreeSet<Factor>> = Vec::new();
    for combination in &policy.require {
        let mut combination = combination.clone();
        if let Some(user) = enrolled {
            if policy.require_enrolled_factors
                && user.totp
                && policy.factors.contains(&Factor::Totp)
            {
                combination.insert(Factor::Totp);
            }
            if !combination
                .iter()
                .all(|f| user.can(f) || passed(f, satisfied))
            {
                continue;
            }
        }
        if !out.contains(&combination) {
            out.push(combination);
        }
    }
    out
}

/// The login as it stands. `enrolled` is `None` while nobody is proven
/// (nothing satisfied yet, or an identifier that names nobody).
pub fn view(
    policy: &Policy,
    enrolled: Option<&Enrolled>,
    satisfied: &BTreeSet<Factor>,
) -> LoginView {
    let proven = enrolled.filter(|_| !satisfied.is_empty());
    let mut remaining: Vec<BTreeSet<Factor>> = Vec::new();
    let mut complete = false;
    for combination in combinations(policy, proven, satisfied) {
        let missing: BTreeSet<Factor> = combination
            .into_iter()
            .filter(|f| !passed(f, satisfied))
            .collect();
        if missing.is_empty() {
            complete = proven.is_some();
        } else if !remaining.contains(&missing) {
            remaining.push(missing);
        }
    }
    // A combination that needs everything another needs and more is no
    // shorter way in: after an email code, `[password, totp]` leaves when
    // `[totp]` is open.
    let open = remaining.clone();
    remaining.retain(|r| !open.iter().any(|o| o != r && o.is_subset(r)));
    if complete {
        return LoginView {
            factors: BTreeSet::new(),
            remaining: Vec::new(),
            complete,
        };
    }
    let mut factors: BTreeSet<Factor> = remaining.iter().flatten().cloned().collect();
    let backup_usable = proven.is_none_or(|u| u.can(&Factor::BackupCode));
    if factors.contains(&Factor::Totp)
        && backup_usable
        && policy.factors.contains(&Factor::BackupCode)
    {
        factors.insert(Factor::BackupCode);
    }
    LoginView {
        factors,
        remaining,
        complete,
    }
}

/// Whether a session whose login passed `satisfied` meets `policy` (a
/// re-scope to a tenant with another policy, RFC 9470).
pub fn meets(policy: &Policy, enrolled: &Enrolled, satisfied: &BTreeSet<Factor>) -> bool {
    view(policy, Some(enrolled), satisfied).complete
}

/// The RFC 8176 `amr` values of the satisfied factors, sorted, with `mfa`
/// when they span two kinds of proof (something known, an email inbox, a
/// phone, an authenticator, each identity provider).
pub fn amr(satisfied: &BTreeSet<Factor>) -> Vec<&'static str> {
    let mut values = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for factor in satisfied {
        let (value, kind) = match factor {
            Factor::Password => (Some("pwd"), "knowledge".to_owned()),
            Factor::EmailCode | Factor::MagicLink => (Some("otp"), "email".to_owned()),
            Factor::SmsCode => (Some("sms"), "phone".to_owned()),
            Factor::Totp | Factor::BackupCode => (Some("otp"), "authenticator".to_owned()),
            Factor::Sso(id) => (None, format!("sso:{id}")),
        };
        values.extend(value);
        kinds.insert(kind);
    }
    if kinds.len() >= 2 {
        values.insert("mfa");
    }
    values.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Factor::*;

    fn set(factors: &[Factor]) -> BTreeSet<Factor> {
        factors.iter().cloned().collect()
    }

    fn policy(require: &[&[Factor]]) -> Policy {
        let mut p = Policy {
            require: require.iter().map(|c| set(c)).collect(),
            ..Policy::default()
        };
        p.factors.insert(Sso("gh".into()));
        p
    }

    fn user(password: bool, totp: bool, phone: bool) -> Enrolled {
        Enrolled {
            password,
            email: true,
            phone,
            totp,
            backup_codes: totp,
            sso: BTreeSet::new(),
        }
    }

    struct Case {
        name: &'static str,
        policy: Policy,
        user: Option<Enrolled>,
        satisfied: &'static [Factor],
        factors: &'static [Factor],
        remaining: &'static [&'static [Factor]],
        complete: bool,
    }

    #[test]
    fn logins_offer_narrow_and_complete_as_the_policy_says() {
        let default = Policy::default();
        let cases = [
            Case {
                name: "default, nothing yet: the policy's three ways, the same for anyone",
                policy: default.clone(),
                user: Some(user(true, true, false)),
                satisfied: &[],
                factors: &[Password, EmailCode, MagicLink],
                remaining: &[&[Password], &[EmailCode], &[MagicLink]],
                complete: false,
            },
            Case {
                name: "an unknown identifier looks the same",
                policy: default.clone(),
                user: None,
                satisfied: &[],
                factors: &[Password, EmailCode, MagicLink],
                remaining: &[&[Password], &[EmailCode], &[MagicLink]],
                complete: false,
            },
            Case {
                name: "password alone completes for a user without TOTP",
                policy: default.clone(),
                user: Some(user(true, false, false)),
                satisfied: &[Password],
                factors: &[],
                remaining: &[],
                complete: true,
            },
            Case {
                name: "an enrolled TOTP joins every combination (Kratos #4285: also after a code)",
                policy: default.clone(),
                user: Some(user(true, true, false)),
                satisfied: &[EmailCode],
                factors: &[Totp, BackupCode],
                remaining: &[&[Totp]],
                complete: false,
            },
            Case {
                name: "a backup code stands in for TOTP",
                policy: default.clone(),
                user: Some(user(true, true, false)),
                satisfied: &[Password, BackupCode],
                factors: &[],
                remaining: &[],
                complete: true,
            },
            Case {
                name: "without requireEnrolledFactors, password alone completes",
                policy: Policy {
                    require_enrolled_factors: false,
                    ..default.clone()
                },
                user: Some(user(true, true, false)),
                satisfied: &[Password],
                factors: &[],
                remaining: &[],
                complete: true,
            },
            Case {
                name: "TOTP in the first slot (Kratos #2979), then password",
                policy: policy(&[&[Totp, Password]]),
                user: Some(user(true, true, false)),
                satisfied: &[Totp],
                factors: &[Password],
                remaining: &[&[Password]],
                complete: false,
            },
            Case {
                name: "combinations the user cannot do leave once the user is known",
                policy: policy(&[&[Password, SmsCode], &[Password, Totp], &[EmailCode]]),
                user: Some(user(true, true, false)),
                satisfied: &[Password],
                factors: &[Totp, BackupCode],
                remaining: &[&[Totp]],
                complete: false,
            },
            Case {
                name: "but not before: nothing about the user shows",
                policy: policy(&[&[Password, SmsCode], &[Password, Totp], &[EmailCode]]),
                user: Some(user(true, false, false)),
                satisfied: &[],
                factors: &[Password, EmailCode, SmsCode, Totp, BackupCode],
                remaining: &[&[Password, SmsCode], &[Password, Totp], &[EmailCode]],
                complete: false,
            },
            Case {
                name: "a user who can do no combination is stuck, not let in",
                policy: policy(&[&[Password, Totp]]),
                user: Some(user(true, false, false)),
                satisfied: &[Password],
                factors: &[],
                remaining: &[],
                complete: false,
            },
            Case {
                name: "an unproven login never completes, whatever is marked",
                policy: default.clone(),
                user: None,
                satisfied: &[Password],
                factors: &[EmailCode, MagicLink],
                remaining: &[&[EmailCode], &[MagicLink]],
                complete: false,
            },
        ];
        for case in cases {
            let satisfied = set(case.satisfied);
            let got = view(&case.policy, case.user.as_ref(), &satisfied);
            let expected = LoginView {
                factors: set(case.factors),
                remaining: case.remaining.iter().map(|c| set(c)).collect(),
                complete: case.complete,
            };
            assert_eq!(got, expected, "{}", case.name);
        }
    }

    #[test]
    fn sso_is_a_factor_like_any_other() {
        let gh = Sso("gh".into());
        let p = policy(&[&[gh.clone(), Totp]]);
        let u = user(false, true, false);
        let fresh = view(&p, Some(&u), &set(&[]));
        assert_eq!(fresh.factors, set(&[gh.clone(), Totp, BackupCode]));
        let after_sso = view(&p, Some(&u), &set(std::slice::from_ref(&gh)));
        assert_eq!(after_sso.remaining, vec![set(&[Totp])]);
        assert!(!after_sso.complete);
        assert!(view(&p, Some(&u), &set(&[gh.clone(), Totp])).complete);
        // Another provider does not count.
        assert!(!view(&p, Some(&u), &set(&[Sso("other".into()), Totp])).complete);
    }

    #[test]
    fn a_session_meets_a_policy_only_with_its_factors() {
        let strict = policy(&[&[Password, Totp]]);
        let totp_user = user(true, true, false);
        assert!(!meets(&strict, &totp_user, &set(&[Password])));
        assert!(meets(&strict, &totp_user, &set(&[Password, Totp])));
        assert!(meets(&strict, &totp_user, &set(&[Password, BackupCode])));
        assert!(meets(
            &Policy::default(),
            &user(true, false, false),
            &set(&[Password])
        ));
    }

    #[test]
    fn amr_names_each_proof_and_mfa_when_two_kinds() {
        let cases: &[(&[Factor], &[&str])] = &[
            (&[], &[]),
            (&[Password], &["pwd"]),
            (&[EmailCode], &["otp"]),
            (&[EmailCode, MagicLink], &["otp"]),
            (&[SmsCode], &["sms"]),
            (&[Password, Totp], &["mfa", "otp", "pwd"]),
            (&[Password, BackupCode], &["mfa", "otp", "pwd"]),
            (&[EmailCode, Totp], &["mfa", "otp"]),
            (&[Password, SmsCode], &["mfa", "pwd", "sms"]),
            (&[Sso(String::new())], &[]),
        ];
        for (satisfied, expected) in cases {
            assert_eq!(amr(&set(satisfied)), *expected, "{satisfied:?}");
        }
    }
}
