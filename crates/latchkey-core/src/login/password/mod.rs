//! Passwords: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane),
//! stored as PHC strings; the rules a new password must meet; and the
//! decoy check that makes an unknown user cost what a wrong password costs.
//!
//! The common-password list is Django's (BSD licence, from Royce Williams'
//! list of 20,000 common passwords), kept to the entries of at least 8
//! characters (shorter ones fail the length rule anyway), lowercased and
//! sorted so a check is a binary search.

pub mod imported;

use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's Argon2id memory cost, KiB.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// OWASP's Argon2id passes.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// The longest password accepted, in characters (so at most 1 KiB of
/// UTF-8): longer input is refused before hashing, so nobody can make a
/// check cost more than another.
pub const MAX_CHARS: usize = 256;

const COMMON: &str = include_str!("common-passwords.txt");

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    /// Fewer characters than the policy asks.
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    /// More characters than [`MAX_CHARS`].
    #[error("the password must be at most {MAX_CHARS} characters long")]
    TooLong,
    /// On the common-password list.
    #[error("the password is on a list of commonly used passwords")]
    Common,
    /// The same as the user's email, username or name.
    #[error("the password must not be the account's own name or address")]
    SameAsIdentifier,
}

/// Whether `password` may be set, for a policy asking `min_length`
/// characters (Unicode scalar values), for an account known by `names`.
pub fn check_new(
    password: &str,
    min_length: usize,
    names: &[&str],
) -> Result<(), PasswordRejection> {
    let chars = password.chars().count();
    if chars > MAX_CHARS {
        return Err(PasswordRejection::TooLong);
    }
    if chars < min_length {
        return Err(PasswordRejection::TooShort(min_length));
    }
    let lowered = password.to_lowercase();
    if is_common(&lowered) {
        return Err(PasswordRejection::Common);
    }
    if names
        .iter()
        .any(|name| !name.is_empty() && name.to_lowercase() == lowered)
    {
        return Err(PasswordRejection::SameAsIdentifier);
    }
    Ok(())
}

fn is_common(lowered: &str) -> bool {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| COMMON.lines().collect())
        .binary_search(&lowered)
        .is_ok()
}

/// The PHC string of a new Argon2id hash with a random salt.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id hashing with valid parameters and salt cannot fail")
        .to_string()
}

/// Whether `password` matches the stored PHC string. A stored value that
/// does not parse matches nothing. Over-long input is refused before any
/// work (it could never have been set).
pub fn verify(stored: &str, password: &str) -> bool {
    if password.len() > 4 * MAX_CHARS || password.chars().count() > MAX_CHARS {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// What a password check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password does not match (or the stored hash is unusable).
    Mismatch,
    /// It matches; `rehash`: the stored hash is not Latchkey's own Argon2id
    /// (an imported one), so store [`hash`] of the password in its place.
    Match {
        /// Replace the stored hash.
        rehash: bool,
    },
}

/// Checks `password` against a stored hash of any accepted format:
/// Latchkey's Argon2id, or one imported from another system
/// ([`imported`]), which asks for a rehash when it matches.
pub fn check(stored: &str, password: &str) -> Verdict {
    let matched = |ok: bool, rehash: bool| match ok {
        true => Verdict::Match { rehash },
        false => Verdict::Mismatch,
    };
    if is_current(stored) {
        return matched(verify(stored, password), false);
    }
    if password.len() > 4 * MAX_CHARS || password.chars().count() > MAX_CHARS {
        return Verdict::Mismatch;
    }
    matched(imported::verify(stored, password), true)
}

/// Whether `stored` is an Argon2id hash with Latchkey's parameters.
pub fn is_current(stored: &str) -> bool {
    stored.starts_with(&format!(
        "$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={PARALLELISM}$"
    ))
}

/// The same work as [`verify`] against a real hash, for an identifier that
/// names nobody (or a user without a password): always false.
pub fn verify_decoy(password: &str) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash("latchkey decoy password, never set"));
    verify(decoy, password);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let stored = hash("correct horse battery staple");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify(&stored, "correct horse battery staple"));
        assert!(!verify(&stored, "correct horse battery stapl"));
        assert_ne!(stored, hash("correct horse battery staple"), "salted");
        assert!(!verify("not a phc string", "x"));
        assert!(!verify_decoy("correct horse battery staple"));
    }

    #[test]
    fn new_passwords_follow_the_rules() {
        type Case<'a> = (&'a str, usize, &'a [&'a str], Result<(), PasswordRejection>);
        let cases: &[Case] = &[
            ("short", 12, &[], Err(PasswordRejection::TooShort(12))),
            ("elevenchars", 12, &[], Err(PasswordRejection::TooShort(12))),
            ("ünïcödé-pässwörd", 16, &[], Ok(())),
            ("password1234", 12, &[], Err(PasswordRejection::Common)),
            ("PASSWORD1234", 12, &[], Err(PasswordRejection::Common)),
            ("qwertyuiop", 8, &[], Err(PasswordRejection::Common)),
            (
                "dev@example.com",
                8,
                &["dev@example.com"],
                Err(PasswordRejection::SameAsIdentifier),
            ),
            (
                "DEV@example.com",
                8,
                &["dev@example.com", ""],
                Err(PasswordRejection::SameAsIdentifier),
            ),
            ("plum-kettle-orbit-9", 12, &["dev@example.com"], Ok(())),
        ];
        for (password, min, names, expected) in cases {
            assert_eq!(check_new(password, *min, names), *expected, "{password}");
        }
        let long = "x".repeat(MAX_CHARS + 1);
        assert_eq!(check_new(&"é".repeat(MAX_CHARS), 12, &[]), Ok(()));
        assert_eq!(check_new(&long, 12, &[]), Err(PasswordRejection::TooLong));
        assert!(!verify(&hash("x"), &long));
    }

    #[test]
    fn the_common_list_is_sorted_lowercase_and_long_enough() {
        let lines: Vec<&str> = COMMON.lines().collect();
        assert!(lines.len() > 8000);
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(lines
            .iter()
            .all(|l| l.chars().count() >= 8 && l.to_lowercase() == *l));
    }
}
