//! The whole admin flow over HTTP: a tenant tree, a role catalog, a machine
//! with roles and a secret, and what its tokens say.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;
use latchkey_types::Mode;

async fn the_workspace_reports_its_id_mode_and_issuer(app: TestApp) {
    let ws = app.get("/v1/workspace").await;
    let body = ws.expect(200);
    assert_eq!(body["id"], app.workspace_id);
    assert_eq!(body["mode"], "test");
    assert_eq!(body["issuer"], format!("{}/test", app.base));
    let live = app
        .send(Method::GET, "/v1/workspace", Some(&app.live_admin), None)
        .await;
    assert_eq!(live.expect(200)["mode"], "live");
    assert_eq!(live.expect(200)["issuer"], app.base);
    let root = app.get(&format!("/v1/tenants/{}", app.workspace_id)).await;
    assert_eq!(root.expect(200)["parentId"], serde_json::Value::Null);
}

async fn a_tenant_tree_with_roles_yields_cascaded_authorization_in_tokens(app: TestApp) {
    // acme → eu → eu-factory, and acme → partners (a boundary).
    let acme = app
        .post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    let acme = acme.expect(201).clone();
    assert_eq!(acme["parentId"], app.workspace_id);
    assert_eq!(acme["cascade"], true);
    assert_eq!(acme["mode"], "test");
    app.post(
        "/v1/tenants",
        json!({"id": "eu", "name": "EU", "parentId": "acme"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/tenants",
        json!({"id": "eu-factory", "name": "EU factory", "parentId": "eu", "metadata": {"site": 7}}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/tenants",
        json!({"id": "partners", "name": "Partners", "parentId": "acme", "cascade": false}),
    )
    .await
    .expect(201);
    let generated = app.post("/v1/tenants", json!({"name": "Generated"})).await;
    let gid = generated.expect(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(gid.len(), 8);

    app.put(
        "/v1/roles/operator",
        json!({"permissions": ["telemetry:write", "telemetry:read"], "description": "runs things"}),
    )
    .await
    .expect(201);
    app.put(
        "/v1/roles/viewer",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    app.put(
        "/v1/roles/iot-remote",
        json!({"permissions": ["device:command"]}),
    )
    .await
    .expect(201);

    let sensor = app.machine("sensor-17").await;
    app.put(
        &format!("/v1/tenants/{}/users/{sensor}/roles", app.workspace_id),
        json!({"roles": ["iot-remote"]}),
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/tenants/acme/users/{sensor}/roles"),
        json!({"roles": ["viewer"]}),
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/tenants/eu-factory/users/{sensor}/roles"),
        json!({"roles": ["operator"]}),
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/tenants/partners/users/{sensor}/roles"),
        json!({"roles": ["viewer"]}),
    )
    .await
    .expect(200);
    let members = app.get("/v1/tenants/acme/users").await;
    assert_eq!(members.expect(200)["data"][0]["userId"], sensor);

    let secret = app.secret(&sensor).await;
    assert!(secret.starts_with("lk_test_secret_"));

    // Scoped to acme: global roles cascade in; descendants with roles listed.
    let (_, claims) = app
        .access_token(
            &sensor,
            &secret,
            &[
                ("tenant_id", "acme"),
                ("audience", "https://api.acme.example"),
            ],
        )
        .await;
    assert_eq!(claims["tenantId"], "acme");
    assert_eq!(claims["aud"], "https://api.acme.example");
    assert_eq!(claims["iss"], app.issuer(Mode::Test));
    assert_eq!(claims["sub"], sensor);
    assert_eq!(claims["userId"], sensor);
    assert_eq!(claims["client_id"], sensor);
    assert_eq!(claims["kind"], "machine");
    assert_eq!(claims["mode"], "test");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims.get("scope").is_none());
    let auth = &claims["authorization"];
    assert_eq!(auth["acme"]["roles"], json!(["iot-remote", "viewer"]));
    assert_eq!(
        auth["eu-factory"]["roles"],
        json!(["iot-remote", "operator", "viewer"])
    );
    // The boundary keeps only its own roles.
    assert_eq!(auth["partners"]["roles"], json!(["viewer"]));
    assert!(auth.get("eu").is_none(), "no roles held directly in eu");
    assert!(auth.get(&app.workspace_id).is_none());

    // The authorization endpoint returns exactly the claim.
    let endpoint = app
        .get(&format!("/v1/users/{sensor}/authorization?tenantId=acme"))
        .await;
    assert_eq!(endpoint.expect(200), auth);

    // Scope: granted by operator (cascaded from nowhere in eu, held in the factory).
    let (_, claims) = app
        .access_token(
            &sensor,
            &secret,
            &[
                ("tenant_id", "eu-factory"),
                ("scope", "telemetry:write device:command"),
            ],
        )
        .await;
    assert_eq!(claims["scope"], "telemetry:write device:command");
    let r = app
        .token(
            Some((&sensor, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("tenant_id", "eu"),
                ("scope", "telemetry:write"),
            ],
        )
        .await;
    r.expect_oauth_error(400, "invalid_scope");

    // Moving the factory under the boundary changes what it inherits.
    app.patch("/v1/tenants/eu-factory", json!({"parentId": "partners"}))
        .await
        .expect(200);
    let (_, claims) = app
        .access_token(&sensor, &secret, &[("tenant_id", "eu-factory")])
        .await;
    assert_eq!(
        claims["authorization"]["eu-factory"]["roles"],
        json!(["operator", "viewer"])
    );

    // Removing a role from the catalog removes the permission at once.
    app.delete("/v1/roles/iot-remote").await.expect(204);
    let r = app
        .token(
            Some((&sensor, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "device:command"),
            ],
        )
        .await;
    r.expect_oauth_error(400, "invalid_scope");
}

async fn secrets_rotate_without_downtime_and_stop_when_deleted_or_disabled(app: TestApp) {
    let m = app.machine("gateway").await;
    let first = app.secret(&m).await;
    let second = app.secret(&m).await;
    app.access_token(&m, &first, &[]).await;
    app.access_token(&m, &second, &[]).await;
    let listed = app.get(&format!("/v1/users/{m}/secrets")).await;
    let listed = listed.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert!(!listed
        .iter()
        .any(|s| s.to_string().contains("lk_test_secret_")));
    let first_id = listed
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|_| true)
        .unwrap();
    app.delete(&format!("/v1/users/{m}/secrets/{first_id}"))
        .await
        .expect(204);
    let ok_count = {
        let mut n = 0;
        for s in [&first, &second] {
            let r = app
                .token(Some((&m, s)), &[("grant_type", "client_credentials")])
                .await;
            if r.status == 200 {
                n += 1;
            }
        }
        n
    };
    assert_eq!(ok_count, 1, "exactly the remaining secret works");

    app.patch(&format!("/v1/users/{m}"), json!({"disabled": true}))
        .await
        .expect(200);
    for s in [&first, &second] {
        app.token(Some((&m, s)), &[("grant_type", "client_credentials")])
            .await
            .expect_oauth_error(401, "invalid_client");
    }
    app.patch(&format!("/v1/users/{m}"), json!({"disabled": false}))
        .await
        .expect(200);
    app.delete(&format!("/v1/users/{m}")).await.expect(204);
    for s in [&first, &second] {
        app.token(Some((&m, s)), &[("grant_type", "client_credentials")])
            .await
            .expect_oauth_error(401, "invalid_client");
    }
}

async fn expired_secrets_stop_working_by_the_clock(app: TestApp) {
    let m = app.machine("short-lived").await;
    let at = (time::OffsetDateTime::now_utc() + time::Duration::minutes(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .post(&format!("/v1/users/{m}/secrets"), json!({"expiresAt": at}))
        .await;
    let secret = r.expect(201)["secret"].as_str().unwrap().to_owned();
    app.access_token(&m, &secret, &[]).await;
    app.clock.advance(11 * 60);
    app.token(Some((&m, &secret)), &[("grant_type", "client_credentials")])
        .await
        .expect_oauth_error(401, "invalid_client");
}

async fn custom_claims_and_token_lifetime_come_from_the_user(app: TestApp) {
    let r = app
        .post(
            "/v1/users",
            json!({"name": "cam", "kind": "human", "customClaims": {"region": "eu", "tier": 2},
                   "tokenTtlSeconds": 120, "username": "cam-1", "email": "cam@example.com"}),
        )
        .await;
    let user = r.expect(201).clone();
    assert_eq!(user["kind"], "human");
    let id = user["id"].as_str().unwrap();
    assert!(id.starts_with("usr_"));
    let secret = app.secret(id).await;
    let r = app
        .token(Some((id, &secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.expect(200)["expires_in"], 120);
    assert_eq!(r.body["token_type"], "Bearer");
    let claims = crate::helpers::decode_claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(claims["region"], "eu");
    assert_eq!(claims["tier"], 2);
    assert_eq!(claims["kind"], "human");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    // Reserved claims cannot be set.
    app.patch(
        &format!("/v1/users/{id}"),
        json!({"customClaims": {"sub": "usr_other"}}),
    )
    .await
    .expect_problem(400, "invalid_request");
    // Filters.
    let humans = app.get("/v1/users?kind=human").await;
    assert_eq!(humans.expect(200)["data"].as_array().unwrap().len(), 1);
    let machines = app.get("/v1/users?kind=machine").await;
    assert!(machines.expect(200)["data"].as_array().unwrap().is_empty());
}

async fn test_and_live_partitions_never_see_each_other(app: TestApp) {
    let live = |m: Method, p: &str, b: Option<serde_json::Value>| {
        let key = app.admin(Mode::Live).to_owned();
        let p = p.to_owned();
        let app = &app;
        async move { app.send(m, &p, Some(&key), b).await }
    };
    let r = live(
        Method::POST,
        "/v1/users",
        Some(json!({"name": "prod-edge"})),
    )
    .await;
    let live_user = r.expect(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["mode"], "live");
    live(
        Method::POST,
        "/v1/tenants",
        Some(json!({"id": "prod", "name": "Prod"})),
    )
    .await
    .expect(201);
    let r = live(
        Method::POST,
        &format!("/v1/users/{live_user}/secrets"),
        Some(json!({})),
    )
    .await;
    let live_secret = r.expect(201)["secret"].as_str().unwrap().to_owned();
    assert!(live_secret.starts_with("lk_live_secret_"));

    // The test admin key cannot see or touch any of it.
    app.get(&format!("/v1/users/{live_user}"))
        .await
        .expect_problem(404, "not_found");
    app.get("/v1/tenants/prod")
        .await
        .expect_problem(404, "not_found");
    app.patch(&format!("/v1/users/{live_user}"), json!({"name": "x"}))
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("/v1/users/{live_user}"))
        .await
        .expect_problem(404, "not_found");
    app.post(&format!("/v1/users/{live_user}/secrets"), json!({}))
        .await
        .expect_problem(404, "not_found");
    app.put(
        &format!("/v1/tenants/{}/users/{live_user}/roles", app.workspace_id),
        json!({"roles": ["admin"]}),
    )
    .await
    .expect_problem(404, "not_found");
    assert!(app.get("/v1/users").await.expect(200)["data"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(app.get("/v1/tenants").await.expect(200)["data"]
        .as_array()
        .unwrap()
        .is_empty());
    // The live user still works in live mode and is unchanged.
    let r = live(Method::GET, &format!("/v1/users/{live_user}"), None).await;
    assert_eq!(r.expect(200)["name"], "prod-edge");
    let (_, claims) = app.access_token(&live_user, &live_secret, &[]).await;
    assert_eq!(claims["mode"], "live");
    // A live token cannot be scoped to a test tenant.
    app.post("/v1/tenants", json!({"id": "only-test", "name": "T"}))
        .await
        .expect(201);
    app.token(
        Some((&live_user, &live_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("tenant_id", "only-test"),
        ],
    )
    .await
    .expect_oauth_error(400, "invalid_target");
}

async fn admin_requests_need_a_valid_admin_key(app: TestApp) {
    let none = app.send(Method::GET, "/v1/users", None, None).await;
    none.expect_problem(401, "unauthenticated");
    assert!(none.headers.contains_key("www-authenticate"));
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    for bad in [
        "nope",
        secret.as_str(),
        "lk_test_admin_0000000000000000000000000000000000000000000000000",
    ] {
        app.send(Method::GET, "/v1/users", Some(bad), None)
            .await
            .expect_problem(401, "unauthenticated");
    }
    // A well-formed admin key that was never issued.
    let forged = latchkey_core::credential::generate(
        Mode::Test,
        latchkey_core::credential::CredentialKind::Admin,
    );
    app.send(Method::GET, "/v1/users", Some(forged.expose()), None)
        .await
        .expect_problem(401, "unauthenticated");
}

async fn health_and_readiness_answer(app: TestApp) {
    assert_eq!(app.get("/healthz").await.expect(200)["status"], "ok");
    assert_eq!(app.get("/readyz").await.expect(200)["status"], "ready");
}

crate::on_both_stores!(
    the_workspace_reports_its_id_mode_and_issuer,
    a_tenant_tree_with_roles_yields_cascaded_authorization_in_tokens,
    secrets_rotate_without_downtime_and_stop_when_deleted_or_disabled,
    expired_secrets_stop_working_by_the_clock,
    custom_claims_and_token_lifetime_come_from_the_user,
    test_and_live_partitions_never_see_each_other,
    admin_requests_need_a_valid_admin_key,
    health_and_readiness_answer,
);
