//! Migration's rules: what an import line is, and what a credential made
//! by another system becomes in Latchkey's store.
//!
//! A credential is imported as its value (any format) or a digest of it.
//! A plain value, or a SHA-256 digest, becomes the same SHA-256 digest every
//! Latchkey credential has, so it is checked exactly like one. A SHA-512
//! digest, or a salted bcrypt hash found by the key's non-secret prefix,
//! is kept as it is and checked the slow way until the key is first
//! presented; then its SHA-256 digest is added.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use latchkey_types::credential::{self, CredentialDigest, CredentialKind};
use latchkey_types::migration::{CredentialHash, Record};
use latchkey_types::Mode;
use sha2::{Digest, Sha512};

/// The longest line of an import file, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The shortest credential value imported in plain (shorter ones are too
/// weak to keep).
pub const MIN_VALUE_CHARS: usize = 16;
/// The longest credential value imported in plain.
pub const MAX_VALUE_CHARS: usize = 512;
/// The longest non-secret prefix of a bcrypt-hashed key.
pub const MAX_PREFIX_CHARS: usize = 64;
/// The shortest such prefix: it must narrow the search to a few keys.
pub const MIN_PREFIX_CHARS: usize = 4;
/// The highest bcrypt cost of an imported key hash (each slow check costs
/// one bcrypt).
pub const MAX_KEY_BCRYPT_COST: u32 = 12;

/// A refusal that names its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct FieldError {
    /// The field (`keyHash.value`, `parentId`, …).
    pub field: String,
    /// What is wrong.
    pub detail: String,
}

/// A [`FieldError`].
pub fn field_error(field: &str, detail: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        detail: detail.into(),
    }
}

/// Parses one line. Errors are serde's, which name the field or the
/// unknown `type`.
pub fn parse_line(line: &str) -> Result<Record, String> {
    serde_json::from_str(line).map_err(|e| {
        let msg = e.to_string();
        // serde's position refers to the line, which the caller names.
        match msg.rfind(" at line ") {
            Some(at) => msg[..at].to_owned(),
            None => msg,
        }
    })
}

/// What an imported credential is stored as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredCredential {
    /// The SHA-256 of the value, as every Latchkey credential.
    Sha256(CredentialDigest),
    /// The SHA-512 of the value, lowercase hex.
    Sha512(String),
    /// A bcrypt hash, found by the value's first characters.
    Bcrypt {
        /// The value's non-secret first characters.
        prefix: String,
        /// `$2b$…`.
        hash: String,
    },
}

impl StoredCredential {
    /// Whether a presented `value` matches (the slow forms; the SHA-256
    /// form is found by its digest instead). bcrypt costs what its cost
    /// says.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StoredCredential::Sha256(d) => CredentialDigest::of(value).ct_eq(d),
            StoredCredential::Sha512(hex) => {
                let got = data_encoding::HEXLOWER.encode(&Sha512::digest(value.as_bytes()));
                subtle::ConstantTimeEq::ct_eq(got.as_bytes(), hex.as_bytes()).into()
            }
            StoredCredential::Bcrypt { prefix, hash } => {
                value.starts_with(prefix.as_str()) && bcrypt::verify(value, hash).unwrap_or(false)
            }
        }
    }
}

/// The SHA-512 of a value, lowercase hex (how [`StoredCredential::Sha512`]
/// is looked up).
pub fn sha512_hex(value: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha512::digest(value.as_bytes()))
}

/// The prefixes of `value` a bcrypt-hashed key could have been imported
/// with, longest first.
pub fn candidate_prefixes(value: &str) -> Vec<&str> {
    let mut out: Vec<&str> = value
        .char_indices()
        .map(|(i, c)| &value[..i + c.len_utf8()])
        .take(MAX_PREFIX_CHARS)
        .filter(|p| p.chars().count() >= MIN_PREFIX_CHARS && p.len() < value.len())
        .collect();
    out.reverse();
    out
}

/// An imported credential: what to store, and whether it is legacy (made
/// by another system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCredential {
    /// What is stored.
    pub stored: StoredCredential,
    /// Not a Latchkey credential.
    pub legacy: bool,
}

/// A record's credential fields.
#[derive(Debug, Clone, Copy)]
pub struct CredentialInput<'a> {
    /// The plain field's name (`key`, `secret`); `{field}Hash` is the
    /// digest's.
    pub field: &'a str,
    /// The value.
    pub value: Option<&'a str>,
    /// Or its digest.
    pub hash: Option<&'a CredentialHash>,
    /// The value's non-secret first characters (bcrypt).
    pub prefix: Option<&'a str>,
    /// `legacy` as the record says.
    pub legacy: Option<bool>,
}

/// Turns a record's `key`/`keyHash`/`prefix` (or `secret`/`secretHash`)
/// into what is stored. `kind` is what a Latchkey-format value must be
/// (an API key, a client secret) and `mode` its mode. Only API keys take
/// the slow forms (SHA-512, bcrypt): client secrets are matched against
/// their user's SHA-256 digests.
pub fn imported_credential(
    input: CredentialInput<'_>,
    mode: Mode,
    kind: CredentialKind,
) -> Result<ImportedCredential, FieldError> {
    let CredentialInput {
        field,
        value,
        hash,
        prefix,
        legacy,
    } = input;
    let allow_slow = kind == CredentialKind::ApiKey;
    let hash_field = format!("{field}Hash");
    match (value, hash) {
        (Some(_), Some(_)) => Err(field_error(
            field,
            format!("give {field} or {hash_field}, not both"),
        )),
        (None, None) => Err(field_error(
            field,
            format!("{field} or {hash_field} is required"),
        )),
        (Some(value), None) => {
            if prefix.is_some() {
                return Err(field_error(
                    "prefix",
                    format!("only with a bcrypt {hash_field}"),
                ));
            }
            let native =
                match credential::parse(value) {
                    Ok(info) if info.kind == kind && info.mode == mode => true,
                    Ok(info) if info.kind != kind => {
                        return Err(field_error(
                            field,
                            format!(
                                "a Latchkey {} is not a {}",
                                info.kind.as_str(),
                                kind.as_str()
                            ),
                        ))
                    }
                    Ok(_) => {
                        return Err(field_error(
                            field,
                            "a Latchkey credential of the other mode (the admin key's mode is the \
                         mode of everything imported)",
                        ))
                    }
                    Err(_) if value.starts_with("lk_") => return Err(field_error(
                        field,
                        "starts like a Latchkey credential but is malformed (its checksum does \
                         not match)",
                    )),
                    Err(_) => false,
                };
            let chars = value.chars().count();
            if !(MIN_VALUE_CHARS..=MAX_VALUE_CHARS).contains(&chars)
                || value.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(field_error(
                    field,
                    format!(
                        "{MIN_VALUE_CHARS} to {MAX_VALUE_CHARS} characters, no spaces or control \
                         characters"
                    ),
                ));
            }
            Ok(ImportedCredential {
                stored: StoredCredential::Sha256(CredentialDigest::of(value)),
                legacy: legacy.unwrap_or(!native),
            })
        }
        (None, Some(h)) => {
            let stored = stored_hash(&hash_field, h, prefix, allow_slow)?;
            Ok(ImportedCredential {
                stored,
                legacy: legacy.unwrap_or(true),
            })
        }
    }
}

fn stored_hash(
    field: &str,
    h: &CredentialHash,
    prefix: Option<&str>,
    allow_slow: bool,
) -> Result<StoredCredential, FieldError> {
    let slow_refused = || {
        field_error(
            &format!("{field}.algorithm"),
            format!(
                "{:?} is only for API keys; client secrets take sha256",
                h.algorithm
            ),
        )
    };
    match h.algorithm.as_str() {
        "sha256" | "sha512" => {
            if prefix.is_some() {
                return Err(field_error("prefix", "only with a bcrypt keyHash"));
            }
            let bytes = decode_digest(field, &h.value, h.encoding.as_deref())?;
            if h.algorithm == "sha256" {
                let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                    field_error(
                        &format!("{field}.value"),
                        format!("a SHA-256 digest is 32 bytes, not {}", b.len()),
                    )
                })?;
                Ok(StoredCredential::Sha256(CredentialDigest(arr)))
            } else {
                if !allow_slow {
                    return Err(slow_refused());
                }
                if bytes.len() != 64 {
                    return Err(field_error(
                        &format!("{field}.value"),
                        format!("a SHA-512 digest is 64 bytes, not {}", bytes.len()),
                    ));
                }
                Ok(StoredCredential::Sha512(
                    data_encoding::HEXLOWER.encode(&bytes),
                ))
            }
        }
        "bcrypt" => {
            if !allow_slow {
                return Err(slow_refused());
            }
            if h.encoding.is_some() {
                return Err(field_error(
                    &format!("{field}.encoding"),
                    "a bcrypt hash is its $2b$ string",
                ));
            }
            let prefix = prefix.ok_or_else(|| {
                field_error(
                    "prefix",
                    "a bcrypt keyHash needs the key's non-secret prefix (its first characters), \
                     or every check would try every hash",
                )
            })?;
            let n = prefix.chars().count();
            if !(MIN_PREFIX_CHARS..=MAX_PREFIX_CHARS).contains(&n)
                || prefix.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(field_error(
                    "prefix",
                    format!("{MIN_PREFIX_CHARS} to {MAX_PREFIX_CHARS} characters, no spaces"),
                ));
            }
            let cost = bcrypt_cost(&h.value).ok_or_else(|| {
                field_error(
                    &format!("{field}.value"),
                    "a bcrypt hash: $2b$<cost>$<53 characters>",
                )
            })?;
            if cost > MAX_KEY_BCRYPT_COST {
                return Err(field_error(
                    &format!("{field}.value"),
                    format!("bcrypt cost {cost} is above {MAX_KEY_BCRYPT_COST} for API keys"),
                ));
            }
            Ok(StoredCredential::Bcrypt {
                prefix: prefix.to_owned(),
                hash: h.value.clone(),
            })
        }
        other => Err(field_error(
            &format!("{field}.algorithm"),
            format!("{other:?}; expected sha256, sha512 or bcrypt"),
        )),
    }
}

fn bcrypt_cost(hash: &str) -> Option<u32> {
    let parts: Vec<&str> = hash.split('$').collect();
    let [empty, version, cost, rest] = parts.as_slice() else {
        return None;
    };
    let ok = empty.is_empty()
        && ["2a", "2b", "2x", "2y"].contains(version)
        && cost.len() == 2
        && rest.len() == 53
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    ok.then(|| cost.parse().ok())
        .flatten()
        .filter(|c| (4..=31).contains(c))
}

fn decode_digest(field: &str, value: &str, encoding: Option<&str>) -> Result<Vec<u8>, FieldError> {
    let decoded = match encoding.unwrap_or("hex") {
        "hex" => data_encoding::HEXLOWER_PERMISSIVE
            .decode(value.as_bytes())
            .ok(),
        "base64" => STANDARD
            .decode(value)
            .or_else(|_| STANDARD_NO_PAD.decode(value))
            .ok(),
        "base64url" => URL_SAFE_NO_PAD
            .decode(value)
            .or_else(|_| URL_SAFE.decode(value))
            .ok(),
        other => {
            return Err(field_error(
                &format!("{field}.encoding"),
                format!("{other:?}; expected hex, base64 or base64url"),
            ))
        }
    };
    decoded.ok_or_else(|| {
        field_error(
            &format!("{field}.value"),
            format!("not valid {}", encoding.unwrap_or("hex")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(algorithm: &str, value: &str, encoding: Option<&str>) -> CredentialHash {
        CredentialHash {
            algorithm: algorithm.into(),
            value: value.into(),
            encoding: encoding.map(Into::into),
        }
    }

    fn key(
        value: Option<&str>,
        h: Option<&CredentialHash>,
        prefix: Option<&str>,
    ) -> Result<ImportedCredential, FieldError> {
        imported_credential(
            CredentialInput {
                field: "key",
                value,
                hash: h,
                prefix,
                legacy: None,
            },
            Mode::Test,
            CredentialKind::ApiKey,
        )
    }

    #[test]
    fn plain_values_become_the_digest_every_latchkey_key_has() {
        let legacy = "sk_live_51HqLyjWDarjtT1zdp7dcXVZ";
        let got = key(Some(legacy), None, None).unwrap();
        assert_eq!(
            got.stored,
            StoredCredential::Sha256(CredentialDigest::of(legacy))
        );
        assert!(got.legacy);
        let native = crate::credential::generate(Mode::Test, CredentialKind::ApiKey);
        let got = key(Some(native.expose()), None, None).unwrap();
        assert!(!got.legacy, "a Latchkey key stays a Latchkey key");
        let live = crate::credential::generate(Mode::Live, CredentialKind::ApiKey);
        assert_eq!(
            key(Some(live.expose()), None, None).unwrap_err().field,
            "key"
        );
        let secret = crate::credential::generate(Mode::Test, CredentialKind::ClientSecret);
        assert!(
            key(Some(secret.expose()), None, None).is_err(),
            "a secret is not a key"
        );
        let mut typo = native.expose().to_owned();
        typo.pop();
        typo.push('!');
        assert!(
            key(Some(&typo), None, None).is_err(),
            "a broken Latchkey key"
        );
        assert!(key(Some("short"), None, None).is_err());
        assert!(key(Some("has a space in it, sadly"), None, None).is_err());
        assert!(key(None, None, None).is_err());
    }

    #[test]
    fn digests_in_each_encoding() {
        let value = "3f1c7a9e-4b8d-4f6a-9c2e-1d5b7a3e9f01";
        let d = CredentialDigest::of(value);
        let hex = d.to_hex();
        let b64 = STANDARD.encode(d.0);
        let b64url = URL_SAFE_NO_PAD.encode(d.0);
        for (v, enc) in [
            (hex.as_str(), None),
            (&hex.to_uppercase(), Some("hex")),
            (b64.as_str(), Some("base64")),
            (b64url.as_str(), Some("base64url")),
        ] {
            let got = key(None, Some(&hash("sha256", v, enc)), None).unwrap();
            assert_eq!(got.stored, StoredCredential::Sha256(d), "{enc:?}");
            assert!(got.legacy);
        }
        let s512 = sha512_hex(value);
        let got = key(None, Some(&hash("sha512", &s512, None)), None).unwrap();
        assert!(got.stored.matches(value));
        assert!(!got.stored.matches("3f1c7a9e-4b8d-4f6a-9c2e-1d5b7a3e9f02"));
        let cases = [
            hash("sha256", "abcd", None),
            hash("sha256", &hex, Some("base32")),
            hash("sha256", "zz", None),
            hash("sha512", &hex, None),
            hash("md5", &hex, None),
        ];
        for h in &cases {
            let e = key(None, Some(h), None).unwrap_err();
            assert!(e.field.starts_with("keyHash."), "{h:?}: {e}");
        }
        assert_eq!(
            key(Some(value), Some(&hash("sha256", &hex, None)), None)
                .unwrap_err()
                .field,
            "key"
        );
        assert_eq!(
            key(None, Some(&hash("sha256", &hex, None)), Some("3f1c"))
                .unwrap_err()
                .field,
            "prefix"
        );
    }

    #[test]
    fn bcrypt_needs_a_prefix_and_a_bounded_cost() {
        let value = "acme_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
        let made = bcrypt::hash(value, 4).unwrap();
        let h = hash("bcrypt", &made, None);
        assert_eq!(key(None, Some(&h), None).unwrap_err().field, "prefix");
        assert_eq!(key(None, Some(&h), Some("ac")).unwrap_err().field, "prefix");
        let got = key(None, Some(&h), Some("acme_9f8e")).unwrap();
        assert!(got.stored.matches(value));
        assert!(!got.stored.matches("acme_9f8e7d6c5b4a39281706f5e4d3c2b1a1"));
        assert!(!got.stored.matches("xcme_9f8e7d6c5b4a39281706f5e4d3c2b1a0"));
        let costly = bcrypt::hash(value, 13).unwrap();
        assert!(key(None, Some(&hash("bcrypt", &costly, None)), Some("acme")).is_err());
        assert!(key(
            None,
            Some(&hash("bcrypt", "$2b$04$short", None)),
            Some("acme")
        )
        .is_err());
        let secret = imported_credential(
            CredentialInput {
                field: "secret",
                value: None,
                hash: Some(&h),
                prefix: Some("acme"),
                legacy: None,
            },
            Mode::Test,
            CredentialKind::ClientSecret,
        );
        assert_eq!(secret.unwrap_err().field, "secretHash.algorithm");
    }

    #[test]
    fn prefixes_are_tried_longest_first_and_never_the_whole_value() {
        assert_eq!(candidate_prefixes("abcdef"), vec!["abcde", "abcd"]);
        assert!(candidate_prefixes("abc").is_empty());
        let long = "k".repeat(200);
        assert_eq!(
            candidate_prefixes(&long).len(),
            MAX_PREFIX_CHARS - MIN_PREFIX_CHARS + 1
        );
        assert_eq!(
            candidate_prefixes("ünïcödé"),
            vec!["ünïcöd", "ünïcö", "ünïc"]
        );
    }

    #[test]
    fn lines_name_what_is_wrong() {
        let cases = [
            (r#"{"type":"planet","id":"x"}"#, "unknown variant"),
            (r#"{"type":"tenant","name":"A"}"#, "missing field `id`"),
            (
                r#"{"type":"tenant","id":"a","name":"A","colour":"red"}"#,
                "unknown field `colour`",
            ),
            (r#"{"type":"tenant","id":"A B","name":"A"}"#, ""),
            ("not json", ""),
        ];
        for (line, expected) in cases {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(expected), "{line}: {e}");
            assert!(!e.contains(" at line "), "{e}");
        }
        assert!(matches!(
            parse_line(r#"{"type":"role","name":"reader","permissions":["docs:read"]}"#),
            Ok(Record::Role(_))
        ));
    }
}
