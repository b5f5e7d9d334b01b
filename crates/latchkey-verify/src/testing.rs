//! Test helpers: keys generated with aws-lc-rs, tokens signed by hand (so
//! tests can forge any header or payload), and a realistic claim set.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_types::oauth::{Jwk, JwkSet};
use serde_json::{json, Value};

/// The fixed "now" of the unit tests.
pub(crate) const NOW: i64 = 1_800_000_000;

enum Signer {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key and its public JWK.
pub(crate) struct TestKey {
    pub(crate) jwk: Jwk,
    signer: Signer,
}

fn jwk(kty: &str, kid: &str, alg: &str) -> Jwk {
    Jwk {
        kty: kty.into(),
        kid: kid.into(),
        alg: alg.into(),
        use_: "sig".into(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
    }
}

impl TestKey {
    pub(crate) fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = Jwk {
            crv: Some("Ed25519".into()),
            x: Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
            ..jwk("OKP", kid, "EdDSA")
        };
        TestKey {
            jwk,
            signer: Signer::Ed(pair),
        }
    }

    pub(crate) fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = Jwk {
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
            ..jwk("EC", kid, "ES256")
        };
        TestKey {
            jwk,
            signer: Signer::Ec(pair),
        }
    }

    pub(crate) fn rs256(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let jwk = Jwk {
            n: Some(URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero())),
            e: Some(URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero())),
            ..jwk("RSA", kid, "RS256")
        };
        TestKey {
            jwk,
            signer: Signer::Rsa(pair),
        }
    }

    /// The raw public key (point, or DER for RSA).
    pub(crate) fn public_key_bytes(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Ed(p) => p.public_key().as_ref().to_vec(),
            Signer::Ec(p) => p.public_key().as_ref().to_vec(),
            Signer::Rsa(p) => p.public_key().as_der().unwrap().as_ref().to_vec(),
        }
    }

    /// The header Latchkey would write for this key.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": self.jwk.alg, "kid": self.jwk.kid, "typ": "at+jwt"})
    }

    /// A token with the usual header and these claims.
    pub(crate) fn token(&self, claims: &Value) -> String {
        self.token_with(&self.header().to_string(), &claims.to_string())
    }

    /// A token with exactly this header and payload text, signed.
    pub(crate) fn token_with(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Ed(p) => p.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Ec(p) => p.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// A JWKS of these keys.
pub(crate) fn jwk_set(keys: &[&TestKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    }
}

/// Claims as the Latchkey server writes them: live mode, issued at `now`
/// for an hour, with roles in two tenants, two scopes and a custom claim.
pub(crate) fn sample_claims(now: i64) -> Value {
    json!({
        "iss": "https://auth.example",
        "sub": "usr_abc",
        "aud": "https://api.example",
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "jti": "3q2-7wAAAAAAAAAAAAAAAA",
        "client_id": "usr_abc",
        "scope": "telemetry:write telemetry:read",
        "mode": "live",
        "tenantId": "acme",
        "userId": "usr_abc",
        "kind": "machine",
        "authorization": {
            "acme": {"roles": ["operator"]},
            "acme-eu": {"roles": ["operator", "viewer"]}
        },
        "region": "eu"
    })
}
