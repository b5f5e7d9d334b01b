//! Brute-force limits on the credential-checking endpoints: an address that
//! keeps failing gets 429 with `Retry-After`, and an attacker hammering a
//! real machine's client id cannot lock that machine out.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use crate::helpers::TestApp;

/// A client whose connections come from `127.0.0.<last>`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

async fn token(app: &TestApp, http: &reqwest::Client, id: &str, secret: &str) -> reqwest::Response {
    http.post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

async fn an_attacker_is_slowed_and_the_real_machine_keeps_working(app: TestApp) {
    let id = app.machine("edge").await;
    let secret = app.secret(&id).await;
    let attacker = client_from(2);
    let machine = client_from(3);
    let wrong = latchkey_core::credential::generate(
        latchkey_types::Mode::Test,
        latchkey_core::credential::CredentialKind::ClientSecret,
    );
    // Ten wrong secrets for this client from one address are answered...
    for _ in 0..10 {
        let r = token(&app, &attacker, &id, wrong.expose()).await;
        assert_eq!(r.status(), 401);
    }
    // ...then that address is refused for this client, with Retry-After,
    // even when it finally presents the right secret.
    let r = token(&app, &attacker, &id, &secret).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts");
    // The real machine, from its own address, is not affected.
    for _ in 0..3 {
        let r = token(&app, &machine, &id, &secret).await;
        assert_eq!(r.status(), 200);
    }
    // An address guessing API keys at the verify endpoint is refused after
    // 50 unknown keys; the admin's own checks from elsewhere still work.
    let attacker = client_from(4);
    for _ in 0..50 {
        let guess = latchkey_core::credential::generate(
            latchkey_types::Mode::Test,
            latchkey_core::credential::CredentialKind::ApiKey,
        );
        let r = attacker
            .post(app.url("/v1/api-keys/verify"))
            .bearer_auth(&app.test_admin)
            .header("x-api-key", guess.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = attacker
        .post(app.url("/v1/api-keys/verify"))
        .bearer_auth(&app.test_admin)
        .json(&json!({"key": "lk_test_key_x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    let (_, key) = app.api_key(json!({"userId": id})).await;
    assert_eq!(app.verify(&key).await["valid"], true);
    // The refusals are counted.
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("latchkey_bruteforce_refusals_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

crate::on_both_stores!(an_attacker_is_slowed_and_the_real_machine_keeps_working);
