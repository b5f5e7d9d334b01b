//! `POST /v1/tokens`: custom tokens minted by an admin for a user.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{decode_claims, TestApp};

async fn custom_tokens_carry_extra_claims_but_never_reserved_ones(app: TestApp) {
    app.post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await
        .expect(201);
    app.put(
        "/v1/roles/viewer",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    let r = app
        .post(
            "/v1/users",
            json!({"name": "m", "customClaims": {"region": "eu"}}),
        )
        .await;
    let m = r.expect(201)["id"].as_str().unwrap().to_owned();
    app.put(
        &format!("/v1/tenants/acme/users/{m}/roles"),
        json!({"roles": ["viewer"]}),
    )
    .await
    .expect(200);
    let r = app
        .post(
            "/v1/tokens",
            json!({"userId": m, "tenantId": "acme", "audience": "https://api.example",
                   "scope": "telemetry:read", "ttlSeconds": 300,
                   "claims": {"deviceSerial": "SN-1", "region": "us"}}),
        )
        .await;
    let body = r.expect(200).clone();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 300);
    let claims = decode_claims(body["accessToken"].as_str().unwrap());
    assert_eq!(claims["sub"], m);
    assert_eq!(claims["tenantId"], "acme");
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["scope"], "telemetry:read");
    assert_eq!(claims["deviceSerial"], "SN-1");
    assert_eq!(claims["region"], "us", "request claims win over the user's");
    assert_eq!(claims["authorization"]["acme"]["roles"], json!(["viewer"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    // It is a real token: introspection says active.
    let token = body["accessToken"].as_str().unwrap();
    let r = app
        .oauth_form(
            "/oauth/introspect",
            None,
            Some(&app.test_admin),
            &[("token", token)],
        )
        .await;
    assert_eq!(r.expect(200)["active"], true);

    let before = app.snapshot().await;
    for (bad, status, code) in [
        (
            json!({"userId": m, "claims": {"sub": "usr_other"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"userId": m, "claims": {"authorization": {}}}),
            400,
            "invalid_request",
        ),
        (
            json!({"userId": m, "ttlSeconds": 3601}),
            400,
            "invalid_request",
        ),
        (
            json!({"userId": m, "ttlSeconds": 0}),
            400,
            "invalid_request",
        ),
        (
            json!({"userId": m, "scope": "admin:all"}),
            400,
            "invalid_request",
        ),
        (json!({"userId": m, "tenantId": "ghost"}), 404, "not_found"),
        (
            json!({"userId": "usr_00000000000000000000"}),
            404,
            "not_found",
        ),
        (json!({"userId": m, "extra": 1}), 400, "invalid_request"),
    ] {
        app.post("/v1/tokens", bad)
            .await
            .expect_problem(status, code);
    }
    app.patch(&format!("/v1/users/{m}"), json!({"disabled": true}))
        .await
        .expect(200);
    app.post("/v1/tokens", json!({"userId": m}))
        .await
        .expect_problem(403, "forbidden");
    // Without ttlSeconds the user's lifetime applies, capped at the maximum.
    app.patch(
        &format!("/v1/users/{m}"),
        json!({"disabled": false, "tokenTtlSeconds": 7200}),
    )
    .await
    .expect(200);
    let r = app.post("/v1/tokens", json!({"userId": m})).await;
    assert_eq!(r.expect(200)["expiresIn"], 3600);
    // A live user is not reachable with a test admin key.
    let live = app
        .send(
            Method::POST,
            "/v1/users",
            Some(&app.live_admin),
            Some(json!({"name": "l"})),
        )
        .await;
    let live_id = live.expect(201)["id"].as_str().unwrap().to_owned();
    app.post("/v1/tokens", json!({"userId": live_id}))
        .await
        .expect_problem(404, "not_found");
    let after = app.snapshot().await;
    assert_eq!(
        before["/v1/tenants?limit=1000"],
        after["/v1/tenants?limit=1000"]
    );
}

crate::on_both_stores!(custom_tokens_carry_extra_claims_but_never_reserved_ones);
