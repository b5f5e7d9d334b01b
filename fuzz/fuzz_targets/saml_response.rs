//! The SAML service provider's response check on arbitrary documents,
//! seeded with responses signed by the test IdP's key
//! (`crates/latchkey-core/tests/fixtures/saml`): it must refuse or accept
//! without panicking, and whatever it accepts can only be what the IdP
//! signed (alice, in the one assertion of the seeds), however the fuzzer
//! rearranges the document around the signatures: a wrapping attack found
//! here fails the assertion.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use latchkey_core::federation::saml::{check_response, parse_metadata, Expected, Idp, Sp};
use libfuzzer_sys::fuzz_target;

const CERT: &str = include_str!("../../crates/latchkey-core/tests/fixtures/saml/idp-cert.pem");

fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(|| {
        let body: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        Idp {
            entity_id: "https://idp.example/metadata".into(),
            sso_url: "https://idp.example/sso".into(),
            certificates: vec![STANDARD.decode(body).unwrap()],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    // Metadata documents go through the same parser.
    let _ = parse_metadata(xml);
    let expected = Expected {
        idp: idp(),
        sp: Sp {
            entity_id: "https://auth.example/auth/saml/corp/metadata",
            acs_url: "https://auth.example/auth/saml/corp/acs",
        },
        request_id: "_request-1",
        now: 1_800_000_000,
        skew: 60,
        allow_sha1: false,
    };
    if let Ok(assertion) = check_response(xml, &expected) {
        assert_eq!(assertion.name_id, "alice@example.com");
        assert_eq!(assertion.id, "_assertion-1");
        assert_eq!(assertion.attributes["name"], ["Alice Example"]);
    }
});
