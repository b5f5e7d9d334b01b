//! Public signing keys: a JWKS parsed once into aws-lc-rs keys, indexed by
//! `kid`, each bound to the one algorithm its JWK names.
//!
//! Binding the algorithm to the key (not to the token) is what defeats
//! algorithm confusion: a token can only ever be checked with the algorithm
//! the issuer published for that key.

use std::collections::HashMap;

use aws_lc_rs::signature::{
    ParsedPublicKey, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_types::oauth::{Jwk, JwkSet};

pub use latchkey_types::oauth::Algorithm;

/// Why a JWKS could not be turned into a [`KeySet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// A key of a supported kind has unusable material (bad base64url,
    /// wrong length, not a point on the curve, RSA modulus out of range).
    #[error("key {kid:?}: {reason}")]
    InvalidKey {
        /// The key's `kid`.
        kid: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two different keys share one `kid`, so a token naming it would be
    /// ambiguous.
    #[error("two different keys share kid {0:?}")]
    DuplicateKid(String),
}

/// One parsed public key and the algorithm it is for.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: ParsedPublicKey,
    /// The JWK it came from, to tell a harmless duplicate from a conflict.
    jwk: Jwk,
}

/// The issuer's public keys, by `kid`.
///
/// Built from a JWKS with [`KeySet::from_jwks`]. Keys of kinds this library
/// does not verify (encryption keys, other curves, other algorithms) are
/// skipped, so an issuer may publish them without breaking verifiers.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<(&str, &str)> = self
            .keys
            .iter()
            .map(|(kid, k)| (kid.as_str(), k.alg.as_str()))
            .collect();
        kids.sort_unstable();
        f.debug_struct("KeySet").field("keys", &kids).finish()
    }
}

impl KeySet {
    /// Parses every supported public key of `jwks`: `OKP`/`Ed25519` with
    /// `alg: EdDSA`, `EC`/`P-256` with `alg: ES256`, and `RSA` with
    /// `alg: RS256`, each with `use: sig`. Other keys are skipped.
    ///
    /// # Errors
    /// [`KeySetError::InvalidKey`] when a key of a supported kind is broken,
    /// [`KeySetError::DuplicateKid`] when two different keys share a `kid`.
    pub fn from_jwks(jwks: &JwkSet) -> Result<KeySet, KeySetError> {
        Self::from_keys(jwks.keys.iter())
    }

    /// Like [`KeySet::from_jwks`], from any sequence of JWKs.
    ///
    /// # Errors
    /// As [`KeySet::from_jwks`].
    pub fn from_keys<'a>(jwks: impl IntoIterator<Item = &'a Jwk>) -> Result<KeySet, KeySetError> {
        let mut keys: HashMap<String, VerifyingKey> = HashMap::new();
        for jwk in jwks {
            let Some(key) = parse_jwk(jwk)? else {
                continue;
            };
            if let Some(existing) = keys.get(&jwk.kid) {
                if existing.jwk != key.jwk {
                    return Err(KeySetError::DuplicateKid(jwk.kid.clone()));
                }
                continue;
            }
            keys.insert(jwk.kid.clone(), key);
        }
        Ok(KeySet { keys })
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key has this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The algorithm of the key with this `kid`.
    pub fn algorithm(&self, kid: &str) -> Option<Algorithm> {
        self.keys.get(kid).map(|k| k.alg)
    }

    /// The key ids, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

/// `Ok(None)` for a key of a kind we do not verify.
fn parse_jwk(jwk: &Jwk) -> Result<Option<VerifyingKey>, KeySetError> {
    if jwk.use_ != "sig" || jwk.kid.is_empty() {
        return Ok(None);
    }
    let invalid = |reason| KeySetError::InvalidKey {
        kid: jwk.kid.clone(),
        reason,
    };
    let b64 = |v: &Option<String>, what: &'static str| -> Result<Vec<u8>, KeySetError> {
        let s = v.as_deref().ok_or_else(|| invalid(what))?;
        URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid(what))
    };
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_str()) {
        ("OKP", Some("Ed25519"), "EdDSA") => {
            let x = b64(&jwk.x, "x is not base64url")?;
            if x.len() != 32 {
                return Err(invalid("an Ed25519 key has 32 bytes"));
            }
            let key = ParsedPublicKey::new(&ED25519, x)
                .map_err(|_| invalid("not an Ed25519 public key"))?;
            (Algorithm::EdDSA, key)
        }
        ("EC", Some("P-256"), "ES256") => {
            let x = b64(&jwk.x, "x is not base64url")?;
            let y = b64(&jwk.y, "y is not base64url")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid("P-256 coordinates have 32 bytes"));
            }
            // The uncompressed SEC 1 point: 0x04 || x || y.
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .map_err(|_| invalid("not a point on P-256"))?;
            (Algorithm::ES256, key)
        }
        ("RSA", _, "RS256") => {
            let n = b64(&jwk.n, "n is not base64url")?;
            let e = b64(&jwk.e, "e is not base64url")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            // aws-lc-rs checks the size only when verifying; check it here so
            // a weak key is refused when it is published, not per token.
            // `n` has no leading zero bytes here; an empty one has no bits.
            let bits =
                (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
            if !(2048..=8192).contains(&bits) {
                return Err(invalid("RSA modulus must have 2048 to 8192 bits"));
            }
            if e.is_empty() || e.len() > 4 {
                return Err(invalid("RSA exponent out of range"));
            }
            let key = RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .map_err(|_| invalid("not an RSA public key"))?;
            (Algorithm::RS256, key)
        }
        _ => return Ok(None),
    };
    Ok(Some(VerifyingKey {
        alg,
        key,
        jwk: jwk.clone(),
    }))
}

/// Reads one JWK of a published set, as other issuers write them too: a
/// key without `use` is taken as a signing key, and a key without `alg` gets
/// the one algorithm this library verifies for its type (`RSA` → RS256,
/// `EC`/`P-256` → ES256, `OKP`/`Ed25519` → EdDSA), so the algorithm stays
/// bound to the key. `None` for anything that is not a JWK object.
pub fn jwk_from_json(mut value: serde_json::Value) -> Option<Jwk> {
    let object = value.as_object_mut()?;
    object
        .entry("use")
        .or_insert_with(|| serde_json::Value::from("sig"));
    if !object.contains_key("alg") {
        let alg = match (
            object.get("kty").and_then(serde_json::Value::as_str),
            object.get("crv").and_then(serde_json::Value::as_str),
        ) {
            (Some("RSA"), _) => "RS256",
            (Some("EC"), Some("P-256")) => "ES256",
            (Some("OKP"), Some("Ed25519")) => "EdDSA",
            _ => return None,
        };
        object.insert("alg".into(), alg.into());
    }
    serde_json::from_value(value).ok()
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{jwk_set, TestKey};

    #[test]
    fn supported_keys_are_parsed_and_others_skipped() {
        let ed = TestKey::ed25519("ed");
        let ec = TestKey::es256("ec");
        let rsa = TestKey::rs256("rsa");
        let mut jwks = jwk_set(&[&ed, &ec, &rsa]);
        // An encryption key, an Ed448 key and a PS256 key are not for us.
        jwks.keys.push(Jwk {
            use_: "enc".into(),
            kid: "enc".into(),
            ..ed.jwk.clone()
        });
        jwks.keys.push(Jwk {
            crv: Some("Ed448".into()),
            kid: "ed448".into(),
            ..ed.jwk.clone()
        });
        jwks.keys.push(Jwk {
            alg: "PS256".into(),
            kid: "ps".into(),
            ..rsa.jwk.clone()
        });
        let set = KeySet::from_jwks(&jwks).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.algorithm("ed"), Some(Algorithm::EdDSA));
        assert_eq!(set.algorithm("ec"), Some(Algorithm::ES256));
        assert_eq!(set.algorithm("rsa"), Some(Algorithm::RS256));
        assert!(!set.contains("enc") && !set.contains("ed448") && !set.contains("ps"));
        assert!(format!("{set:?}").contains("EdDSA"));
    }

    #[test]
    fn foreign_jwks_without_use_or_alg_get_the_keys_own_algorithm() {
        let rsa = TestKey::rs256("rsa");
        let mut bare = serde_json::to_value(&rsa.jwk).unwrap();
        let object = bare.as_object_mut().unwrap();
        object.remove("use");
        object.remove("alg");
        object.insert("x5t".into(), "ignored".into());
        let jwk = jwk_from_json(bare).unwrap();
        assert_eq!((jwk.alg.as_str(), jwk.use_.as_str()), ("RS256", "sig"));
        assert_eq!(KeySet::from_keys([&jwk]).unwrap().len(), 1);
        // What a key says is kept: an encryption key stays one.
        let mut enc = serde_json::to_value(&rsa.jwk).unwrap();
        enc["use"] = "enc".into();
        let jwk = jwk_from_json(enc).unwrap();
        assert!(KeySet::from_keys([&jwk]).unwrap().is_empty());
        // An unknown type without alg is skipped, and so is a non-object.
        assert!(jwk_from_json(serde_json::json!({"kty": "oct", "k": "AAAA"})).is_none());
        assert!(jwk_from_json(serde_json::json!("key")).is_none());
    }

    #[test]
    fn broken_material_of_a_supported_kind_is_an_error() {
        let ed = TestKey::ed25519("ed");
        let short = Jwk {
            x: Some(URL_SAFE_NO_PAD.encode([1u8; 31])),
            ..ed.jwk.clone()
        };
        assert!(matches!(
            KeySet::from_keys([&short]),
            Err(KeySetError::InvalidKey { .. })
        ));
        let ec = TestKey::es256("ec");
        let off_curve = Jwk {
            y: Some(URL_SAFE_NO_PAD.encode([7u8; 32])),
            ..ec.jwk.clone()
        };
        assert!(matches!(
            KeySet::from_keys([&off_curve]),
            Err(KeySetError::InvalidKey { .. })
        ));
        let rsa = TestKey::rs256("rsa");
        let weak = Jwk {
            n: Some(URL_SAFE_NO_PAD.encode([0xffu8; 128])),
            ..rsa.jwk.clone()
        };
        assert!(matches!(
            KeySet::from_keys([&weak]),
            Err(KeySetError::InvalidKey { .. })
        ));
    }

    #[test]
    fn a_kid_shared_by_two_different_keys_is_refused_and_a_repeat_is_not() {
        let a = TestKey::ed25519("same");
        let b = TestKey::ed25519("same");
        assert_eq!(
            KeySet::from_keys([&a.jwk, &b.jwk]).unwrap_err(),
            KeySetError::DuplicateKid("same".into())
        );
        assert_eq!(KeySet::from_keys([&a.jwk, &a.jwk]).unwrap().len(), 1);
    }
}
