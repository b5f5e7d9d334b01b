//! A token stays within its size budget as a fleet grows: a gateway holding
//! a role in each of many device tenants gets, for a token scoped to the
//! fleet, an `authorization` claim of at most `token_authorization_max_bytes`
//! (nearest tenants first) that says it was cut; a token scoped to one
//! device carries that device's entry.

use serde_json::{json, Value};

use crate::helpers::{decode_claims, TestApp};

/// The budget these tests run with: small, so a few dozen devices pass it.
const BUDGET: usize = 1024;

/// Devices under the fleet, each a tenant where the gateway holds `reader`.
const DEVICES: usize = 60;

/// ws → fleet → site → dev-000 … dev-059 (dev-000 to dev-009 directly under
/// fleet, the rest under `site`); the gateway holds `gateway` in fleet and
/// `reader` in every device. Returns the gateway's id and secret.
async fn fleet(app: &TestApp) -> (String, String) {
    app.put("/v1/roles/gateway", json!({"permissions": ["fleet:route"]}))
        .await
        .expect(201);
    app.put(
        "/v1/roles/reader",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    app.post("/v1/tenants", json!({"id": "fleet", "name": "Fleet"}))
        .await
        .expect(201);
    app.post(
        "/v1/tenants",
        json!({"id": "site", "name": "Site", "parentId": "fleet"}),
    )
    .await
    .expect(201);
    let gateway = app.machine("gateway").await;
    app.put(
        &format!("/v1/tenants/fleet/users/{gateway}/roles"),
        json!({"roles": ["gateway"]}),
    )
    .await
    .expect(200);
    for i in 0..DEVICES {
        let id = format!("dev-{i:03}");
        let parent = if i < 10 { "fleet" } else { "site" };
        app.post(
            "/v1/tenants",
            json!({"id": id, "name": id, "parentId": parent}),
        )
        .await
        .expect(201);
        app.put(
            &format!("/v1/tenants/{id}/users/{gateway}/roles"),
            json!({"roles": ["reader"]}),
        )
        .await
        .expect(200);
    }
    let secret = app.secret(&gateway).await;
    (gateway, secret)
}

fn claim_len(claims: &Value) -> usize {
    serde_json::to_string(&claims["authorization"])
        .unwrap()
        .len()
}

async fn a_fleet_token_stays_within_its_budget_and_says_it_was_cut(app: TestApp) {
    let (gateway, secret) = fleet(&app).await;
    let (token, claims) = app
        .access_token(&gateway, &secret, &[("tenant_id", "fleet")])
        .await;
    let authorization = claims["authorization"].as_object().unwrap();
    assert!(claim_len(&claims) <= BUDGET, "{}", claim_len(&claims));
    assert_eq!(claims["authorizationTruncated"], true);
    assert!(
        token.len() < 2 * BUDGET,
        "a {} byte token for a {BUDGET} byte claim",
        token.len()
    );
    // The token's own tenant, then the nearest: the ten devices directly
    // under fleet and `site` come before the devices under `site`.
    assert_eq!(authorization["fleet"]["roles"], json!(["gateway"]));
    for i in 0..10 {
        let id = format!("dev-{i:03}");
        assert_eq!(
            authorization[&id]["roles"],
            json!(["gateway", "reader"]),
            "{id}"
        );
    }
    assert!(authorization.len() > 11, "{}", authorization.len());
    assert!(authorization.len() < DEVICES + 1);
    assert!(!authorization.contains_key(&format!("dev-{:03}", DEVICES - 1)));
    // The admin view answers the same claim and says it was cut.
    let r = app
        .get(&format!("/v1/users/{gateway}/authorization?tenantId=fleet"))
        .await;
    assert_eq!(r.headers["latchkey-authorization-truncated"], "true");
    assert_eq!(r.expect(200), &claims["authorization"]);
    // Introspection shows it as the token carries it.
    let body = app.introspect(&token).await;
    assert_eq!(body.expect(200)["authorizationTruncated"], true);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("latchkey_tokens_authorization_truncated_total{mode=\"test\"} 1"),
        "{metrics}"
    );

    // Scoped to the last device: its entry is there, whole, and nothing
    // was cut.
    let last = format!("dev-{:03}", DEVICES - 1);
    let (_, claims) = app
        .access_token(&gateway, &secret, &[("tenant_id", &last)])
        .await;
    assert_eq!(
        claims["authorization"],
        json!({ last.as_str(): {"roles": ["gateway", "reader"]} })
    );
    assert!(claims.get("authorizationTruncated").is_none());
    let r = app
        .get(&format!(
            "/v1/users/{gateway}/authorization?tenantId={last}"
        ))
        .await;
    assert!(r.headers.get("latchkey-authorization-truncated").is_none());

    // An API key scoped to the fleet reports the same bounded claim.
    let r = app
        .post(
            "/v1/api-keys",
            json!({"userId": gateway, "tenantId": "fleet"}),
        )
        .await;
    let key = r.expect(201)["key"].as_str().unwrap().to_owned();
    let verdict = app.verify(&key).await;
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["authorizationTruncated"], true);
    assert_eq!(verdict["authorization"], authorization_of(&token));
}

fn authorization_of(token: &str) -> Value {
    decode_claims(token)["authorization"].clone()
}

/// A token whose own tenant's roles alone exceed the budget is refused
/// with a reason, never issued over its budget; the claim cannot be set by
/// custom claims.
async fn a_tenant_whose_own_roles_exceed_the_budget_gets_no_token(app: TestApp) {
    let m = app.machine("hoarder").await;
    let roles: Vec<String> = (0..40)
        .map(|i| format!("role-with-a-rather-long-name-{i:02}"))
        .collect();
    app.put(
        &format!("/v1/tenants/{}/users/{m}/roles", app.workspace_id),
        json!({ "roles": roles }),
    )
    .await
    .expect(200);
    let secret = app.secret(&m).await;
    let r = app
        .token(Some((&m, &secret)), &[("grant_type", "client_credentials")])
        .await;
    r.expect_oauth_error(400, "invalid_target");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("token_authorization_max_bytes"),
        "{}",
        r.text
    );
    app.get(&format!("/v1/users/{m}/authorization"))
        .await
        .expect_problem(409, "conflict");
    app.patch(
        &format!("/v1/users/{m}"),
        json!({"customClaims": {"authorizationTruncated": false}}),
    )
    .await
    .expect_problem(400, "invalid_request");
}

crate::on_both_stores!(with |s| s.token_authorization_max_bytes = Some(super::BUDGET);
    a_fleet_token_stays_within_its_budget_and_says_it_was_cut,
    a_tenant_whose_own_roles_exceed_the_budget_gets_no_token,
);
