//! Signing keys for access tokens: Ed25519 (`EdDSA`, the default), ES256 and
//! RS256, backed by aws-lc-rs. A key is parsed once and kept ready to sign;
//! its private half is only ever exported as PKCS#8 for the store, and its
//! `Debug` never shows it.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_types::oauth::Jwk;
use sha2::{Digest as _, Sha256};

pub use latchkey_types::oauth::Algorithm;

/// A signing-key error: bad key material or a crypto failure.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The stored key could not be parsed.
    #[error("invalid {0} key material")]
    InvalidKey(&'static str),
    /// The crypto backend failed (key generation or signing).
    #[error("crypto backend failure")]
    Crypto,
}

enum Inner {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key, ready to sign.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    inner: Inner,
    pkcs8: Vec<u8>,
    jwk: Jwk,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("private", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(alg: Algorithm) -> Result<Self, SigningError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| SigningError::Crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| SigningError::Crypto)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 => {
                let pair =
                    RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| SigningError::Crypto)?;
                let der = pair.as_der().map_err(|_| SigningError::Crypto)?;
                der.as_ref().to_vec()
            }
        };
        Self::from_pkcs8(alg, &pkcs8)
    }

    /// Loads a key from its PKCS#8 DER encoding.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, SigningError> {
        let (inner, mut jwk) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
                    .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
                    .map_err(|_| SigningError::InvalidKey("Ed25519"))?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(x),
                    ..empty_jwk(alg)
                };
                (Inner::Ed(pair), jwk)
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| SigningError::InvalidKey("P-256"))?;
                // Uncompressed point: 0x04 || x (32) || y (32).
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(SigningError::InvalidKey("P-256"));
                }
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
                    y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
                    ..empty_jwk(alg)
                };
                (Inner::Ec(pair), jwk)
            }
            Algorithm::RS256 => {
                let pair =
                    RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| SigningError::InvalidKey("RSA"))?;
                let public = pair.public_key();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    n: Some(
                        URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    ),
                    e: Some(
                        URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                    ),
                    ..empty_jwk(alg)
                };
                (Inner::Rsa(pair), jwk)
            }
        };
        let kid = thumbprint(&jwk);
        jwk.kid = kid.clone();
        Ok(SigningKey {
            alg,
            kid,
            inner,
            pkcs8: pkcs8.to_vec(),
            jwk,
            rng: SystemRandom::new(),
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key as PKCS#8 DER, for the store only.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs `message` (a JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match &self.inner {
            Inner::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Inner::Ec(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SigningError::Crypto),
            Inner::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| SigningError::Crypto)?;
                Ok(sig)
            }
        }
    }
}

fn empty_jwk(alg: Algorithm) -> Jwk {
    Jwk {
        kty: String::new(),
        kid: String::new(),
        alg: alg.as_str().into(),
        use_: "sig".into(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
    }
}

/// The RFC 7638 JWK thumbprint: base64url SHA-256 of the required members in
/// lexicographic order, without whitespace.
pub fn thumbprint(jwk: &Jwk) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            s(&jwk.crv),
            s(&jwk.x)
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s(&jwk.crv),
            s(&jwk.x),
            s(&jwk.y)
        ),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s(&jwk.e), s(&jwk.n)),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};

    #[test]
    fn ed25519_keys_sign_and_reload_with_the_same_kid() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let again = SigningKey::from_pkcs8(Algorithm::EdDSA, key.pkcs8_der()).unwrap();
        assert_eq!(key.kid(), again.kid());
        let sig = key.sign(b"payload").unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(key.public_jwk().x.as_ref().unwrap())
            .unwrap();
        UnparsedPublicKey::new(&ED25519, x)
            .verify(b"payload", &sig)
            .unwrap();
        assert_eq!(key.public_jwk().kty, "OKP");
        assert_eq!(key.public_jwk().kid, key.kid());
    }

    #[test]
    fn es256_keys_sign_verifiably() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let sig = key.sign(b"payload").unwrap();
        assert_eq!(sig.len(), 64);
        let jwk = key.public_jwk();
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(jwk.x.as_ref().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(jwk.y.as_ref().unwrap()).unwrap());
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(b"payload", &sig)
            .unwrap();
    }

    #[test]
    fn rs256_keys_export_a_public_modulus_and_reload() {
        let key = SigningKey::generate(Algorithm::RS256).unwrap();
        let jwk = key.public_jwk();
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk.n.as_ref().unwrap())
                .unwrap()
                .len(),
            256
        );
        assert_eq!(jwk.e.as_deref(), Some("AQAB"));
        let again = SigningKey::from_pkcs8(Algorithm::RS256, key.pkcs8_der()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(key.sign(b"m").unwrap().len(), 256);
    }

    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            ..empty_jwk(Algorithm::RS256)
        };
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(key.pkcs8_der())));
    }
}
