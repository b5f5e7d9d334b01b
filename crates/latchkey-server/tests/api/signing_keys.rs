//! Signing-key rotation end to end: publish ahead, sign later, retire after
//! the last token expires; keys sealed at rest.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use latchkey_types::Mode;

impl TestApp {
    /// The test issuer's JWKS (these tests rotate test mode's keys).
    async fn jwks(&self) -> JwkSet {
        self.jwks_of(Mode::Test).await
    }

    async fn jwks_of(&self, mode: Mode) -> JwkSet {
        self.client
            .get(self.url(TestApp::jwks_path(mode)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn kids(&self) -> Vec<String> {
        self.jwks()
            .await
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    }
}

fn kid_of(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

fn verifies(token: &str, jwks: &JwkSet, issuer: &str) -> bool {
    let header = decode_header(token).unwrap();
    let Some(jwk) = jwks.find(header.kid.as_deref().unwrap()) else {
        return false;
    };
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.validate_aud = false;
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).is_ok()
}

async fn rotation_publishes_ahead_and_no_verifier_meets_an_unknown_kid(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (before, _) = app.access_token(&m, &secret, &[]).await;
    let old_kid = kid_of(&before);
    let kids_before = app.kids().await.len();
    let live_jwks = app.jwks_of(Mode::Live).await;

    // Two verifiers that cache the JWKS and refresh it when max-age passed:
    // the jsonwebtoken crate with a cache kept here, and latchkey-verify
    // (whose cache follows the server's clock).
    let mut cached = app.jwks().await;
    let mut cached_at = 0i64;
    let max_age = 300i64;
    let clock = app.clock.clone();
    let verifier = latchkey_verify::Verifier::builder(app.issuer(Mode::Test))
        .mode(latchkey_types::Mode::Test)
        .clock(move || latchkey_core::clock::Clock::now(&*clock).unix_timestamp())
        .build()
        .await
        .unwrap();

    let r = app.post("/v1/signing-keys/rotate", json!({})).await;
    let created = r.expect(201).clone();
    let new_kid = created["kid"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "next");
    assert_ne!(new_kid, old_kid);
    assert!(app.kids().await.contains(&new_kid), "published at once");
    assert_eq!(app.kids().await.len(), kids_before + 1);

    // Walk through the publish-ahead period minute by minute.
    let mut tokens = vec![before.clone()];
    let mut elapsed = 0i64;
    let mut signed_by_new = false;
    while elapsed <= 900 {
        if elapsed - cached_at >= max_age {
            cached = app.jwks().await;
            verifier.refresh().await.unwrap();
            cached_at = elapsed;
        }
        let (t, _) = app.access_token(&m, &secret, &[]).await;
        let kid = kid_of(&t);
        assert!(
            cached.find(&kid).is_some(),
            "at +{elapsed}s the verifier's cached JWKS lacks kid {kid}"
        );
        assert!(verifies(&t, &cached, &app.issuer(Mode::Test)));
        // From its cache alone: no unknown kid, no extra fetch needed.
        let claims = verifier
            .verify_cached(&t)
            .unwrap_or_else(|e| panic!("latchkey-verify at +{elapsed}s: {e}"));
        assert_eq!(claims.user_id(), m);
        if kid == new_kid {
            signed_by_new = true;
            assert!(elapsed >= 600, "signed before the publish-ahead delay");
        } else {
            assert!(elapsed < 600, "old key still signing at +{elapsed}s");
        }
        tokens.push(t);
        app.clock.advance(60);
        elapsed += 60;
    }
    assert!(signed_by_new);
    // Rotating test mode's keys leaves the live issuer's JWKS as it was.
    assert_eq!(app.jwks_of(Mode::Live).await, live_jwks);
    // Every token verifies against the current JWKS while unexpired.
    let now_jwks = app.jwks().await;
    verifier.refresh().await.unwrap();
    for t in &tokens {
        assert!(verifies(t, &now_jwks, &app.issuer(Mode::Test)));
        verifier.verify_cached(t).unwrap();
    }
    let listed = app.get("/v1/signing-keys").await;
    let statuses: Vec<(String, String)> = listed.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (old_kid.clone(), "retired".into()),
            (new_kid.clone(), "active".into())
        ]
    );
    assert!(!listed.text.contains("\"d\""), "no private key material");

    // The retired key leaves once every token it signed has expired (the
    // longest lifetime is one day).
    app.clock.advance(86_400 + 120);
    let kids = app.kids().await;
    assert!(!kids.contains(&old_kid), "retired key still published");
    assert!(kids.contains(&new_kid));
    let listed = app.get("/v1/signing-keys").await;
    assert_eq!(listed.expect(200)["data"][0]["status"], "removed");
}

async fn an_immediate_rotation_signs_at_once_with_the_chosen_algorithm(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let verifier = latchkey_verify::Verifier::builder(app.issuer(Mode::Test))
        .mode(latchkey_types::Mode::Test)
        .build()
        .await
        .unwrap();
    // The test clock stands still; let a millisecond pass as real time would.
    app.clock.advance_ms(1);
    let r = app
        .post(
            "/v1/signing-keys/rotate",
            json!({"alg": "ES256", "immediate": true}),
        )
        .await;
    let kid = r.expect(201)["kid"].as_str().unwrap().to_owned();
    let all = app.get("/v1/signing-keys").await;
    assert_eq!(r.body["status"], "active", "{}\n{}", r.text, all.text);
    let (t, _) = app.access_token(&m, &secret, &[]).await;
    assert_eq!(kid_of(&t), kid);
    // A verifier that cached the JWKS before the rotation meets the new kid,
    // re-fetches once, and accepts the token.
    let fetches = verifier.fetch_count();
    verifier.verify(&t).await.unwrap();
    assert_eq!(verifier.fetch_count(), fetches + 1, "exactly one re-fetch");
    assert_eq!(
        decode_header(&t).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    // The live mode is unaffected.
    let live = app
        .send(
            reqwest::Method::GET,
            "/v1/signing-keys",
            Some(&app.live_admin),
            None,
        )
        .await;
    assert_eq!(live.expect(200)["data"].as_array().unwrap().len(), 1);
    app.post("/v1/signing-keys/rotate", json!({"alg": "HS256"}))
        .await
        .expect_problem(400, "invalid_request");
    app.post("/v1/signing-keys/rotate", json!({"extra": 1}))
        .await
        .expect_problem(400, "invalid_request");
}

crate::on_both_stores!(
    rotation_publishes_ahead_and_no_verifier_meets_an_unknown_kid,
    an_immediate_rotation_signs_at_once_with_the_chosen_algorithm,
);

#[tokio::test]
async fn the_store_holds_no_private_key_in_clear_and_needs_the_master_key() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    app.post("/v1/signing-keys/rotate", json!({"alg": "RS256"}))
        .await
        .expect(201);
    app.post("/v1/signing-keys/rotate", json!({"alg": "ES256"}))
        .await
        .expect(201);
    let dir = app.data_dir().to_path_buf();
    let master = dir.join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&master).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "master.key must be private");
    }
    // Read the database the way an attacker with the file would.
    let url = format!("sqlite://{}", dir.join("latchkey.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT kid, private_pkcs8 FROM signing_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for (kid, stored) in &rows {
        assert!(stored.starts_with("v1."), "{kid} is not sealed");
        // PKCS#8 DER of every supported algorithm starts with a SEQUENCE
        // whose base64 begins "MC4C", "MFMC", "MFEC", "MIGH", "MIIE" or "MIIF".
        for plain in [
            "MC4CAQ", "MFMCAQ", "MFECAQ", "MIGHAg", "MIIEv", "MIIEo", "MIIFA",
        ] {
            assert!(!stored.contains(plain), "{kid} looks like plain PKCS#8");
        }
    }
    drop(conn);
    let bytes = std::fs::read(dir.join("latchkey.db")).unwrap();
    let der_prefix = [
        0x30u8, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
    ];
    assert!(!bytes.windows(der_prefix.len()).any(|w| w == der_prefix));

    // Starting on this store with another master key fails clearly.
    let wrong = latchkey_core::sealing::MasterKey::generate_text().unwrap();
    let settings = latchkey_server::Settings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.clone()),
        ..Default::default()
    };
    let keys = latchkey_server::BootstrapKeys {
        master_key: Some(latchkey_core::Secret::new(wrong)),
        ..Default::default()
    };
    let config = latchkey_server::Config::resolve(settings, keys).unwrap();
    let err = latchkey_server::spawn(
        config,
        std::sync::Arc::new(latchkey_core::clock::SystemClock),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("master key"), "{err}");
}
