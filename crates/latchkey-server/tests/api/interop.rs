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
    let meta: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server"))
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

async fn python_authlib_and_pyjwt_get_and_verify_a_token(app: TestApp) {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import authlib, jwt, requests, cryptography"])
        .output();
    let available = matches!(&probe, Ok(o) if o.status.success());
    if !available {
        // CI installs them (.ci/run); on a laptop without them, say so.
        assert!(
            std::env::var("CI").is_err(),
            "CI must have Authlib, PyJWT, requests and cryptography installed"
        );
        eprintln!("skipped: python3 with authlib, pyjwt[crypto] and requests is not available");
        return;
    }
    let (id, secret) = setup_machine(&app).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/client_credentials.py"
    );
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("ISSUER", &app.base)
        .env("CLIENT_ID", &id)
        .env("CLIENT_SECRET", &secret)
        .env("AUDIENCE", "https://telemetry.example")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python interop failed:\n{stdout}\n{stderr}"
    );
    let verified: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(verified["sub"], id);
    assert_eq!(verified["aud"], "https://telemetry.example");
    assert_eq!(verified["scope"], "telemetry:read");
    assert_eq!(verified["introspected_active"], true);
}

crate::on_both_stores!(
    the_rust_oauth2_and_jsonwebtoken_crates_get_and_verify_a_token,
    python_authlib_and_pyjwt_get_and_verify_a_token,
);
