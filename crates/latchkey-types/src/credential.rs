//! The credential format, Latchkey's public contract:
//! `lk_<mode>_<type>_<43 base62><6 base62 CRC-32>`, and the SHA-256 digest
//! under which a credential is stored. One definition for the server, the
//! CLI and the receiving side (`latchkey-verify`).
//!
//! The checksum lets a server, a device or a secret scanner reject typos and
//! recognise Latchkey credentials without any lookup. Only SHA-256 digests of
//! credentials are stored; the values are 256-bit random, so a fast digest is
//! as safe as a slow password hash and costs microseconds, not milliseconds.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::Mode;

/// The base62 alphabet of credential bodies and checksums, in digit order.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random base62 characters in a credential's body (256 bits).
pub const RANDOM_LEN: usize = 43;
/// Base62 characters of the checksum that ends a credential.
pub const CHECKSUM_LEN: usize = 6;
/// The longest credential: `lk_live_refresh_` and the body.
pub const MAX_CREDENTIAL_LEN: usize = 16 + RANDOM_LEN + CHECKSUM_LEN;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An admin key for the `/v1` API.
    Admin,
    /// An API key.
    ApiKey,
    /// A client secret.
    ClientSecret,
    /// A session's refresh token.
    Refresh,
    /// The secret of a login in progress, which authorizes its steps.
    Login,
    /// The token of a magic link.
    Link,
}

impl CredentialKind {
    /// Every kind.
    pub const ALL: [CredentialKind; 6] = [
        CredentialKind::Admin,
        CredentialKind::ApiKey,
        CredentialKind::ClientSecret,
        CredentialKind::Refresh,
        CredentialKind::Login,
        CredentialKind::Link,
    ];

    /// The `<type>` of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Admin => "admin",
            CredentialKind::ApiKey => "key",
            CredentialKind::ClientSecret => "secret",
            CredentialKind::Refresh => "refresh",
            CredentialKind::Login => "login",
            CredentialKind::Link => "link",
        }
    }

    /// Reads a `<type>`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(CredentialKind::Admin),
            "key" => Some(CredentialKind::ApiKey),
            "secret" => Some(CredentialKind::ClientSecret),
            "refresh" => Some(CredentialKind::Refresh),
            "login" => Some(CredentialKind::Login),
            "link" => Some(CredentialKind::Link),
            _ => None,
        }
    }
}

/// Why a string is not a Latchkey credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Wrong prefix, mode, type, length or alphabet.
    #[error("not a Latchkey credential")]
    Malformed,
    /// Well-shaped but the checksum does not match: a typo or a forgery.
    #[error("credential checksum mismatch")]
    BadChecksum,
}

/// The parts of a well-formed credential that can be read without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialInfo {
    /// The credential's mode.
    pub mode: Mode,
    /// The credential's type.
    pub kind: CredentialKind,
}

/// A SHA-256 digest of a credential, the only form in which it is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialDigest(pub [u8; 32]);

impl CredentialDigest {
    /// The digest of `value`.
    pub fn of(value: &str) -> Self {
        CredentialDigest(Sha256::digest(value.as_bytes()).into())
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &CredentialDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex, the store's representation.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
            s.push(char::from_digit((b & 15) as u32, 16).unwrap_or('0'));
        }
        s
    }

    /// Parses lowercase or uppercase hex.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(CredentialDigest(out))
    }
}

impl std::fmt::Debug for CredentialDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A digest of a 256-bit random value reveals nothing, but keep logs
        // short and uniform.
        write!(f, "CredentialDigest({}…)", &self.to_hex()[..8])
    }
}

/// Checks the shape and checksum of `value` and reads its mode and type.
pub fn parse(value: &str) -> Result<CredentialInfo, CredentialError> {
    if value.len() > MAX_CREDENTIAL_LEN {
        return Err(CredentialError::Malformed);
    }
    let rest = value
        .strip_prefix("lk_")
        .ok_or(CredentialError::Malformed)?;
    let (mode, rest) = rest.split_once('_').ok_or(CredentialError::Malformed)?;
    let (kind, body) = rest.split_once('_').ok_or(CredentialError::Malformed)?;
    let mode = Mode::parse(mode).ok_or(CredentialError::Malformed)?;
    let kind = CredentialKind::parse(kind).ok_or(CredentialError::Malformed)?;
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CredentialError::Malformed);
    }
    let (signed, given) = value.split_at(value.len() - CHECKSUM_LEN);
    if checksum(signed.as_bytes()) != given.as_bytes() {
        return Err(CredentialError::BadChecksum);
    }
    Ok(CredentialInfo { mode, kind })
}

/// The checksum: CRC-32 (IEEE) of `bytes`, base62, most significant digit
/// first, left-padded with `0` to 6 characters.
pub fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(bytes);
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits
}

/// A well-formed credential of `mode` and `kind` whose body is `random`
/// (43 base62 characters, unchecked), with its checksum.
pub fn with_checksum(mode: Mode, kind: CredentialKind, random: &str) -> String {
    let mut s = format!("lk_{}_{}_{random}", mode.as_str(), kind.as_str());
    let sum = checksum(s.as_bytes());
    s.extend(sum.iter().map(|&b| char::from(b)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seed: usize) -> String {
        (0..RANDOM_LEN)
            .map(|i| char::from(BASE62[(seed * 7 + i * 13) % 62]))
            .collect()
    }

    #[test]
    fn credentials_parse_back_with_their_mode_and_kind() {
        for mode in Mode::ALL {
            for kind in [
                CredentialKind::Admin,
                CredentialKind::ApiKey,
                CredentialKind::ClientSecret,
            ] {
                let c = with_checksum(mode, kind, &body(3));
                assert_eq!(parse(&c), Ok(CredentialInfo { mode, kind }));
            }
        }
    }

    #[test]
    fn a_known_value_has_the_documented_checksum() {
        // CRC-32 of "123456789" is the standard check value 0xCBF43926,
        // which is "3jZRME" in base 62 (computed independently in Python).
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(&checksum(b"123456789"), b"3jZRME");
    }

    #[test]
    fn one_changed_character_breaks_the_checksum() {
        let c = with_checksum(Mode::Test, CredentialKind::ClientSecret, &body(5));
        let mut bytes = c.into_bytes();
        let i = 20;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(parse(&typo), Err(CredentialError::BadChecksum));
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        let g = with_checksum(Mode::Live, CredentialKind::ApiKey, &body(9));
        for bad in [
            "",
            "lk_",
            "lk_prod_key_abc",
            &g.replace("lk_live_key_", "lk_live_token_"),
            &g.replace("lk_live_", "xx_live_"),
            &g[..g.len() - 1],
            &format!("{g}0"),
            &g.replace(&g[15..16], "-"),
            &"x".repeat(100_000),
        ] {
            assert_eq!(parse(bad), Err(CredentialError::Malformed), "{bad}");
        }
    }

    #[test]
    fn digests_round_trip_through_hex_and_compare_in_constant_time() {
        let d = CredentialDigest::of("abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(CredentialDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(
            CredentialDigest::from_hex(&d.to_hex().to_uppercase()),
            Some(d)
        );
        assert_eq!(CredentialDigest::from_hex("zz"), None);
        assert!(d.ct_eq(&CredentialDigest::of("abc")));
        assert!(!d.ct_eq(&CredentialDigest::of("abd")));
        assert!(!format!("{d:?}").contains(&d.to_hex()));
    }
}
