//! Credentials: the format and digest are Latchkey's public contract and
//! live in `latchkey_types::credential` (re-exported here); generating one
//! needs randomness, so it lives here.

use rand::Rng;
use time::OffsetDateTime;

pub use latchkey_types::credential::*;

use crate::{Mode, Secret};

/// Whether `presented` is the digest of one of a client's `secrets` that
/// has not expired at `now` (`(digest, expires_at)` pairs). Every secret is
/// compared, in constant time, so the time depends only on how many
/// secrets the client has, never on which matched or how closely.
pub fn matches_current<'a>(
    secrets: impl IntoIterator<Item = (&'a CredentialDigest, Option<OffsetDateTime>)>,
    presented: &CredentialDigest,
    now: OffsetDateTime,
) -> bool {
    let mut matched = false;
    for (digest, expires_at) in secrets {
        let equal = digest.ct_eq(presented);
        let current = expires_at.is_none_or(|at| at > now);
        matched |= equal & current;
    }
    matched
}

/// The work of checking a secret of a client that does not exist: the
/// same [`matches_current`] as for a client with one secret, against a
/// fixed digest no value has, so an unknown client and a wrong secret take
/// the same time.
pub fn no_client_matches(presented: &CredentialDigest, now: OffsetDateTime) -> bool {
    let dummy = CredentialDigest([0x5a; 32]);
    std::hint::black_box(matches_current([(&dummy, None)], presented, now));
    false
}

/// Generates a new credential of this mode and kind.
pub fn generate(mode: Mode, kind: CredentialKind) -> Secret {
    let mut rng = rand::thread_rng();
    let random: String = (0..RANDOM_LEN)
        .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
        .collect();
    Secret::new(with_checksum(mode, kind, &random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_only_a_current_value() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let later = now + time::Duration::seconds(60);
        let (a, b) = (CredentialDigest::of("a"), CredentialDigest::of("b"));
        // (secrets, presented, matches)
        type Secrets<'a> = &'a [(&'a CredentialDigest, Option<OffsetDateTime>)];
        let table: &[(Secrets, &str, bool)] = &[
            (&[], "a", false),
            (&[(&a, None)], "a", true),
            (&[(&a, None)], "b", false),
            (&[(&a, Some(later))], "a", true),
            (&[(&a, Some(now))], "a", false),
            (&[(&b, None), (&a, Some(now))], "a", false),
            (&[(&a, Some(now)), (&a, None)], "a", true),
            (&[(&b, None), (&a, None)], "a", true),
        ];
        for (secrets, presented, expected) in table {
            let presented = CredentialDigest::of(presented);
            assert_eq!(
                matches_current(secrets.iter().copied(), &presented, now),
                *expected,
                "{secrets:?} {presented:?}"
            );
        }
        assert!(!no_client_matches(&a, now));
    }

    #[test]
    fn generated_credentials_parse_back_and_differ() {
        for mode in Mode::ALL {
            for kind in CredentialKind::ALL {
                let c = generate(mode, kind);
                assert_eq!(parse(c.expose()), Ok(CredentialInfo { mode, kind }));
                assert_ne!(c, generate(mode, kind));
            }
        }
    }
}
