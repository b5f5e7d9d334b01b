//! `private_key_jwt` and the JWT-bearer grant with assertions built by a
//! standard library (`jsonwebtoken`), and the attacks that must fail.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{encode, EncodingKey, Header};
use latchkey_core::clock::Clock;
use latchkey_core::signing::{Algorithm, SigningKey};
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn encoding_key(key: &SigningKey) -> (jsonwebtoken::Algorithm, EncodingKey) {
    match key.alg() {
        Algorithm::EdDSA => (
            jsonwebtoken::Algorithm::EdDSA,
            EncodingKey::from_ed_der(key.pkcs8_der()),
        ),
        Algorithm::ES256 => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_der(key.pkcs8_der()),
        ),
        Algorithm::RS256 => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(key.pkcs8_der())
            );
            (
                jsonwebtoken::Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            )
        }
    }
}

impl TestApp {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Claims of a good assertion by `client`.
    pub(crate) fn claims(&self, client: &str) -> Value {
        let now = self.now();
        json!({
            "iss": client, "sub": client, "aud": self.url("/oauth/token"),
            "iat": now, "exp": now + 120, "jti": latchkey_core::token::new_jti(),
        })
    }

    pub(crate) fn sign(&self, key: &SigningKey, claims: &Value, with_kid: bool) -> String {
        let (alg, enc) = encoding_key(key);
        let mut header = Header::new(alg);
        if with_kid {
            header.kid = Some(key.kid().to_owned());
        }
        encode(&header, claims, &enc).unwrap()
    }

    pub(crate) async fn register(&self, user: &str, key: &SigningKey) {
        let r = self
            .post(
                &format!("/v1/users/{user}/keys"),
                json!({"jwk": key.public_jwk()}),
            )
            .await;
        assert_eq!(r.expect(201)["kid"], key.kid());
    }

    pub(crate) async fn with_private_key_jwt(&self, assertion: &str) -> Reply {
        self.token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
        )
        .await
    }

    pub(crate) async fn with_jwt_bearer(&self, assertion: &str) -> Reply {
        self.token(
            None,
            &[("grant_type", JWT_BEARER), ("assertion", assertion)],
        )
        .await
    }
}

async fn assertions_signed_with_registered_keys_get_tokens(app: TestApp) {
    let m = app.machine("signer").await;
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        app.register(&m, &key).await;
        let assertion = app.sign(&key, &app.claims(&m), true);
        let r = app.with_private_key_jwt(&assertion).await;
        let token = r.expect(200)["access_token"].as_str().unwrap().to_owned();
        assert_eq!(crate::helpers::decode_claims(&token)["sub"], m, "{alg:?}");
        // The same assertion again is a replay.
        app.with_private_key_jwt(&assertion)
            .await
            .expect_oauth_error(401, "invalid_client");
        // The JWT-bearer grant, with a fresh assertion (and no kid: the
        // registered keys of the algorithm are tried).
        let assertion = app.sign(&key, &app.claims(&m), false);
        app.with_jwt_bearer(&assertion).await.expect(200);
        app.with_jwt_bearer(&assertion)
            .await
            .expect_oauth_error(400, "invalid_grant");
    }
    // The issuer itself is an acceptable audience too, and client_id may be sent.
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    app.register(&m, &key).await;
    let mut claims = app.claims(&m);
    claims["aud"] = json!([app.base.clone()]);
    let assertion = app.sign(&key, &claims, true);
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &m),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    r.expect(200);
    let meta = app.get("/.well-known/oauth-authorization-server").await;
    let meta = meta.expect(200);
    assert!(meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(JWT_BEARER)));
}

async fn forged_expired_and_misdirected_assertions_are_refused(app: TestApp) {
    let m = app.machine("signer").await;
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    app.register(&m, &key).await;
    let now = app.now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = app.claims(&m);
        f(&mut c);
        c
    };
    let stranger = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let mut cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            app.sign(
                &key,
                &with(&|c| c["aud"] = json!("https://elsewhere.example/token")),
                true,
            ),
        ),
        (
            "expired",
            app.sign(&key, &with(&|c| c["exp"] = json!(now - 120)), true),
        ),
        (
            "too far exp",
            app.sign(&key, &with(&|c| c["exp"] = json!(now + 3600)), true),
        ),
        (
            "no exp",
            app.sign(
                &key,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                true,
            ),
        ),
        (
            "no jti",
            app.sign(
                &key,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
                true,
            ),
        ),
        (
            "iat in the future",
            app.sign(&key, &with(&|c| c["iat"] = json!(now + 600)), true),
        ),
        (
            "iss differs",
            app.sign(
                &key,
                &with(&|c| c["iss"] = json!("usr_someoneelse000000")),
                true,
            ),
        ),
        (
            "unregistered key",
            app.sign(&stranger, &app.claims(&m), true),
        ),
    ];
    // alg none.
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": key.kid()}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(app.claims(&m).to_string());
    cases.push(("alg none", format!("{header}.{payload}.")));
    cases.push((
        "alg none with a signature",
        format!("{header}.{payload}.AAAA"),
    ));
    // HS256 keyed with the public key (the classic confusion).
    let public = URL_SAFE_NO_PAD
        .decode(key.public_jwk().x.as_ref().unwrap())
        .unwrap();
    let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(key.kid().to_owned());
    let forged = encode(&hs, &app.claims(&m), &EncodingKey::from_secret(&public)).unwrap();
    cases.push(("HS256 with the public key", forged));
    let jwk_json = serde_json::to_vec(key.public_jwk()).unwrap();
    let forged = encode(&hs, &app.claims(&m), &EncodingKey::from_secret(&jwk_json)).unwrap();
    cases.push(("HS256 with the JWK", forged));
    // A flipped signature bit.
    let good = app.sign(&key, &app.claims(&m), true);
    let mut bytes = good.clone().into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    cases.push(("flipped signature", String::from_utf8(bytes).unwrap()));
    cases.push(("garbage", "not.a.jwt".into()));
    cases.push((
        "oversized",
        format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c"),
    ));

    for (what, assertion) in &cases {
        app.with_private_key_jwt(assertion)
            .await
            .expect_oauth_error(401, "invalid_client");
        app.with_jwt_bearer(assertion)
            .await
            .expect_oauth_error(400, "invalid_grant");
        let _ = what;
    }
    // The good one still works once, after all the noise.
    app.with_private_key_jwt(&good).await.expect(200);
    // A disabled user's assertions stop.
    app.patch(&format!("/v1/users/{m}"), json!({"disabled": true}))
        .await
        .expect(200);
    app.with_jwt_bearer(&app.sign(&key, &app.claims(&m), true))
        .await
        .expect_oauth_error(400, "invalid_grant");
    app.patch(&format!("/v1/users/{m}"), json!({"disabled": false}))
        .await
        .expect(200);
    // A deleted key stops at once.
    let keys = app.get(&format!("/v1/users/{m}/keys")).await;
    let key_id = keys.expect(200)["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/users/{m}/keys/{key_id}"))
        .await
        .expect(204);
    app.with_jwt_bearer(&app.sign(&key, &app.claims(&m), true))
        .await
        .expect_oauth_error(400, "invalid_grant");
}

async fn only_public_keys_of_supported_kinds_can_be_registered(app: TestApp) {
    let m = app.machine("signer").await;
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let mut private = serde_json::to_value(key.public_jwk()).unwrap();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
    let before = app
        .get(&format!("/v1/users/{m}/keys"))
        .await
        .expect(200)
        .clone();
    for bad in [
        json!({"jwk": private}),
        json!({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        json!({"jwk": {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}}),
        json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "short"}}),
        json!({"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
        json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": key.public_jwk().x, "alg": "ES256"}}),
        json!({"key": {}}),
    ] {
        app.post(&format!("/v1/users/{m}/keys"), bad)
            .await
            .expect_problem(400, "invalid_request");
    }
    assert_eq!(
        app.get(&format!("/v1/users/{m}/keys")).await.expect(200),
        &before
    );
    app.register(&m, &key).await;
    app.post(
        &format!("/v1/users/{m}/keys"),
        json!({"jwk": key.public_jwk()}),
    )
    .await
    .expect_problem(409, "conflict");
    app.post(
        "/v1/users/usr_00000000000000000000/keys",
        json!({"jwk": key.public_jwk()}),
    )
    .await
    .expect_problem(404, "not_found");
}

crate::on_both_stores!(
    assertions_signed_with_registered_keys_get_tokens,
    forged_expired_and_misdirected_assertions_are_refused,
    only_public_keys_of_supported_kinds_can_be_registered,
);

#[tokio::test]
async fn a_live_assertion_over_plain_http_is_refused_with_tls_required() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    // Set up a live machine through the trusted proxy (the helpers' client
    // says X-Forwarded-Proto: https).
    let r = app
        .send(
            reqwest::Method::POST,
            "/v1/users",
            Some(&app.live_admin),
            Some(json!({"name": "live-signer"})),
        )
        .await;
    let m = r.expect(201)["id"].as_str().unwrap().to_owned();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    app.send(
        reqwest::Method::POST,
        &format!("/v1/users/{m}/keys"),
        Some(&app.live_admin),
        Some(json!({"jwk": key.public_jwk()})),
    )
    .await
    .expect(201);
    let form = |assertion: String| {
        vec![
            ("grant_type".to_owned(), JWT_BEARER.to_owned()),
            ("assertion".to_owned(), assertion),
        ]
    };
    // Plain HTTP, no proxy header: the assertion has no mode prefix, so the
    // token endpoint itself refuses it once it knows the client is live.
    let plain = reqwest::Client::new();
    let r = plain
        .post(app.url("/oauth/token"))
        .form(&form(app.sign(&key, &app.claims(&m), true)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "tls_required");
    // The same for introspection and revocation authenticated by a live
    // client's assertion.
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let r = plain
            .post(app.url(path))
            .form(&[
                ("token", "anything"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &app.sign(&key, &app.claims(&m), true)),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "tls_required");
    }
    // Through the trusted proxy (as over TLS) it works.
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(&form(app.sign(&key, &app.claims(&m), true)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
