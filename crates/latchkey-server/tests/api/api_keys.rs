//! The API-key lifecycle over HTTP: create, list, verify, rotate with grace,
//! expiry, revocation, rate limits, budgets under concurrency, and keys used
//! as client secrets.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;

impl TestApp {
    /// Creates a test-mode API key; returns (id, value).
    pub async fn api_key(&self, body: Value) -> (String, String) {
        let r = self.post("/v1/api-keys", body).await;
        let b = r.expect(201);
        (
            b["id"].as_str().unwrap().to_owned(),
            b["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Verifies `key` with the test admin key as the caller.
    pub async fn verify(&self, key: &str) -> Value {
        self.verify_as(&self.test_admin.clone(), key).await
    }

    /// Verifies `key` with `caller` as the caller's credential.
    pub async fn verify_as(&self, caller: &str, key: &str) -> Value {
        let r = self
            .client
            .post(self.url("/v1/api-keys/verify"))
            .bearer_auth(caller)
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

async fn the_api_key_lifecycle_follows_the_contract(app: TestApp) {
    app.post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await
        .expect(201);
    app.put(
        "/v1/roles/operator",
        json!({"permissions": ["telemetry:write"]}),
    )
    .await
    .expect(201);
    let m = app.machine("edge").await;
    app.put(
        &format!("/v1/tenants/acme/users/{m}/roles"),
        json!({"roles": ["operator", "viewer"]}),
    )
    .await
    .expect(200);
    let r = app
        .post(
            "/v1/api-keys",
            json!({"userId": m, "tenantId": "acme", "name": "edge-1", "roles": ["viewer"],
                   "metadata": {"rack": 4}}),
        )
        .await;
    let created = r.expect(201).clone();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("lk_test_key_") && key.len() == "lk_test_key_".len() + 49);
    assert!(id.starts_with("key_"));
    assert_eq!(created["tenantId"], "acme");

    // Listed and fetched without the value.
    let got = app.get(&format!("/v1/api-keys/{id}")).await;
    assert!(got.expect(200).get("key").is_none());
    assert!(!got.text.contains(&key));
    let listed = app.get(&format!("/v1/api-keys?userId={m}")).await;
    assert_eq!(listed.expect(200)["data"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&key));
    let other = app.get("/v1/api-keys?tenantId=nope").await;
    assert!(other.expect(200)["data"].as_array().unwrap().is_empty());

    // Valid, with roles narrowed to the key's.
    let v = app.verify(&key).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["keyId"], id);
    assert_eq!(v["userId"], m);
    assert_eq!(v["tenantId"], "acme");
    assert_eq!(v["mode"], "test");
    assert_eq!(v["roles"], json!(["viewer"]));
    assert_eq!(v["authorization"]["acme"]["roles"], json!(["viewer"]));
    assert_eq!(v["expiresAt"], Value::Null);
    assert!(v.get("remaining").is_none());
    // The same answer with the key in the body, and with an API key as caller.
    let r = app
        .client
        .post(app.url("/v1/api-keys/verify"))
        .bearer_auth(&app.test_admin)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["valid"], true);
    assert_eq!(app.verify_as(&key, &key).await["valid"], true);

    // Revoked: refused at once, also as a caller.
    app.delete(&format!("/v1/api-keys/{id}")).await.expect(204);
    assert_eq!(
        app.verify(&key).await,
        json!({"valid": false, "code": "revoked"})
    );
    let r = app
        .client
        .post(app.url("/v1/api-keys/verify"))
        .bearer_auth(&key)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let revoked = app.get(&format!("/v1/api-keys/{id}")).await;
    assert!(revoked.expect(200)["revokedAt"].is_string());
    app.post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
        .await
        .expect_problem(409, "conflict");
}

async fn rotation_keeps_the_old_value_for_the_grace_period(app: TestApp) {
    let m = app.machine("edge").await;
    let (id, old) = app.api_key(json!({"userId": m})).await;
    let r = app
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            json!({"gracePeriodSeconds": 300}),
        )
        .await;
    let new = r.expect(200)["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(r.body["id"], id);
    assert_eq!(app.verify(&old).await["valid"], true);
    assert_eq!(app.verify(&new).await["valid"], true);
    app.clock.advance(301);
    assert_eq!(app.verify(&old).await["code"], "revoked");
    assert_eq!(app.verify(&new).await["valid"], true);
    // Without a grace period, the old value stops at once.
    let r = app
        .post(&format!("/v1/api-keys/{id}/rotate"), json!({}))
        .await;
    let newest = r.expect(200)["key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&new).await["code"], "revoked");
    assert_eq!(app.verify(&newest).await["valid"], true);
}

async fn expiry_disabled_users_and_malformed_keys_have_their_codes(app: TestApp) {
    let m = app.machine("edge").await;
    // From the server's clock, which the test moves.
    let at = (latchkey_core::clock::Clock::now(app.clock.as_ref()) + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, key) = app.api_key(json!({"userId": m, "expiresAt": at})).await;
    let v = app.verify(&key).await;
    assert_eq!(v["valid"], true);
    assert!(v["expiresAt"].is_string());
    app.clock.advance(3601);
    assert_eq!(
        app.verify(&key).await,
        json!({"valid": false, "code": "expired"})
    );

    let (_, key2) = app.api_key(json!({"userId": m})).await;
    app.patch(&format!("/v1/users/{m}"), json!({"disabled": true}))
        .await
        .expect(200);
    assert_eq!(app.verify(&key2).await["code"], "disabled");
    app.patch(&format!("/v1/users/{m}"), json!({"disabled": false}))
        .await
        .expect(200);
    assert_eq!(app.verify(&key2).await["valid"], true);

    // A typo breaks the checksum: malformed, no lookup needed.
    let mut typo = key2.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    for bad in [typo.as_str(), "hello", "lk_test_key_short", &app.test_admin] {
        assert_eq!(app.verify(bad).await["code"], "malformed", "{bad}");
    }
    // Well-formed but unknown.
    let unknown = latchkey_core::credential::generate(
        latchkey_types::Mode::Test,
        latchkey_core::credential::CredentialKind::ApiKey,
    );
    assert_eq!(app.verify(unknown.expose()).await["code"], "not_found");
    // A live key checked by a test caller.
    let live_user = app
        .send(
            Method::POST,
            "/v1/users",
            Some(&app.live_admin),
            Some(json!({"name": "l"})),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .send(
            Method::POST,
            "/v1/api-keys",
            Some(&app.live_admin),
            Some(json!({"userId": live_user})),
        )
        .await;
    let live_key = r.expect(201)["key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&live_key).await["code"], "wrong_mode");
    assert_eq!(
        app.verify_as(&app.live_admin.clone(), &live_key).await["valid"],
        true
    );
    // A test admin cannot see live keys.
    let id = r.body["id"].as_str().unwrap();
    app.get(&format!("/v1/api-keys/{id}"))
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("/v1/api-keys/{id}"))
        .await
        .expect_problem(404, "not_found");
}

async fn a_rate_limit_counts_uses_per_window(app: TestApp) {
    let m = app.machine("edge").await;
    let (_, key) = app
        .api_key(json!({"userId": m, "ratelimit": {"limit": 3, "windowSeconds": 60}}))
        .await;
    for _ in 0..3 {
        assert_eq!(app.verify(&key).await["valid"], true);
    }
    assert_eq!(
        app.verify(&key).await,
        json!({"valid": false, "code": "rate_limited"})
    );
    app.clock.advance(60);
    assert_eq!(app.verify(&key).await["valid"], true);
}

async fn a_budget_of_five_is_spent_exactly_five_times_under_concurrency(app: TestApp) {
    let m = app.machine("edge").await;
    let (id, key) = app.api_key(json!({"userId": m, "remaining": 5})).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let client = app.client.clone();
        let url = app.url("/v1/api-keys/verify");
        let admin = app.test_admin.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(admin)
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut valid = Vec::new();
    let mut exceeded = 0;
    for t in tasks {
        let v = t.await.unwrap();
        if v["valid"] == true {
            valid.push(v["remaining"].as_i64().unwrap());
        } else {
            assert_eq!(v["code"], "usage_exceeded", "{v}");
            exceeded += 1;
        }
    }
    valid.sort();
    assert_eq!(valid, vec![0, 1, 2, 3, 4]);
    assert_eq!(exceeded, 35);
    assert_eq!(
        app.get(&format!("/v1/api-keys/{id}")).await.expect(200)["remaining"],
        0
    );
}

async fn last_used_times_are_recorded_in_batches(app: TestApp) {
    let m = app.machine("edge").await;
    let (id, key) = app.api_key(json!({"userId": m})).await;
    assert_eq!(
        app.get(&format!("/v1/api-keys/{id}")).await.expect(200)["lastUsedAt"],
        Value::Null
    );
    assert_eq!(app.verify(&key).await["valid"], true);
    let mut recorded = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if app.get(&format!("/v1/api-keys/{id}")).await.expect(200)["lastUsedAt"].is_string() {
            recorded = true;
            break;
        }
    }
    assert!(recorded, "lastUsedAt was not written within 4 s");
}

async fn an_api_key_used_as_client_secret_yields_a_token_scoped_to_the_key(app: TestApp) {
    app.post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await
        .expect(201);
    app.put(
        "/v1/roles/operator",
        json!({"permissions": ["telemetry:write"]}),
    )
    .await
    .expect(201);
    app.put(
        "/v1/roles/viewer",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    let m = app.machine("edge").await;
    app.put(
        &format!("/v1/tenants/acme/users/{m}/roles"),
        json!({"roles": ["operator", "viewer"]}),
    )
    .await
    .expect(200);
    let (_, key) = app
        .api_key(json!({"userId": m, "tenantId": "acme", "roles": ["viewer"], "remaining": 2}))
        .await;
    let (_, claims) = app
        .access_token(&m, &key, &[("scope", "telemetry:read")])
        .await;
    assert_eq!(claims["tenantId"], "acme");
    assert_eq!(claims["authorization"]["acme"]["roles"], json!(["viewer"]));
    assert_eq!(claims["scope"], "telemetry:read");
    // The key narrows: operator's permission is not available through it.
    app.token(
        Some((&m, &key)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "telemetry:write"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_scope");
    // Its budget is now spent (two uses), so it stops authenticating.
    app.token(Some((&m, &key)), &[("grant_type", "client_credentials")])
        .await
        .expect_oauth_error(401, "invalid_client");
    let (_, key2) = app.api_key(json!({"userId": m, "tenantId": "acme"})).await;
    app.token(
        Some((&m, &key2)),
        &[("grant_type", "client_credentials"), ("tenant_id", "other")],
    )
    .await
    .expect_oauth_error(400, "invalid_target");
    // Another user's key is not this client's secret.
    let other = app.machine("other").await;
    app.token(
        Some((&other, &key2)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect_oauth_error(401, "invalid_client");
}

async fn the_verify_endpoint_refuses_bad_callers_and_bad_requests(app: TestApp) {
    let m = app.machine("edge").await;
    let (_, key) = app.api_key(json!({"userId": m})).await;
    let url = app.url("/v1/api-keys/verify");
    let r = app
        .client
        .post(&url)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = app
        .client
        .post(&url)
        .bearer_auth("nonsense")
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.test_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.test_admin)
        .header("x-api-key", &key)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.test_admin)
        .body("{\"key\": 5, \"extra\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.test_admin)
        .header("x-api-key", "x".repeat(200 * 1024))
        .send()
        .await;
    let r = r.unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "headers_too_large"
    );
    let before = app.snapshot().await;
    for body in [
        json!({"userId": m, "ratelimit": {"limit": 0, "windowSeconds": 10}}),
        json!({"userId": m, "remaining": -1}),
        json!({"userId": m, "roles": ["Bad Role"]}),
        json!({"userId": m, "expiresAt": "2001-01-01T00:00:00Z"}),
        json!({"userId": m, "surprise": true}),
        json!({"userId": 5}),
    ] {
        app.post("/v1/api-keys", body)
            .await
            .expect_problem(400, "invalid_request");
    }
    app.post(
        "/v1/api-keys",
        json!({"userId": "usr_00000000000000000000"}),
    )
    .await
    .expect_problem(404, "not_found");
    app.post("/v1/api-keys", json!({"userId": m, "tenantId": "ghost"}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.snapshot().await, before);
    let keys = app.get("/v1/api-keys").await;
    assert_eq!(keys.expect(200)["data"].as_array().unwrap().len(), 1);
}

crate::on_both_stores!(
    the_api_key_lifecycle_follows_the_contract,
    rotation_keeps_the_old_value_for_the_grace_period,
    expiry_disabled_users_and_malformed_keys_have_their_codes,
    a_rate_limit_counts_uses_per_window,
    a_budget_of_five_is_spent_exactly_five_times_under_concurrency,
    last_used_times_are_recorded_in_batches,
    an_api_key_used_as_client_secret_yields_a_token_scoped_to_the_key,
    the_verify_endpoint_refuses_bad_callers_and_bad_requests,
);
