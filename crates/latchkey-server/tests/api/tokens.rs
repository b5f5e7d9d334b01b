//! The token endpoint's answers to good and bad clients, the metadata and the
//! JWKS.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use latchkey_types::Mode;

async fn wrong_secret_unknown_client_and_malformed_secret_look_the_same(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let other = app.machine("other").await;
    let other_secret = app.secret(&other).await;
    let cases: Vec<(String, String)> = vec![
        (m.clone(), other_secret.clone()),                   // wrong secret
        ("usr_doesnotexist0000000".into(), secret.clone()),  // unknown client
        ("not-an-id".into(), secret.clone()),                // not even an id
        (m.clone(), "hunter2".into()),                       // malformed secret
        (m.clone(), secret.replace("lk_test_", "lk_live_")), // wrong mode, bad checksum
    ];
    let mut bodies = Vec::new();
    for (id, s) in &cases {
        let r = app
            .token(Some((id, s)), &[("grant_type", "client_credentials")])
            .await;
        r.expect_oauth_error(401, "invalid_client");
        assert!(r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        bodies.push(r.text.clone());
        // client_secret_post gets the same body (without a Basic challenge).
        let r = app
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", s),
                ],
            )
            .await;
        r.expect_oauth_error(401, "invalid_client");
        bodies.push(r.text.clone());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "bodies differ: {bodies:?}"
    );
}

async fn client_secret_post_and_basic_both_work_but_not_together(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &m),
                ("client_secret", &secret),
            ],
        )
        .await;
    r.expect(200);
    let r = app
        .token(
            Some((&m, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ],
        )
        .await;
    r.expect_oauth_error(400, "invalid_request");
    let r = app
        .token(None, &[("grant_type", "client_credentials")])
        .await;
    r.expect_oauth_error(401, "invalid_client");
}

async fn grant_and_parameter_errors_use_the_oauth_codes(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let basic = Some((m.as_str(), secret.as_str()));
    app.token(basic, &[])
        .await
        .expect_oauth_error(400, "invalid_request");
    app.token(basic, &[("grant_type", "password")])
        .await
        .expect_oauth_error(400, "unsupported_grant_type");
    app.token(
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_request");
    app.token(
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("tenant_id", "nowhere"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_target");
    app.token(
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "not a uri"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_target");
    app.token(
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://a.example/#frag"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_target");
    app.token(
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "telemetry:read"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_scope");
    app.token(
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "bad\"scope"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_scope");
    // Not a form at all.
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/json")
        .body("{\"grant_type\":\"client_credentials\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

async fn several_resources_become_an_audience_list(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (_, claims) = app
        .access_token(
            &m,
            &secret,
            &[
                ("resource", "https://b.example/"),
                ("resource", "https://a.example/"),
                ("audience", "urn:x"),
            ],
        )
        .await;
    assert_eq!(
        claims["aud"],
        json!(["https://a.example/", "https://b.example/", "urn:x"])
    );
    let (_, claims) = app.access_token(&m, &secret, &[]).await;
    assert_eq!(
        claims["aud"],
        app.issuer(Mode::Test),
        "the default audience is the mode's issuer"
    );
}

async fn metadata_and_jwks_describe_the_server(app: TestApp) {
    // Each mode is its own issuer, with its metadata where RFC 8414 (path
    // insertion) and OpenID Connect discovery (appended) look for it.
    for (mode, paths) in [
        (
            Mode::Live,
            &[
                "/.well-known/oauth-authorization-server",
                "/.well-known/openid-configuration",
            ][..],
        ),
        (
            Mode::Test,
            &[
                "/.well-known/oauth-authorization-server/test",
                "/test/.well-known/oauth-authorization-server",
                "/test/.well-known/openid-configuration",
                "/.well-known/openid-configuration/test",
            ][..],
        ),
    ] {
        for path in paths {
            let r = app.get(path).await;
            let meta = r.expect(200);
            assert_eq!(meta["issuer"], app.issuer(mode), "{path}");
            assert_eq!(meta["token_endpoint"], format!("{}/oauth/token", app.base));
            assert_eq!(
                meta["jwks_uri"],
                format!("{}/.well-known/jwks.json", app.issuer(mode)),
                "{path}"
            );
            assert_eq!(
                meta["grant_types_supported"],
                json!([
                    "client_credentials",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ])
            );
            assert_eq!(
                meta["token_endpoint_auth_methods_supported"],
                json!([
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt"
                ])
            );
        }
    }
    let mut kids = Vec::new();
    for mode in Mode::ALL {
        let r = app.get(TestApp::jwks_path(mode)).await;
        let cache = r.headers["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("max-age=300"), "{cache}");
        let keys = r.expect(200)["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{mode}: one key, the mode's own");
        for k in &keys {
            assert_eq!(k["alg"], "EdDSA");
            assert_eq!(k["use"], "sig");
            assert!(k["kid"].is_string());
            assert!(k.get("d").is_none(), "no private part");
            kids.push(k["kid"].as_str().unwrap().to_owned());
        }
    }
    assert_ne!(kids[0], kids[1], "the modes share no key");
    // The key that signs test tokens is the one the test JWKS publishes.
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (token, _) = app.access_token(&m, &secret, &[]).await;
    let kid = decode_header(&token).unwrap().kid.unwrap();
    let test_jwks = app.get(TestApp::jwks_path(Mode::Test)).await;
    assert_eq!(test_jwks.expect(200)["keys"][0]["kid"], kid.as_str());
}

async fn tokens_verify_against_the_jwks_with_a_standard_library(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (token, _) = app
        .access_token(&m, &secret, &[("audience", "https://api.example")])
        .await;
    let header = decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwks: JwkSet = app
        .client
        .get(app.url(TestApp::jwks_path(Mode::Test)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[app.issuer(Mode::Test)]);
    validation.set_audience(&["https://api.example"]);
    let data = decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["sub"], m);
    // A tampered payload fails.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert!(decode::<Value>(&parts.join("."), &key, &validation).is_err());
    // The wrong audience fails.
    validation.set_audience(&["https://other.example"]);
    assert!(decode::<Value>(&token, &key, &validation).is_err());
}

#[tokio::test]
async fn each_algorithm_can_be_chosen_per_mode() {
    for (alg, jalg) in [("ES256", Algorithm::ES256), ("RS256", Algorithm::RS256)] {
        let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
            s.test_signing_alg = Some(alg.into());
        })
        .await
        .unwrap();
        let m = app.machine("m").await;
        let secret = app.secret(&m).await;
        let (token, _) = app.access_token(&m, &secret, &[]).await;
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, jalg);
        let jwks: JwkSet = app
            .client
            .get(app.url(TestApp::jwks_path(Mode::Test)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key =
            DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
        let mut v = Validation::new(jalg);
        v.set_issuer(&[app.issuer(Mode::Test)]);
        v.set_audience(&[app.issuer(Mode::Test)]);
        decode::<Value>(&token, &key, &v).unwrap();
    }
}

/// The form rules (`latchkey_core::oauth_form`) answer with their own
/// descriptions, the Basic challenge only where Basic was used.
async fn form_rules_answer_with_their_descriptions(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let basic = Some((m.as_str(), secret.as_str()));
    let cc = ("grant_type", "client_credentials");
    type Case<'a> = (Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 6] = [
        (
            basic,
            vec![cc, cc],
            "the parameter grant_type must not repeat",
        ),
        (
            basic,
            vec![cc, ("client_secret", &secret)],
            "use one client authentication method, not several",
        ),
        (
            basic,
            vec![cc, ("client_id", "usr_someone_else")],
            "client_id differs from the authenticated client",
        ),
        (
            None,
            vec![
                cc,
                ("client_assertion_type", "jwt"),
                ("client_assertion", "a.b.c"),
            ],
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        (basic, vec![], "grant_type is required"),
        // RFC 6749 §3.2 holds for the endpoint's parameters even where this
        // grant does not read them.
        (
            basic,
            vec![cc, ("assertion", "x"), ("assertion", "y")],
            "the parameter assertion must not repeat",
        ),
    ];
    for (auth, form, description) in cases {
        let r = app.token(auth, &form).await;
        r.expect_oauth_error(400, "invalid_request");
        assert_eq!(r.body["error_description"], description, "{form:?}");
    }
    // Audiences and resources may repeat.
    app.token(basic, &[cc, ("audience", "a"), ("audience", "b")])
        .await
        .expect(200);

    let broken_basic = app
        .client
        .post(app.url("/oauth/token"))
        .header("authorization", "Basic !!!")
        .form(&[cc])
        .send()
        .await
        .unwrap();
    assert_eq!(broken_basic.status(), 401);
    let challenge = broken_basic.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let r = app.token(None, &[cc, ("client_id", &m)]).await;
    r.expect_oauth_error(401, "invalid_client");
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
}

crate::on_both_stores!(
    wrong_secret_unknown_client_and_malformed_secret_look_the_same,
    client_secret_post_and_basic_both_work_but_not_together,
    grant_and_parameter_errors_use_the_oauth_codes,
    several_resources_become_an_audience_list,
    form_rules_answer_with_their_descriptions,
    metadata_and_jwks_describe_the_server,
    tokens_verify_against_the_jwks_with_a_standard_library,
);
