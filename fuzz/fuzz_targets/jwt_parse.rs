//! JWT verification on arbitrary input: header and base64 parsing, `kid`
//! lookup and signature checks must refuse garbage without panicking, and
//! nothing unsigned by our key may ever verify.
#![no_main]

use std::sync::OnceLock;

use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_verify::{verify_jwt, Expectations, KeySet};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let jwks: Vec<_> = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
            .into_iter()
            .map(|alg| SigningKey::generate(alg).unwrap().public_jwk().clone())
            .collect();
        KeySet::from_keys(jwks.iter()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let expectations = Expectations::new("https://issuer.fuzz");
    // The keys' private halves are gone: no input can carry a valid
    // signature, so every token must be refused.
    assert!(verify_jwt(token, keys(), &expectations, 1_800_000_000).is_err());
});
