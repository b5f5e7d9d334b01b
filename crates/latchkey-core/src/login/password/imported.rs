//! Password hashes made by other systems, imported as they are and checked
//! by the crates that implement their formats; a login that matches one
//! rehashes to Argon2id ([`super::check`] says so).
//!
//! Accepted (and stored as given, so an export gives them back):
//! - PHC strings: Argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`), scrypt
//!   (`$scrypt$`), PBKDF2 (`$pbkdf2$`, `$pbkdf2-sha256$`, `$pbkdf2-sha512$`,
//!   also in passlib's variant: rounds alone, its own base64);
//! - bcrypt `$2a$`, `$2b$`, `$2x$`, `$2y$`;
//! - SHA-crypt `$5$`, `$6$` (and `{CRYPT}`-prefixed, as LDAP writes them);
//! - Django's `pbkdf2_sha256$`, `pbkdf2_sha1$`, `bcrypt_sha256$`, `argon2$`;
//! - LDAP's `{SHA}`, `{SSHA}`, `{SHA256}`, `{SSHA256}`, `{SHA512}`,
//!   `{SSHA512}`, `{MD5}`, `{SMD5}`;
//! - Auth0's `custom_password_hash` objects: salted `md5`, `sha1`, `sha256`,
//!   `sha512` digests and `hmac` are kept as their JSON; its `bcrypt`,
//!   `argon2`, `pbkdf2` and `ldap` hashes are the strings above.
//!
//! Every format's cost is bounded at import, so no imported hash can make a
//! login cost seconds of CPU.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use latchkey_types::migration::{CustomEncoded, CustomPasswordHash};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The highest bcrypt cost accepted (cost 14 is about a second).
pub const MAX_BCRYPT_COST: u32 = 14;
/// The most PBKDF2 iterations accepted.
pub const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;
/// The most SHA-crypt rounds accepted.
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 2_000_000;
/// The most memory an imported Argon2 or scrypt hash may ask, KiB.
pub const MAX_MEMORY_KIB: u64 = 256 * 1024;
/// The most Argon2 passes accepted.
pub const MAX_ARGON2_PASSES: u32 = 16;
/// The longest hash accepted, in bytes.
pub const MAX_HASH_BYTES: usize = 1024;

/// Why an imported hash is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashRejection {
    /// Not a format Latchkey reads.
    #[error("not a password hash format Latchkey reads ({0})")]
    UnknownFormat(String),
    /// A known format, badly formed.
    #[error("malformed {format} hash: {why}")]
    Malformed {
        /// The format.
        format: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A cost above what a login may spend.
    #[error("{0}")]
    TooCostly(String),
}

fn malformed(format: &'static str, why: impl Into<String>) -> HashRejection {
    HashRejection::Malformed {
        format,
        why: why.into(),
    }
}

/// The hash formats, as recognised from a stored string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Argon2,
    Scrypt,
    Pbkdf2,
    Bcrypt,
    ShaCrypt,
    DjangoPbkdf2,
    DjangoBcryptSha256,
    DjangoArgon2,
    Ldap,
    Auth0Digest,
}

fn format_of(stored: &str) -> Option<Format> {
    let f = match stored {
        s if s.starts_with("$argon2") => Format::Argon2,
        s if s.starts_with("$scrypt$") => Format::Scrypt,
        s if s.starts_with("$pbkdf2") => Format::Pbkdf2,
        s if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| s.starts_with(p)) =>
        {
            Format::Bcrypt
        }
        s if s.starts_with("$5$") || s.starts_with("$6$") => Format::ShaCrypt,
        s if s.starts_with("{CRYPT}$5$") || s.starts_with("{CRYPT}$6$") => Format::ShaCrypt,
        s if s.starts_with("pbkdf2_sha256$") || s.starts_with("pbkdf2_sha1$") => {
            Format::DjangoPbkdf2
        }
        s if s.starts_with("bcrypt_sha256$") => Format::DjangoBcryptSha256,
        s if s.starts_with("argon2$") => Format::DjangoArgon2,
        s if s.starts_with('{') && s.ends_with('}') => Format::Auth0Digest,
        s if s.starts_with('{') => Format::Ldap,
        _ => return None,
    };
    Some(f)
}

/// Checks an imported hash string (format, shape, cost) and gives the form
/// to store.
pub fn accept(hash: &str) -> Result<String, HashRejection> {
    if hash.len() > MAX_HASH_BYTES {
        return Err(malformed("password", "longer than 1024 bytes"));
    }
    let Some(format) = format_of(hash) else {
        // The value is not echoed: a plain password sent here by mistake
        // must not come back in a response.
        return Err(HashRejection::UnknownFormat(
            "expected $argon2…, $scrypt$, $pbkdf2…, $2b$, $5$, $6$, pbkdf2_sha256$, \
             bcrypt_sha256$, argon2$ or {SSHA}…"
                .into(),
        ));
    };
    match format {
        Format::Argon2 => check_argon2(hash)?,
        Format::Scrypt => check_scrypt(hash)?,
        Format::Pbkdf2 if Passlib::is(hash) => {
            Passlib::parse(hash)?;
        }
        Format::Pbkdf2 => check_pbkdf2_phc(hash)?,
        Format::Bcrypt => check_bcrypt(hash)?,
        Format::ShaCrypt => check_sha_crypt(hash.trim_start_matches("{CRYPT}"))?,
        Format::DjangoPbkdf2 => {
            DjangoPbkdf2::parse(hash)?;
        }
        Format::DjangoBcryptSha256 => check_bcrypt(&hash["bcrypt_sha256$".len()..])?,
        Format::DjangoArgon2 => check_argon2(&hash["argon2".len()..])?,
        Format::Ldap => {
            Ldap::parse(hash)?;
        }
        Format::Auth0Digest => {
            let custom: CustomPasswordHash = serde_json::from_str(hash)
                .map_err(|e| malformed("custom_password_hash", e.to_string()))?;
            return accept_custom(&custom);
        }
    }
    Ok(hash.to_owned())
}

/// Checks an Auth0 `custom_password_hash` and gives the form to store: the
/// string formats as their strings, digests and HMACs as their JSON.
pub fn accept_custom(custom: &CustomPasswordHash) -> Result<String, HashRejection> {
    match custom.algorithm.as_str() {
        "bcrypt" | "argon2" | "pbkdf2" | "ldap" => {
            if custom.salt.is_some() {
                return Err(malformed(
                    "custom_password_hash",
                    format!("salt: {} hashes carry their own salt", custom.algorithm),
                ));
            }
            if custom.hash.encoding.as_deref().is_some_and(|e| e != "utf8") {
                return Err(malformed(
                    "custom_password_hash",
                    "hash.encoding: must be utf8 for this algorithm",
                ));
            }
            let value = custom.hash.value.as_str();
            let expected = match custom.algorithm.as_str() {
                "bcrypt" => Format::Bcrypt,
                "argon2" => Format::Argon2,
                "pbkdf2" => Format::Pbkdf2,
                _ => Format::Ldap,
            };
            if format_of(value) != Some(expected) {
                return Err(malformed(
                    "custom_password_hash",
                    format!("hash.value: not a {} hash", custom.algorithm),
                ));
            }
            accept(value)
        }
        "md5" | "sha1" | "sha256" | "sha512" | "hmac" => {
            Auth0Digest::parse(custom)?;
            Ok(serde_json::to_string(custom).expect("a plain struct serializes"))
        }
        "md4" => Err(HashRejection::UnknownFormat(
            "custom_password_hash.algorithm md4 is not supported (MD4 is broken beyond use); \
             reset these passwords"
                .into(),
        )),
        other => Err(HashRejection::UnknownFormat(format!(
            "custom_password_hash.algorithm {other:?}; expected md5, sha1, sha256, sha512, hmac, \
             bcrypt, argon2, pbkdf2 or ldap"
        ))),
    }
}

/// Whether `password` matches an imported hash. Anything that does not
/// parse, or asks more than the limits, matches nothing.
pub fn verify(stored: &str, password: &str) -> bool {
    let Some(format) = format_of(stored) else {
        return false;
    };
    // The limits are checked again: a store written by hand, or by an older
    // version, must not make a login expensive either.
    if accept(stored).is_err() {
        return false;
    }
    let pw = password.as_bytes();
    match format {
        Format::Argon2 => verify_phc(stored, pw),
        Format::Scrypt => verify_phc(stored, pw),
        Format::Pbkdf2 if Passlib::is(stored) => Passlib::parse(stored).is_ok_and(|h| h.verify(pw)),
        Format::Pbkdf2 => verify_phc(stored, pw),
        Format::Bcrypt => bcrypt::verify(pw, stored).unwrap_or(false),
        Format::ShaCrypt => {
            let hash = stored.trim_start_matches("{CRYPT}");
            if hash.starts_with("$5$") {
                sha_crypt::sha256_check(password, hash).is_ok()
            } else {
                sha_crypt::sha512_check(password, hash).is_ok()
            }
        }
        Format::DjangoPbkdf2 => DjangoPbkdf2::parse(stored).is_ok_and(|h| h.verify(pw)),
        Format::DjangoBcryptSha256 => {
            let prehash = hex(&Sha256::digest(pw));
            bcrypt::verify(prehash, &stored["bcrypt_sha256$".len()..]).unwrap_or(false)
        }
        Format::DjangoArgon2 => verify_phc(&stored["argon2".len()..], pw),
        Format::Ldap => Ldap::parse(stored).is_ok_and(|h| h.verify(pw)),
        Format::Auth0Digest => serde_json::from_str::<CustomPasswordHash>(stored)
            .ok()
            .and_then(|c| Auth0Digest::parse(&c).ok())
            .is_some_and(|h| h.verify(password)),
    }
}

fn verify_phc(stored: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => argon2::Argon2::default()
            .verify_password(password, &parsed)
            .is_ok(),
        "scrypt" => scrypt::Scrypt.verify_password(password, &parsed).is_ok(),
        "pbkdf2" | "pbkdf2-sha256" | "pbkdf2-sha512" => {
            pbkdf2::Pbkdf2.verify_password(password, &parsed).is_ok()
        }
        _ => false,
    }
}

fn phc<'a>(format: &'static str, hash: &'a str) -> Result<PasswordHash<'a>, HashRejection> {
    let parsed = PasswordHash::new(hash).map_err(|e| malformed(format, e.to_string()))?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err(malformed(format, "a PHC string with a salt and a hash"));
    }
    Ok(parsed)
}

fn param(parsed: &PasswordHash<'_>, name: &str) -> Option<u64> {
    parsed.params.get_decimal(name).map(u64::from)
}

fn check_argon2(hash: &str) -> Result<(), HashRejection> {
    let parsed = phc("argon2", hash)?;
    if !["argon2id", "argon2i", "argon2d"].contains(&parsed.algorithm.as_str()) {
        return Err(malformed(
            "argon2",
            "algorithm argon2id, argon2i or argon2d",
        ));
    }
    let params =
        argon2::Params::try_from(&parsed).map_err(|e| malformed("argon2", e.to_string()))?;
    if u64::from(params.m_cost()) > MAX_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
        return Err(HashRejection::TooCostly(format!(
            "argon2 m={} t={} asks more than m={MAX_MEMORY_KIB} t={MAX_ARGON2_PASSES}",
            params.m_cost(),
            params.t_cost()
        )));
    }
    if params.p_cost() > 16 {
        return Err(HashRejection::TooCostly("argon2 p above 16".into()));
    }
    Ok(())
}

fn check_scrypt(hash: &str) -> Result<(), HashRejection> {
    let parsed = phc("scrypt", hash)?;
    let (Some(ln), Some(r), Some(p)) = (
        param(&parsed, "ln"),
        param(&parsed, "r"),
        param(&parsed, "p"),
    ) else {
        return Err(malformed("scrypt", "parameters ln, r and p"));
    };
    scrypt::Params::try_from(&parsed).map_err(|e| malformed("scrypt", e.to_string()))?;
    // 128 · r · N bytes.
    let kib = ln
        .checked_sub(3)
        .and_then(|shift| r.checked_mul(1u64.checked_shl(shift as u32)?))
        .unwrap_or(u64::MAX);
    if ln > 24 || kib > MAX_MEMORY_KIB || p > 16 {
        return Err(HashRejection::TooCostly(format!(
            "scrypt ln={ln} r={r} p={p} asks more than {MAX_MEMORY_KIB} KiB or p 16"
        )));
    }
    Ok(())
}

fn check_pbkdf2_phc(hash: &str) -> Result<(), HashRejection> {
    let parsed = phc("pbkdf2", hash)?;
    if !["pbkdf2", "pbkdf2-sha256", "pbkdf2-sha512"].contains(&parsed.algorithm.as_str()) {
        return Err(malformed(
            "pbkdf2",
            "algorithm pbkdf2, pbkdf2-sha256 or pbkdf2-sha512",
        ));
    }
    let rounds = param(&parsed, "i").ok_or_else(|| malformed("pbkdf2", "parameter i"))?;
    if rounds == 0 || rounds > u64::from(MAX_PBKDF2_ITERATIONS) {
        return Err(HashRejection::TooCostly(format!(
            "pbkdf2 i={rounds}: between 1 and {MAX_PBKDF2_ITERATIONS}"
        )));
    }
    Ok(())
}

fn check_bcrypt(hash: &str) -> Result<(), HashRejection> {
    let parts: Vec<&str> = hash.split('$').collect();
    // "", "2b", "12", salt+hash (22 + 31 characters).
    let [_, _, cost, rest] = parts.as_slice() else {
        return Err(malformed("bcrypt", "$2b$<cost>$<53 characters>"));
    };
    let cost: u32 = cost
        .parse()
        .ok()
        .filter(|c| (4..=31).contains(c) && cost.len() == 2)
        .ok_or_else(|| malformed("bcrypt", "cost: two digits, 04 to 31"))?;
    if rest.len() != 53
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        return Err(malformed("bcrypt", "$2b$<cost>$<53 characters>"));
    }
    if cost > MAX_BCRYPT_COST {
        return Err(HashRejection::TooCostly(format!(
            "bcrypt cost {cost} is above {MAX_BCRYPT_COST}"
        )));
    }
    Ok(())
}

fn check_sha_crypt(hash: &str) -> Result<(), HashRejection> {
    // $5$[rounds=N$]salt$hash
    let parts: Vec<&str> = hash.split('$').collect();
    let (rounds, salt, digest) = match parts.as_slice() {
        [_, _, rounds, salt, digest] if rounds.starts_with("rounds=") => {
            let n: u32 = rounds["rounds=".len()..]
                .parse()
                .map_err(|_| malformed("SHA-crypt", "rounds: a number"))?;
            (n, *salt, *digest)
        }
        [_, _, salt, digest] => (5000, *salt, *digest),
        _ => return Err(malformed("SHA-crypt", "$5$[rounds=N$]<salt>$<hash>")),
    };
    let expected = if hash.starts_with("$5$") { 43 } else { 86 };
    if salt.len() > 16 || digest.len() != expected {
        return Err(malformed(
            "SHA-crypt",
            "a salt of up to 16 characters and the hash",
        ));
    }
    if rounds > MAX_SHA_CRYPT_ROUNDS {
        return Err(HashRejection::TooCostly(format!(
            "SHA-crypt rounds={rounds} is above {MAX_SHA_CRYPT_ROUNDS}"
        )));
    }
    Ok(())
}

/// passlib's PBKDF2: `$pbkdf2-sha256$<rounds>$<salt>$<hash>`, salt and hash
/// in its "adapted base64" (`.` for `+`, no padding).
struct Passlib {
    alg: DigestAlg,
    rounds: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Passlib {
    fn is(stored: &str) -> bool {
        stored
            .split('$')
            .nth(2)
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
    }

    fn parse(stored: &str) -> Result<Self, HashRejection> {
        let parts: Vec<&str> = stored.split('$').collect();
        let [_, name, rounds, salt, hash] = parts.as_slice() else {
            return Err(malformed(
                "passlib PBKDF2",
                "$pbkdf2-sha256$<rounds>$<salt>$<hash>",
            ));
        };
        let alg = match *name {
            "pbkdf2" => DigestAlg::Sha1,
            "pbkdf2-sha256" => DigestAlg::Sha256,
            "pbkdf2-sha512" => DigestAlg::Sha512,
            _ => {
                return Err(malformed(
                    "passlib PBKDF2",
                    "pbkdf2, pbkdf2-sha256 or pbkdf2-sha512",
                ))
            }
        };
        let rounds: u32 = rounds
            .parse()
            .map_err(|_| malformed("passlib PBKDF2", "rounds: a number"))?;
        if rounds == 0 || rounds > MAX_PBKDF2_ITERATIONS {
            return Err(HashRejection::TooCostly(format!(
                "PBKDF2 rounds {rounds}: between 1 and {MAX_PBKDF2_ITERATIONS}"
            )));
        }
        let ab64 = |v: &str| STANDARD_NO_PAD.decode(v.replace('.', "+").trim_end_matches('='));
        let (Ok(salt), Ok(hash)) = (ab64(salt), ab64(hash)) else {
            return Err(malformed("passlib PBKDF2", "salt and hash: adapted base64"));
        };
        if hash.len() != alg.len() {
            return Err(malformed("passlib PBKDF2", "a full-length hash"));
        }
        Ok(Passlib {
            alg,
            rounds,
            salt,
            hash,
        })
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut out = vec![0u8; self.hash.len()];
        match self.alg {
            DigestAlg::Sha1 => {
                pbkdf2::pbkdf2_hmac::<Sha1>(password, &self.salt, self.rounds, &mut out)
            }
            DigestAlg::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, &self.salt, self.rounds, &mut out)
            }
            _ => pbkdf2::pbkdf2_hmac::<Sha256>(password, &self.salt, self.rounds, &mut out),
        }
        out.ct_eq(&self.hash).into()
    }
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
struct DjangoPbkdf2<'a> {
    sha1: bool,
    iterations: u32,
    salt: &'a str,
    hash: Vec<u8>,
}

impl<'a> DjangoPbkdf2<'a> {
    fn parse(stored: &'a str) -> Result<Self, HashRejection> {
        let parts: Vec<&str> = stored.split('$').collect();
        let [algorithm, iterations, salt, hash] = parts.as_slice() else {
            return Err(malformed(
                "Django PBKDF2",
                "pbkdf2_sha256$<iterations>$<salt>$<hash>",
            ));
        };
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| malformed("Django PBKDF2", "iterations: a number"))?;
        if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
            return Err(HashRejection::TooCostly(format!(
                "Django PBKDF2 iterations {iterations}: between 1 and {MAX_PBKDF2_ITERATIONS}"
            )));
        }
        let hash = STANDARD
            .decode(hash)
            .map_err(|_| malformed("Django PBKDF2", "hash: base64"))?;
        let sha1 = *algorithm == "pbkdf2_sha1";
        if hash.len() != if sha1 { 20 } else { 32 } || salt.is_empty() {
            return Err(malformed("Django PBKDF2", "a salt and a full-length hash"));
        }
        Ok(DjangoPbkdf2 {
            sha1,
            iterations,
            salt,
            hash,
        })
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut out = vec![0u8; self.hash.len()];
        if self.sha1 {
            pbkdf2::pbkdf2_hmac::<Sha1>(password, self.salt.as_bytes(), self.iterations, &mut out);
        } else {
            pbkdf2::pbkdf2_hmac::<Sha256>(
                password,
                self.salt.as_bytes(),
                self.iterations,
                &mut out,
            );
        }
        out.ct_eq(&self.hash).into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DigestAlg {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl DigestAlg {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "md5" => DigestAlg::Md5,
            "sha1" => DigestAlg::Sha1,
            "sha256" => DigestAlg::Sha256,
            "sha512" => DigestAlg::Sha512,
            _ => return None,
        })
    }

    fn len(self) -> usize {
        match self {
            DigestAlg::Md5 => 16,
            DigestAlg::Sha1 => 20,
            DigestAlg::Sha256 => 32,
            DigestAlg::Sha512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            DigestAlg::Md5 => run::<Md5>(parts),
            DigestAlg::Sha1 => run::<Sha1>(parts),
            DigestAlg::Sha256 => run::<Sha256>(parts),
            DigestAlg::Sha512 => run::<Sha512>(parts),
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
            let mut m = <M as Mac>::new_from_slice(key).ok()?;
            for p in parts {
                m.update(p);
            }
            Some(m.finalize().into_bytes().to_vec())
        }
        match self {
            DigestAlg::Md5 => run::<Hmac<Md5>>(key, parts),
            DigestAlg::Sha1 => run::<Hmac<Sha1>>(key, parts),
            DigestAlg::Sha256 => run::<Hmac<Sha256>>(key, parts),
            DigestAlg::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }
}

/// LDAP's `{SSHA}base64(digest ‖ salt)` and kin.
struct Ldap {
    alg: DigestAlg,
    digest: Vec<u8>,
    salt: Vec<u8>,
}

impl Ldap {
    fn parse(stored: &str) -> Result<Self, HashRejection> {
        let (scheme, body) = stored[1..]
            .split_once('}')
            .ok_or_else(|| malformed("LDAP", "{SCHEME}base64"))?;
        let (salted, alg) = match scheme.to_ascii_uppercase().as_str() {
            "SHA" => (false, DigestAlg::Sha1),
            "SSHA" => (true, DigestAlg::Sha1),
            "SHA256" => (false, DigestAlg::Sha256),
            "SSHA256" => (true, DigestAlg::Sha256),
            "SHA512" => (false, DigestAlg::Sha512),
            "SSHA512" => (true, DigestAlg::Sha512),
            "MD5" => (false, DigestAlg::Md5),
            "SMD5" => (true, DigestAlg::Md5),
            other => {
                return Err(HashRejection::UnknownFormat(format!(
                    "LDAP scheme {{{other}}}; expected SHA, SSHA, SHA256, SSHA256, SHA512, \
                     SSHA512, MD5, SMD5 or CRYPT with $5$/$6$"
                )))
            }
        };
        let bytes = STANDARD
            .decode(body)
            .or_else(|_| STANDARD_NO_PAD.decode(body))
            .map_err(|_| malformed("LDAP", "the value after the scheme: base64"))?;
        let n = alg.len();
        let ok = if salted {
            bytes.len() > n
        } else {
            bytes.len() == n
        };
        if !ok {
            return Err(malformed(
                "LDAP",
                "the digest's length (and a salt when salted)",
            ));
        }
        Ok(Ldap {
            alg,
            digest: bytes[..n].to_vec(),
            salt: bytes[n..].to_vec(),
        })
    }

    fn verify(&self, password: &[u8]) -> bool {
        self.alg
            .digest(&[password, &self.salt])
            .ct_eq(&self.digest)
            .into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordBytes {
    Utf8,
    Ascii,
    Latin1,
    Utf16Le,
}

impl PasswordBytes {
    fn encode(self, password: &str) -> Option<Vec<u8>> {
        match self {
            PasswordBytes::Utf8 => Some(password.as_bytes().to_vec()),
            PasswordBytes::Ascii => password.is_ascii().then(|| password.as_bytes().to_vec()),
            PasswordBytes::Latin1 => password.chars().map(|c| u8::try_from(c).ok()).collect(),
            PasswordBytes::Utf16Le => Some(
                password
                    .encode_utf16()
                    .flat_map(|u| u.to_le_bytes())
                    .collect(),
            ),
        }
    }
}

fn decode(
    field: &str,
    value: &str,
    encoding: Option<&str>,
    default: &str,
) -> Result<Vec<u8>, HashRejection> {
    let encoding = encoding.unwrap_or(default);
    let bytes = match encoding {
        "hex" => {
            let lower = value.to_ascii_lowercase();
            data_encoding::HEXLOWER.decode(lower.as_bytes()).ok()
        }
        "base64" => STANDARD
            .decode(value)
            .or_else(|_| STANDARD_NO_PAD.decode(value))
            .ok(),
        "utf8" => Some(value.as_bytes().to_vec()),
        other => {
            return Err(malformed(
                "custom_password_hash",
                format!("{field}.encoding: {other:?}; expected hex, base64 or utf8"),
            ))
        }
    };
    bytes.ok_or_else(|| {
        malformed(
            "custom_password_hash",
            format!("{field}.value: not valid {encoding}"),
        )
    })
}

/// An Auth0 digest or HMAC: `H(salt ‖ password)` (or the salt after), or
/// `HMAC(key, salt ‖ password)`.
struct Auth0Digest {
    alg: DigestAlg,
    key: Option<Vec<u8>>,
    digest: Vec<u8>,
    salt: Vec<u8>,
    salt_suffix: bool,
    password: PasswordBytes,
}

impl Auth0Digest {
    fn parse(c: &CustomPasswordHash) -> Result<Self, HashRejection> {
        let (alg, key) = if c.algorithm == "hmac" {
            let digest = c.hash.digest.as_deref().ok_or_else(|| {
                malformed("custom_password_hash", "hash.digest: required for hmac")
            })?;
            let alg = DigestAlg::parse(digest).ok_or_else(|| {
                malformed(
                    "custom_password_hash",
                    format!("hash.digest: {digest:?}; expected md5, sha1, sha256 or sha512"),
                )
            })?;
            let CustomEncoded { value, encoding } =
                c.hash.key.as_ref().ok_or_else(|| {
                    malformed("custom_password_hash", "hash.key: required for hmac")
                })?;
            (
                alg,
                Some(decode("hash.key", value, encoding.as_deref(), "utf8")?),
            )
        } else {
            if c.hash.digest.is_some() || c.hash.key.is_some() {
                return Err(malformed(
                    "custom_password_hash",
                    "hash.digest and hash.key: only for hmac",
                ));
            }
            let alg = DigestAlg::parse(&c.algorithm).expect("the caller matched the algorithm");
            (alg, None)
        };
        let digest = decode("hash", &c.hash.value, c.hash.encoding.as_deref(), "hex")?;
        if digest.len() != alg.len() {
            return Err(malformed(
                "custom_password_hash",
                format!("hash.value: {} bytes, expected {}", digest.len(), alg.len()),
            ));
        }
        let (salt, salt_suffix) = match &c.salt {
            None => (Vec::new(), false),
            Some(s) => {
                let suffix = match s.position.as_deref() {
                    None | Some("prefix") => false,
                    Some("suffix") => true,
                    Some(other) => {
                        return Err(malformed(
                            "custom_password_hash",
                            format!("salt.position: {other:?}; expected prefix or suffix"),
                        ))
                    }
                };
                (
                    decode("salt", &s.value, s.encoding.as_deref(), "utf8")?,
                    suffix,
                )
            }
        };
        let password = match c.password.as_ref().map(|p| p.encoding.as_str()) {
            None | Some("utf8") => PasswordBytes::Utf8,
            Some("ascii") => PasswordBytes::Ascii,
            Some("latin1") | Some("binary") => PasswordBytes::Latin1,
            Some("utf16le") | Some("ucs2") => PasswordBytes::Utf16Le,
            Some(other) => {
                return Err(malformed(
                    "custom_password_hash",
                    format!(
                        "password.encoding: {other:?}; expected utf8, ascii, latin1, binary, \
                         utf16le or ucs2"
                    ),
                ))
            }
        };
        Ok(Auth0Digest {
            alg,
            key,
            digest,
            salt,
            salt_suffix,
            password,
        })
    }

    fn verify(&self, password: &str) -> bool {
        let Some(pw) = self.password.encode(password) else {
            return false;
        };
        let parts: [&[u8]; 2] = if self.salt_suffix {
            [&pw, &self.salt]
        } else {
            [&self.salt, &pw]
        };
        let computed = match &self.key {
            Some(key) => match self.alg.hmac(key, &parts) {
                Some(mac) => mac,
                None => return false,
            },
            None => self.alg.digest(&parts),
        };
        computed.ct_eq(&self.digest).into()
    }
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}
