//! Interop: clients we did not write discover the server from its metadata,
//! get a token with client_credentials, and verify it against `jwks_uri`
//! with issuer and audience checks. In Rust with the `oauth2` and
//! `jsonwebtoken` crates, and in Python with Authlib and PyJWT.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use latchkey_types::Mode;

async fn setup_machine(app: &TestApp) -> (String, String) {
    app.put(
        "/v1/roles/reader",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    let m = app.machine("interop").await;
    app.put(
        &format!("/v1/tenants/{}/users/{m}/roles", app.workspace_id),
        json!({"roles": ["reader"]}),
    )
    .await
    .expect(200);
    let secret = app.secret(&m).await;
    (m, secret)
}

async fn the_rust_oauth2_and_jsonwebtoken_crates_get_and_verify_a_token(app: TestApp) {
    let (id, secret) = setup_machine(&app).await;
    // Discovery.
    // The machine is of test mode, whose issuer is `{url}/test`.
    let meta: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server/test"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = meta["token_endpoint"].as_str().unwrap().to_owned();
    let jwks_uri = meta["jwks_uri"].as_str().unwrap().to_owned();
    let issuer = meta["issuer"].as_str().unwrap().to_owned();

    // A standard OAuth 2.0 client, client_credentials with Basic auth.
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret))
        .set_token_uri(TokenUrl::new(token_url).unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .exchange_client_credentials()
        .add_scope(Scope::new("telemetry:read".into()))
        .add_extra_param("audience", "https://telemetry.example")
        .request_async(&http)
        .await
        .unwrap();
    let token = response.access_token().secret().to_owned();
    assert!(response.expires_in().is_some());

    // A standard JWT library against jwks_uri, with issuer and audience checks.
    let jwks: JwkSet = reqwest::get(jwks_uri).await.unwrap().json().await.unwrap();
    let header = decode_header(&token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer.as_str()]);
    validation.set_audience(&["https://telemetry.example"]);
    let claims = decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["scope"], "telemetry:read");
}

/// `python3` with Authlib, PyJWT, requests and cryptography, or `None`
/// (said, and refused under CI, which installs them).
fn python() -> Option<String> {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import authlib, jwt, requests, cryptography"])
        .output();
    if matches!(&probe, Ok(o) if o.status.success()) {
        return Some(python);
    }
    // CI installs them (.ci/run); on a laptop without them, say so.
    assert!(
        std::env::var("CI").is_err(),
        "CI must have Authlib, PyJWT, requests and cryptography installed"
    );
    eprintln!("skipped: python3 with authlib, pyjwt[crypto] and requests is not available");
    None
}

/// Runs `tests/interop/<script>` with `env`; the JSON it printed.
async fn run_script(python: &str, script: &str, env: &[(&str, &str)]) -> Value {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python)
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap()
}

async fn python_authlib_and_pyjwt_get_and_verify_a_token(app: TestApp) {
    let Some(python) = python() else { return };
    let (id, secret) = setup_machine(&app).await;
    let verified = run_script(
        &python,
        "client_credentials.py",
        &[
            ("ISSUER", &app.issuer(Mode::Test)),
            ("CLIENT_ID", &id),
            ("CLIENT_SECRET", &secret),
            ("AUDIENCE", "https://telemetry.example"),
        ],
    )
    .await;
    assert_eq!(verified["sub"], id);
    assert_eq!(verified["aud"], "https://telemetry.example");
    assert_eq!(verified["scope"], "telemetry:read");
    assert_eq!(verified["introspected_active"], true);
}

/// A token of each mode, with the same audience.
async fn one_token_per_mode(app: &TestApp, audience: &str) -> [(Mode, String); 2] {
    let mut out = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        let r = app
            .send(
                reqwest::Method::POST,
                "/v1/users",
                Some(app.admin(mode)),
                Some(json!({"name": format!("{mode}-machine")})),
            )
            .await;
        let user = r.expect(201)["id"].as_str().unwrap().to_owned();
        let r = app
            .send(
                reqwest::Method::POST,
                &format!("/v1/users/{user}/secrets"),
                Some(app.admin(mode)),
                Some(json!({})),
            )
            .await;
        let secret = r.expect(201)["secret"].as_str().unwrap().to_owned();
        let (token, claims) = app
            .access_token(&user, &secret, &[("audience", audience)])
            .await;
        assert_eq!(claims["iss"], app.issuer(mode));
        assert_eq!(claims["mode"], mode.as_str(), "the claim stays");
        out.push((mode, token));
    }
    [out[0].clone(), out[1].clone()]
}

/// Each mode is its own issuer: a service set up with the `jsonwebtoken`
/// crate from one mode's metadata (its JWKS, `iss`, `aud`; no `mode`
/// check) accepts that mode's tokens and refuses the other's, by key and,
/// even with the right key, by `iss`.
async fn a_standard_library_refuses_a_token_of_the_other_mode(app: TestApp) {
    let audience = "https://telemetry.example";
    let tokens = one_token_per_mode(&app, audience).await;
    for service in Mode::ALL {
        let path = match service {
            Mode::Live => "/.well-known/oauth-authorization-server",
            Mode::Test => "/.well-known/oauth-authorization-server/test",
        };
        let meta = app.get(path).await.expect(200).clone();
        let jwks: JwkSet = reqwest::get(meta["jwks_uri"].as_str().unwrap())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[meta["issuer"].as_str().unwrap()]);
        validation.set_audience(&[audience]);
        for (mode, token) in &tokens {
            let kid = decode_header(token).unwrap().kid.unwrap();
            let found = jwks.find(&kid);
            if *mode == service {
                let key = DecodingKey::from_jwk(found.expect("own kid")).unwrap();
                decode::<Value>(token, &key, &validation).unwrap();
                continue;
            }
            assert!(found.is_none(), "the {service} JWKS holds {mode}'s key");
            // By iss alone: checked with the token's own mode's key.
            let own: JwkSet = reqwest::get(app.url(TestApp::jwks_path(*mode)))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let key = DecodingKey::from_jwk(own.find(&kid).unwrap()).unwrap();
            let err = decode::<Value>(token, &key, &validation).unwrap_err();
            assert_eq!(
                *err.kind(),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer,
                "{service} service, {mode} token"
            );
        }
    }
}

/// The same with PyJWT (`tests/interop/cross_mode.py`), configured only
/// from each issuer's discovery document.
async fn pyjwt_refuses_a_token_of_the_other_mode(app: TestApp) {
    let Some(python) = python() else { return };
    let audience = "https://telemetry.example";
    let [(_, test), (_, live)] = one_token_per_mode(&app, audience).await;
    let verdicts = run_script(
        &python,
        "cross_mode.py",
        &[
            ("SERVER", &app.base),
            ("TEST_TOKEN", &test),
            ("LIVE_TOKEN", &live),
            ("AUDIENCE", audience),
        ],
    )
    .await;
    eprintln!("{verdicts:#}");
    for service in ["test", "live"] {
        for token in ["test", "live"] {
            let plain = verdicts[format!("{service} service, {token} token")]
                .as_str()
                .unwrap();
            let right_key = verdicts[format!("{service} service, {token} token, right key")]
                .as_str()
                .unwrap();
            if service == token {
                assert_eq!(plain, "accepted");
                assert_eq!(right_key, "accepted");
            } else {
                assert!(
                    plain.starts_with("refused by key"),
                    "{service}/{token}: {plain}"
                );
                assert!(
                    right_key.starts_with("refused by iss"),
                    "{service}/{token}: {right_key}"
                );
            }
        }
    }
}

crate::on_both_stores!(
    the_rust_oauth2_and_jsonwebtoken_crates_get_and_verify_a_token,
    python_authlib_and_pyjwt_get_and_verify_a_token,
    a_standard_library_refuses_a_token_of_the_other_mode,
    pyjwt_refuses_a_token_of_the_other_mode,
);
