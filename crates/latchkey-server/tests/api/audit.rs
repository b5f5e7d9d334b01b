//! The audit log: every admin write and credential event is recorded with
//! actor, mode, target, time and source address; nothing secret is in it;
//! bursts of failed authentication are recorded once per limit; listing
//! filters and pages; concurrent writes lose no event.

use latchkey_core::credential::{self, CredentialKind};
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_types::Mode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// Every event of the test partition, oldest first.
async fn all_events(app: &TestApp, mode: Mode) -> Vec<Value> {
    let mut events = Vec::new();
    let mut path = "/v1/audit-events?limit=100".to_owned();
    loop {
        let r = app
            .send(Method::GET, &path, Some(app.admin(mode)), None)
            .await;
        let page = r.expect(200).clone();
        events.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/audit-events?limit=100&cursor={c}"),
            None => break,
        }
    }
    events.reverse();
    events
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

async fn every_admin_write_and_credential_event_is_recorded_without_secrets(app: TestApp) {
    let mut secrets: Vec<String> = vec![app.test_admin.clone(), app.live_admin.clone()];
    let tenant = app
        .post("/v1/tenants", json!({"id": "plant-7", "name": "Plant 7"}))
        .await;
    tenant.expect(201);
    app.patch("/v1/tenants/plant-7", json!({"name": "Plant Seven"}))
        .await
        .expect(200);
    app.put(
        "/v1/roles/reader",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    // This one comes through a trusted proxy for another address.
    let r = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(&app.test_admin)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"name": "sensor", "customClaims": {"site": "north"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/v1/users/{user}"),
        json!({"customClaims": {"site": "south"}, "email": null}),
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/tenants/plant-7/users/{user}/roles"),
        json!({"roles": ["reader"]}),
    )
    .await
    .expect(200);
    let created = app
        .post(&format!("/v1/users/{user}/secrets"), json!({}))
        .await;
    let secret_body = created.expect(201).clone();
    let secret = secret_body["secret"].as_str().unwrap().to_owned();
    let secret_id = secret_body["id"].as_str().unwrap().to_owned();
    secrets.push(secret.clone());
    let signing = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let key = app
        .post(
            &format!("/v1/users/{user}/keys"),
            json!({"jwk": signing.public_jwk()}),
        )
        .await;
    let user_key_id = key.expect(201)["id"].as_str().unwrap().to_owned();
    let api_key = app
        .post(
            "/v1/api-keys",
            json!({"userId": user, "tenantId": "plant-7", "roles": ["reader"]}),
        )
        .await;
    let api_key_body = api_key.expect(201).clone();
    let key_id = api_key_body["id"].as_str().unwrap().to_owned();
    secrets.push(api_key_body["key"].as_str().unwrap().to_owned());
    let rotated = app
        .post(
            &format!("/v1/api-keys/{key_id}/rotate"),
            json!({"gracePeriodSeconds": 60}),
        )
        .await;
    secrets.push(rotated.expect(200)["key"].as_str().unwrap().to_owned());
    let minted = app
        .post(
            "/v1/tokens",
            json!({"userId": user, "claims": {"job": "x"}}),
        )
        .await;
    let minted_token = minted.expect(200)["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let minted_jti = crate::helpers::decode_claims(&minted_token)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(minted_token);
    let (token, claims) = app.access_token(&user, &secret, &[]).await;
    secrets.push(token.clone());
    // The client revokes its own token, then the admin revokes the key.
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(&user, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.delete(&format!("/v1/api-keys/{key_id}"))
        .await
        .expect(204);
    // An admin revokes another key at the OAuth endpoint.
    let second = app.post("/v1/api-keys", json!({"userId": user})).await;
    let second = second.expect(201).clone();
    let second_value = second["key"].as_str().unwrap().to_owned();
    secrets.push(second_value.clone());
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .bearer_auth(&app.test_admin)
        .form(&[("token", second_value.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated_signing = app
        .post("/v1/signing-keys/rotate", json!({"immediate": false}))
        .await;
    let kid = rotated_signing.expect(201)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/users/{user}/keys/{user_key_id}"))
        .await
        .expect(204);
    app.delete(&format!("/v1/users/{user}/secrets/{secret_id}"))
        .await
        .expect(204);
    app.put(
        &format!("/v1/tenants/plant-7/users/{user}/roles"),
        json!({"roles": []}),
    )
    .await
    .expect(200);
    app.delete(&format!("/v1/users/{user}")).await.expect(204);
    app.delete("/v1/roles/reader").await.expect(204);
    app.delete("/v1/tenants/plant-7").await.expect(204);
    // Refused writes leave no event.
    app.post("/v1/tenants", json!({"id": "Bad Id", "name": "x"}))
        .await
        .expect_problem(400, "invalid_request");
    app.delete("/v1/users/usr_00000000000000000000")
        .await
        .expect_problem(404, "not_found");

    let events = all_events(&app, Mode::Test).await;
    // The first start's events come first: the workspace, the mode's first
    // signing key and its admin key, by the server itself.
    let (first_start, events) = events.split_at(3);
    assert_eq!(
        actions(first_start),
        [
            "workspace.created",
            "signing_key.created",
            "admin_key.created"
        ]
    );
    for e in first_start {
        assert_eq!(e["actor"], json!({"type": "system", "id": null}), "{e}");
        assert_eq!(e["mode"], "test", "{e}");
    }
    assert_eq!(first_start[2]["details"]["source"], "environment");
    assert_eq!(
        actions(events),
        [
            "tenant.created",
            "tenant.updated",
            "role.put",
            "user.created",
            "user.updated",
            "membership.set",
            "client_secret.created",
            "user_key.added",
            "api_key.created",
            "api_key.rotated",
            "token.minted",
            "token.revoked",
            "api_key.revoked",
            "api_key.created",
            "api_key.revoked",
            "signing_key.rotated",
            "user_key.removed",
            "client_secret.revoked",
            "membership.set",
            "user.deleted",
            "role.deleted",
            "tenant.deleted",
        ]
    );
    let admin_id = events[0]["actor"]["id"].as_str().unwrap().to_owned();
    assert!(admin_id.starts_with("adm_"), "{admin_id}");
    // The admin key installed at first start is the one that acted.
    assert_eq!(first_start[2]["target"]["id"], admin_id.as_str());
    let now = time::OffsetDateTime::now_utc();
    for e in events {
        assert_eq!(e["mode"], "test", "{e}");
        assert!(e["id"].as_str().unwrap().starts_with("evt_"), "{e}");
        let at = time::OffsetDateTime::parse(
            e["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!((now - at).whole_seconds().abs() < 300, "{e}");
        assert!(e["details"].is_object(), "{e}");
        if e["action"] == "token.revoked" {
            // The client revoked its own token.
            assert_eq!(e["actor"], json!({"type": "client", "id": user}));
        } else {
            assert_eq!(e["actor"], json!({"type": "admin_key", "id": admin_id}));
        }
        let expected_source = if e["action"] == "user.created" {
            "203.0.113.9"
        } else {
            "127.0.0.1"
        };
        assert_eq!(e["sourceAddress"], expected_source, "{e}");
    }
    let by_action = |a: &str| events.iter().find(|e| e["action"] == a).unwrap().clone();
    assert_eq!(
        by_action("tenant.created")["target"],
        json!({"type": "tenant", "id": "plant-7"})
    );
    assert_eq!(
        by_action("user.created")["target"],
        json!({"type": "user", "id": user})
    );
    let updated = by_action("user.updated");
    let mut fields: Vec<&str> = updated["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["customClaims", "email"]);
    assert_eq!(
        by_action("membership.set")["details"]["roles"],
        json!(["reader"])
    );
    assert_eq!(by_action("membership.set")["tenantId"], "plant-7");
    assert_eq!(
        by_action("client_secret.created")["target"],
        json!({"type": "client_secret", "id": secret_id})
    );
    let created_key = by_action("api_key.created");
    assert_eq!(
        created_key["target"],
        json!({"type": "api_key", "id": key_id})
    );
    assert_eq!(created_key["tenantId"], "plant-7");
    assert_eq!(created_key["details"]["userId"], user.as_str());
    assert_eq!(
        by_action("api_key.rotated")["details"]["gracePeriodSeconds"],
        60
    );
    let revocations: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "api_key.revoked")
        .collect();
    assert_eq!(revocations[0]["target"]["id"], key_id.as_str());
    assert_eq!(revocations[0]["tenantId"], "plant-7");
    assert_eq!(revocations[1]["target"]["id"], second["id"]);
    assert_eq!(revocations[1]["tenantId"], app.workspace_id.as_str());
    assert_eq!(
        by_action("token.minted")["target"],
        json!({"type": "token", "id": minted_jti})
    );
    assert_eq!(
        by_action("token.revoked")["target"],
        json!({"type": "token", "id": claims["jti"]})
    );
    assert_eq!(
        by_action("signing_key.rotated")["target"],
        json!({"type": "signing_key", "id": kid})
    );
    // No secret, key, token or private key is anywhere in the log; neither
    // are the claim values.
    let text = serde_json::to_string(&events).unwrap();
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "a credential is in the audit log"
        );
    }
    assert!(!text.contains(&signing.public_jwk().x.clone().unwrap()));
    assert!(!text.contains("south") && !text.contains("north"));
    // The live partition sees none of it: only its own first start.
    let live = all_events(&app, Mode::Live).await;
    assert_eq!(
        actions(&live),
        [
            "workspace.created",
            "signing_key.created",
            "admin_key.created"
        ]
    );
    assert_ne!(
        live[1]["target"], first_start[1]["target"],
        "one key per mode"
    );
}

async fn the_log_filters_and_pages(app: TestApp) {
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let mut users = Vec::new();
    for i in 0..7 {
        users.push(app.machine(&format!("m{i}")).await);
    }
    app.delete(&format!("/v1/users/{}", users[3]))
        .await
        .expect(204);
    let r = app.get("/v1/audit-events?action=user.deleted").await;
    let data = r.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["target"]["id"], users[3].as_str());
    let r = app
        .get(&format!("/v1/audit-events?targetId={}", users[3]))
        .await;
    assert_eq!(
        actions(r.expect(200)["data"].as_array().unwrap()),
        ["user.deleted", "user.created"]
    );
    // Pages of 3, newest first, with no repeat and nothing missed.
    let mut seen = Vec::new();
    let mut path = "/v1/audit-events?action=user.created&limit=3".to_owned();
    loop {
        let page = app.get(&path).await.expect(200).clone();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(
            data.iter()
                .map(|e| e["target"]["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/audit-events?action=user.created&limit=3&cursor={c}"),
            None => break,
        }
    }
    let mut expected = users.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    // Time windows.
    let since = start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .client
        .get(app.url("/v1/audit-events"))
        .bearer_auth(&app.test_admin)
        .query(&[("since", since.as_str()), ("limit", "1000")])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    // The test clock stands still, so the first start's three events fall
    // in the window too.
    assert_eq!(body["data"].as_array().unwrap().len(), 8 + 3);
    let r = app
        .client
        .get(app.url("/v1/audit-events"))
        .bearer_auth(&app.test_admin)
        .query(&[("until", since.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"], json!([]));
    // Bad filters are clear 400s.
    for bad in [
        "/v1/audit-events?since=yesterday",
        "/v1/audit-events?until=2026-13-01T00:00:00Z",
        "/v1/audit-events?action=user.exploded",
        "/v1/audit-events?cursor=bm90LWEtbnVtYmVy",
        "/v1/audit-events?cursor=MTIzNDU2Nzg5MDEyMzQ1Njc4OQ",
        "/v1/audit-events?cursor=!!!",
        "/v1/audit-events?limit=0",
        "/v1/audit-events?limit=1001",
        "/v1/audit-events?mode=live",
    ] {
        app.get(bad).await.expect_problem(400, "invalid_request");
    }
    // U+0000 names nothing (PostgreSQL cannot even compare it).
    let r = app.get("/v1/audit-events?targetId=usr_%00").await;
    assert_eq!(r.expect(200)["data"], json!([]));
    // Only admin keys may read it.
    let r = app.send(Method::GET, "/v1/audit-events", None, None).await;
    r.expect_problem(401, "unauthenticated");
}

/// The events of `mode` with `action`, once there are `n` of them (burst
/// events are recorded just after the response that reached the limit).
async fn wait_for(app: &TestApp, mode: Mode, action: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let events: Vec<Value> = all_events(app, mode)
            .await
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} {action} events in {mode}");
}

async fn bursts_of_failed_authentication_are_recorded_once_per_limit(app: TestApp) {
    let id = app.machine("edge").await;
    let wrong = credential::generate(Mode::Test, CredentialKind::ClientSecret);
    let attacker = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 5]))
        .build()
        .unwrap();
    for _ in 0..15 {
        attacker
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(wrong.expose()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
    }
    let bursts = wait_for(&app, Mode::Test, "auth.failures_exceeded", 1).await;
    assert_eq!(bursts.len(), 1, "{bursts:?}");
    let burst = &bursts[0];
    assert_eq!(burst["mode"], "test");
    assert_eq!(burst["actor"], json!({"type": "anonymous", "id": null}));
    assert_eq!(burst["target"], json!({"type": "client", "id": id}));
    assert_eq!(burst["sourceAddress"], "127.0.0.5");
    assert_eq!(burst["details"]["limit"], "per_client");
    assert_eq!(burst["details"]["endpoint"], "/oauth/token");
    assert!(!serde_json::to_string(&all_events(&app, Mode::Test).await)
        .unwrap()
        .contains(wrong.expose()));

    // A burst against a live client is the live partition's, whatever
    // prefix the guesses carry: an attacker cannot steer it elsewhere.
    let live_user = app
        .send(
            Method::POST,
            "/v1/users",
            Some(&app.live_admin),
            Some(json!({"name": "live-edge"})),
        )
        .await;
    let live_user = live_user.expect(201)["id"].as_str().unwrap().to_owned();
    let steerer = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 7]))
        .build()
        .unwrap();
    for _ in 0..12 {
        steerer
            .post(app.url("/oauth/token"))
            .basic_auth(&live_user, Some(wrong.expose()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
    }
    let live = wait_for(&app, Mode::Live, "auth.failures_exceeded", 1).await;
    assert_eq!(
        live[0]["target"],
        json!({"type": "client", "id": live_user})
    );
    assert_eq!(live[0]["mode"], "live");
    let test_text = serde_json::to_string(&all_events(&app, Mode::Test).await).unwrap();
    assert!(!test_text.contains(&live_user), "a live client id in test");

    // Junk that names no mode, from another address: one mode-less event
    // for the address, seen from both partitions, naming no client.
    let junk = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 6]))
        .build()
        .unwrap();
    for i in 0..60 {
        junk.post(app.url("/oauth/token"))
            .basic_auth(format!("usr_guess{i}"), Some("hunter2"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
    }
    for mode in Mode::ALL {
        wait_for(&app, mode, "auth.failures_exceeded", 2).await;
        let events = all_events(&app, mode).await;
        let modeless: Vec<&Value> = events.iter().filter(|e| e["mode"].is_null()).collect();
        assert_eq!(modeless.len(), 1, "{mode}: {modeless:?}");
        assert_eq!(
            modeless[0]["target"],
            json!({"type": "address", "id": "127.0.0.6"})
        );
        assert_eq!(modeless[0]["details"]["limit"], "per_address");
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains("usr_guess"), "{mode}");
        assert!(!text.contains("hunter2"), "{mode}");
    }
}

async fn concurrent_admin_writes_lose_no_event(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = std::sync::Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.machine(&format!("burst-{i}")).await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    let events = all_events(&app, Mode::Test).await;
    let audited: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| e["action"] == "user.created")
        .map(|e| e["target"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(audited, ids);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("latchkey_audit_events_shed_total 0\n"),
        "{metrics}"
    );
    let written: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("latchkey_audit_events_written_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(written >= 200, "{written}");
}

crate::on_both_stores!(
    every_admin_write_and_credential_event_is_recorded_without_secrets,
    the_log_filters_and_pages,
    bursts_of_failed_authentication_are_recorded_once_per_limit,
    concurrent_admin_writes_lose_no_event,
);
