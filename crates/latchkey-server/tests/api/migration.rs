//! Migration: `POST /v1/import` and `GET /v1/export` over HTTP, on both
//! stores. Records in any order, found again on a second run, refused per
//! line with the field named; legacy credentials (keys in any format, as
//! values or digests; client secrets; password hashes made by other
//! systems) work where Latchkey's do; an export imported into an empty
//! server reproduces it, credentials included.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app, Backend, Reply, TestApp};

/// A password hash made by Django's hasher (the core's fixture, generated
/// by Django itself) and its password.
fn django_hash() -> (String, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../latchkey-core/tests/fixtures/imported_hashes.json"
    );
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let case = cases
        .iter()
        .find(|c| c["source"] == "django pbkdf2_sha256")
        .unwrap();
    (
        case["hash"].as_str().unwrap().to_owned(),
        case["password"].as_str().unwrap().to_owned(),
    )
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn import(app: &TestApp, query: &str, body: String) -> Reply {
    app.send_raw(
        Method::POST,
        &format!("/v1/import{query}"),
        "application/x-ndjson",
        body,
    )
    .await
}

async fn verify(app: &TestApp, key: &str) -> Value {
    app.send(
        Method::POST,
        "/v1/api-keys/verify",
        Some(&app.test_admin),
        Some(json!({ "key": key })),
    )
    .await
    .expect(200)
    .clone()
}

async fn export(app: &TestApp) -> String {
    let r = app.get("/v1/export").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    r.text
}

const LEGACY_KEY: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
const UUID_KEY: &str = "3f1c7a9e-4b8d-4f6a-9c2e-1d5b7a3e9f01";
const BCRYPT_KEY: &str = "acme_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const HEX_KEY: &str = "9b2e51f0c7a84d3e6f1a0b9c8d7e6f5a4b3c2d1e";
const CLIENT_SECRET: &str = "auth0-client-secret-QmFzZTY0U2VjcmV0VmFsdWU";

fn legacy_file() -> Vec<Value> {
    let (hash, _) = django_hash();
    let sha256_b64 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(UUID_KEY));
    let sha512_hex = hex(&sha2::Sha512::digest(HEX_KEY));
    let bcrypt = bcrypt::hash(BCRYPT_KEY, 4).unwrap();
    vec![
        // 1, 2: a child before its parent.
        json!({"type": "tenant", "id": "eu-west", "name": "EU West", "parentId": "eu"}),
        json!({"type": "tenant", "id": "eu", "name": "EU"}),
        json!({"type": "role", "name": "reader", "permissions": ["docs:read"]}),
        json!({"type": "user", "externalId": "auth0|svc-1", "name": "Billing service"}),
        json!({"type": "user", "externalId": "42", "kind": "human", "name": "Alice",
               "email": "alice@example.com", "passwordHash": hash}),
        json!({"type": "membership", "tenantId": "eu", "user": {"externalId": "auth0|svc-1"},
               "roles": ["reader"]}),
        json!({"type": "api_key", "user": {"externalId": "auth0|svc-1"}, "tenantId": "eu-west",
               "name": "old stripe-style key", "key": LEGACY_KEY}),
        json!({"type": "api_key", "user": {"externalId": "auth0|svc-1"},
               "keyHash": {"algorithm": "sha256", "value": sha256_b64, "encoding": "base64"}}),
        json!({"type": "api_key", "user": {"externalId": "auth0|svc-1"},
               "keyHash": {"algorithm": "bcrypt", "value": bcrypt}, "prefix": "acme_"}),
        json!({"type": "api_key", "user": {"externalId": "auth0|svc-1"},
               "keyHash": {"algorithm": "sha512", "value": sha512_hex}}),
        json!({"type": "secret", "user": {"externalId": "auth0|svc-1"}, "secret": CLIENT_SECRET}),
        // 12 to 16: refused, each naming its line and field.
        json!({"type": "tenant", "name": "no id"}),
        json!({"type": "membership", "user": {"externalId": "nobody"}, "roles": ["reader"]}),
        json!({"type": "user", "externalId": "7", "name": "Bob", "passwordHash": "md5$abc$def"}),
        json!({"type": "api_key", "user": {"externalId": "auth0|svc-1"},
               "keyHash": {"algorithm": "bcrypt", "value": "$2b$04$x"}}),
        json!({"type": "api_key", "user": {"externalId": "auth0|svc-1"}, "key": UUID_KEY,
               "id": "key_other"}),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn legacy_records_import_once_and_work_like_latchkeys_own(app: TestApp) {
    let file = ndjson(&legacy_file());
    let first = import(&app, "", file.clone()).await;
    let summary = first.expect(200);
    assert_eq!(summary["created"], 11, "{summary}");
    assert_eq!(summary["written"], true);
    let errors = summary["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![12, 13, 14, 15, 16], "{summary}");
    let detail = |i: usize| errors[i]["detail"].as_str().unwrap().to_owned();
    assert!(detail(0).contains("missing field `id`"), "{}", detail(0));
    assert_eq!(errors[1]["code"], "not_found");
    assert!(detail(1).starts_with("user:"), "{}", detail(1));
    assert!(detail(2).starts_with("passwordHash:"), "{}", detail(2));
    assert!(detail(3).starts_with("prefix:"), "{}", detail(3));
    assert_eq!(errors[4]["code"], "conflict", "{summary}");

    // A second run changes nothing.
    let again = import(&app, "", file).await;
    let again = again.expect(200);
    assert_eq!(
        (&again["created"], &again["updated"], &again["unchanged"]),
        (&json!(0), &json!(0), &json!(11)),
        "{again}"
    );

    // Each legacy key verifies, in whatever form it was imported.
    let svc = app.get("/v1/users?limit=100").await;
    let svc_id = svc.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["externalId"] == "auth0|svc-1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (key, tenant) in [
        (LEGACY_KEY, "eu-west"),
        (UUID_KEY, "acme-ws"),
        (BCRYPT_KEY, "acme-ws"),
        (HEX_KEY, "acme-ws"),
        (BCRYPT_KEY, "acme-ws"), // now by its SHA-256, added on first use
    ] {
        let v = verify(&app, key).await;
        assert_eq!(v["valid"], true, "{key}: {v}");
        assert_eq!(v["userId"], svc_id.as_str());
        assert_eq!(v["tenantId"], tenant);
    }
    let v = verify(&app, "acme_9f8e7d6c5b4a39281706f5e4d3c2b1a1").await;
    assert_eq!(v, json!({"valid": false, "code": "not_found"}));
    let keys = app.get(&format!("/v1/api-keys?userId={svc_id}")).await;
    let keys = keys.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|k| k["legacy"] == true), "{keys:?}");

    // The old client id and secret still get tokens; so does a legacy key
    // used as the client secret.
    for secret in [CLIENT_SECRET, LEGACY_KEY] {
        let r = app
            .token(
                Some(("auth0|svc-1", secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        let token = r.expect(200)["access_token"].as_str().unwrap().to_owned();
        let claims = crate::helpers::decode_claims(&token);
        assert_eq!(claims["sub"], svc_id.as_str());
    }
    let r = app
        .token(
            Some(("auth0|svc-1", "auth0-client-secret-wrong-value-000000")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.expect_oauth_error(401, "invalid_client");

    // Alice logs in with her Django password; the hash becomes Argon2id.
    let (_, password) = django_hash();
    let login = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"identifier": "alice@example.com"})),
        )
        .await;
    let login = login.expect(201).clone();
    let step = |pw: String| {
        let id = login["id"].as_str().unwrap().to_owned();
        let secret = login["secret"].as_str().unwrap().to_owned();
        let app = &app;
        async move {
            app.send(
                Method::POST,
                &format!("/auth/logins/{id}/password"),
                Some(&secret),
                Some(json!({ "password": pw })),
            )
            .await
        }
    };
    step(format!("{password}!"))
        .await
        .expect_problem(401, "invalid_credentials");
    let done = step(password).await;
    assert_eq!(done.expect(200)["complete"], true);
    let exported = export(&app).await;
    let alice = exported
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["externalId"] == "42")
        .unwrap();
    assert!(
        alice["passwordHash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{alice}"
    );
    // Importing the old file again does not bring the old hash back.
    let third = import(&app, "", ndjson(&legacy_file())).await;
    assert_eq!(third.expect(200)["updated"], 0);
}

async fn dry_runs_and_atomic_imports_write_nothing_when_they_say_so(app: TestApp) {
    let good = json!({"type": "tenant", "id": "apac", "name": "APAC"});
    let bad = json!({"type": "tenant", "id": "x", "name": "X", "parentId": "nowhere"});
    let dry = import(&app, "?dryRun=true", ndjson(std::slice::from_ref(&good))).await;
    let dry = dry.expect(200);
    assert_eq!(
        (&dry["created"], &dry["written"]),
        (&json!(1), &json!(false))
    );
    app.get("/v1/tenants/apac")
        .await
        .expect_problem(404, "not_found");

    let atomic = import(&app, "?atomic=true", ndjson(&[good.clone(), bad.clone()])).await;
    let atomic = atomic.expect(200);
    assert_eq!(atomic["written"], false, "{atomic}");
    assert_eq!(atomic["errors"][0]["line"], 2);
    assert_eq!(atomic["errors"][0]["code"], "not_found");
    app.get("/v1/tenants/apac")
        .await
        .expect_problem(404, "not_found");

    let loose = import(&app, "", ndjson(&[good, bad])).await;
    assert_eq!(loose.expect(200)["created"], 1);
    app.get("/v1/tenants/apac").await.expect(200);

    // Lines that are not records, and a request without an admin key.
    let junk = "not json\n\n{\"type\":\"role\",\"name\":\"Bad Name\",\"permissions\":[]}\n"
        .to_owned()
        + &"x".repeat(70 * 1024)
        + "\n";
    let r = import(&app, "", junk).await;
    let r = r.expect(200);
    let lines: Vec<u64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![1, 3, 4], "{r}");
    let empty = import(&app, "", "\n  \n".into()).await;
    empty.expect_problem(400, "invalid_request");
    let anonymous = app
        .send(Method::POST, "/v1/import", None, Some(json!({})))
        .await;
    anonymous.expect_problem(401, "unauthenticated");
    let r = app.get("/v1/audit-events?action=import.completed").await;
    assert!(!r.expect(200)["data"].as_array().unwrap().is_empty());
}

/// Everything an admin can make through the API, in one server.
async fn populate(app: &TestApp) -> (String, String, String) {
    app.post("/v1/tenants", json!({"id": "eu", "name": "EU"}))
        .await
        .expect(201);
    app.post(
        "/v1/tenants",
        json!({"id": "eu-west", "name": "EU West", "parentId": "eu", "cascade": false,
               "metadata": {"region": "eu-west-1"}}),
    )
    .await
    .expect(201);
    app.put(
        "/v1/roles/writer",
        json!({"permissions": ["docs:write", "docs:read"], "description": "Writes"}),
    )
    .await
    .expect(201);
    let user = app.machine("ingest").await;
    app.put(
        &format!("/v1/tenants/eu/users/{user}/roles"),
        json!({"roles": ["writer"]}),
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/tenants/acme-ws/users/{user}/roles"),
        json!({"roles": ["admin"]}),
    )
    .await
    .expect(200);
    let secret = app.secret(&user).await;
    let key = app
        .post(
            "/v1/api-keys",
            json!({"userId": user, "tenantId": "eu-west", "roles": ["writer"],
                   "name": "ingest", "ratelimit": {"limit": 100, "windowSeconds": 60}}),
        )
        .await;
    let key = key.expect(201)["key"].as_str().unwrap().to_owned();
    let revoked = app.post("/v1/api-keys", json!({"userId": user})).await;
    let revoked_id = revoked.expect(201)["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/api-keys/{revoked_id}"))
        .await
        .expect(204);
    import(app, "", ndjson(&legacy_file()[..11]))
        .await
        .expect(200);
    (user, secret, key)
}

async fn an_export_imported_into_an_empty_server_reproduces_it(app: TestApp) {
    let (user, secret, key) = populate(&app).await;
    let exported = export(&app).await;
    assert!(!exported.contains(&secret) && !exported.contains(&key));
    assert!(!exported.contains(LEGACY_KEY) && !exported.contains(CLIENT_SECRET));
    let records: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.iter().filter(|r| r["type"] == "api_key").count(),
        5,
        "the revoked key stays behind: {exported}"
    );

    let backend = match app.database_url {
        Some(_) => Backend::Postgres,
        None => Backend::Sqlite,
    };
    let fresh = spawn_app(backend).await.unwrap();
    let summary = import(&fresh, "?atomic=true", exported.clone()).await;
    let summary = summary.expect(200);
    assert_eq!(summary["errorCount"], 0, "{summary}");
    assert_eq!(summary["created"].as_u64().unwrap(), records.len() as u64);
    assert_eq!(
        export(&fresh).await,
        exported,
        "the same records, byte for byte"
    );

    // Every credential works on the new server.
    let (token, claims) = fresh.access_token(&user, &secret, &[]).await;
    assert!(!token.is_empty());
    assert_eq!(
        claims["authorization"]["acme-ws"]["roles"],
        json!(["admin"])
    );
    for k in [key.as_str(), LEGACY_KEY, UUID_KEY, BCRYPT_KEY, HEX_KEY] {
        let v = verify(&fresh, k).await;
        assert_eq!(v["valid"], true, "{k}: {v}");
    }
    let v = verify(&fresh, &key).await;
    assert_eq!(
        (&v["tenantId"], &v["roles"]),
        (&json!("eu-west"), &json!(["writer"]))
    );
    let r = fresh
        .token(
            Some(("auth0|svc-1", CLIENT_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.expect(200);
}

async fn legacy_keys_rotate_into_latchkey_keys_with_a_grace_period(app: TestApp) {
    import(&app, "", ndjson(&legacy_file()[..11]))
        .await
        .expect(200);
    let keys = app.get("/v1/api-keys?limit=100").await;
    let keys = keys.expect(200)["data"].as_array().unwrap().clone();
    // The bcrypt one was never presented (it has only its slow hash); the
    // plain one has its SHA-256 from the import.
    for old in [BCRYPT_KEY, LEGACY_KEY] {
        let id = verify(&app, old).await["keyId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(keys
            .iter()
            .any(|k| k["id"] == id.as_str() && k["legacy"] == true));
        let r = app
            .post(
                &format!("/v1/api-keys/{id}/rotate"),
                json!({"gracePeriodSeconds": 300}),
            )
            .await;
        let new = r.expect(200)["key"].as_str().unwrap().to_owned();
        assert!(new.starts_with("lk_test_key_"), "{new}");
        let key = app.get(&format!("/v1/api-keys/{id}")).await;
        assert_eq!(key.expect(200)["legacy"], false);
        assert_eq!(
            verify(&app, old).await["valid"],
            true,
            "{old} in its grace period"
        );
        assert_eq!(verify(&app, &new).await["valid"], true);
    }
    app.clock.advance(301);
    for old in [BCRYPT_KEY, LEGACY_KEY] {
        let v = verify(&app, old).await;
        assert_eq!(v["valid"], false, "{old} after its grace period: {v}");
    }
    // The export has the Latchkey values now, not the legacy hashes.
    let exported = export(&app).await;
    assert_eq!(
        exported.matches("\"algorithm\":\"bcrypt\"").count(),
        0,
        "{exported}"
    );
}

async fn legacy_credentials_keep_to_their_mode(app: TestApp) {
    let file = ndjson(&[
        json!({"type": "user", "externalId": "svc", "name": "Service"}),
        json!({"type": "api_key", "user": {"externalId": "svc"}, "key": LEGACY_KEY}),
        json!({"type": "secret", "user": {"externalId": "svc"}, "secret": CLIENT_SECRET}),
    ]);
    let r = app
        .client
        .post(app.url("/v1/import"))
        .bearer_auth(&app.live_admin)
        .header("content-type", "application/x-ndjson")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        verify(&app, LEGACY_KEY).await,
        json!({"valid": false, "code": "wrong_mode"})
    );
    let live = app
        .send(
            Method::POST,
            "/v1/api-keys/verify",
            Some(&app.live_admin),
            Some(json!({ "key": LEGACY_KEY })),
        )
        .await;
    assert_eq!(live.expect(200)["valid"], true);
    // Over TLS (the suite's client says so through the trusted proxy) the
    // old credentials get a live token; over plain HTTP they are refused
    // once found, as live.
    let form = [("grant_type", "client_credentials")];
    for secret in [CLIENT_SECRET, LEGACY_KEY] {
        let r = app.token(Some(("svc", secret)), &form).await;
        let token = r.expect(200)["access_token"].as_str().unwrap().to_owned();
        assert_eq!(crate::helpers::decode_claims(&token)["mode"], "live");
        let plain = reqwest::Client::new()
            .post(app.url("/oauth/token"))
            .basic_auth("svc", Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), 403, "{secret}");
        let body: Value = plain.json().await.unwrap();
        assert_eq!(body["error"], "tls_required");
    }
}

crate::on_both_stores!(
    legacy_credentials_keep_to_their_mode,
    legacy_keys_rotate_into_latchkey_keys_with_a_grace_period,
    legacy_records_import_once_and_work_like_latchkeys_own,
    dry_runs_and_atomic_imports_write_nothing_when_they_say_so,
    an_export_imported_into_an_empty_server_reproduces_it,
);
