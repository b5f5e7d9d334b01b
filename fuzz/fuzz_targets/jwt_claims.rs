//! The claims reader behind a valid signature: arbitrary bytes as the JWT
//! payload (and a header chosen from the input), signed with a real key, must
//! be accepted or refused without panicking, and an accepted token's claims
//! must match the payload's.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_verify::{verify_jwt, Expectations, KeySet};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static (SigningKey, KeySet) {
    static KEY: OnceLock<(SigningKey, KeySet)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let jwk = key.public_jwk();
        let set = KeySet::from_keys([jwk]).unwrap();
        (key, set)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, set) = key();
    // The first byte picks a header: the expected one, or one built from
    // the input (to reach the header reader with a valid signature too).
    let (choice, payload) = data.split_first().unwrap_or((&0, &[]));
    let header = if choice % 4 == 0 {
        let cut = payload.len() / 2;
        let (h, p) = payload.split_at(cut);
        (h.to_vec(), p.to_vec())
    } else {
        (
            format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#, key.kid()).into_bytes(),
            payload.to_vec(),
        )
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header.0),
        URL_SAFE_NO_PAD.encode(&header.1)
    );
    let signature = key.sign(signing_input.as_bytes()).unwrap();
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let expectations = Expectations::new("https://issuer.fuzz");
    if let Ok(claims) = verify_jwt(&token, set, &expectations, 1_800_000_000) {
        // Accepted: the payload was a JSON object naming our issuer.
        let value: serde_json::Value =
            serde_json::from_slice(&header.1).expect("an accepted payload is JSON");
        assert_eq!(value["iss"], "https://issuer.fuzz");
        assert_eq!(value["jti"].as_str(), Some(claims.jti()));
    }
});
