//! The hot paths from memory: once warm, token issuance (client secret, API
//! key, private_key_jwt), API-key verification and JWT introspection do no
//! store operation at all (counted by the store's own latency metrics), a
//! cold miss does exactly one store read however many requests wait for it,
//! and with the database gone they keep working while readiness says so.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use latchkey_core::signing::{Algorithm, SigningKey};
use serde_json::json;

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// Redis for exact replay checks and rate limits, when the environment
/// names one (CI does).
fn redis_url() -> Option<String> {
    std::env::var("LATCHKEY_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |s| s.redis_url = redis_url()).await
}

/// A machine with a role in the workspace, a client secret, an API key with
/// a rate limit, and a registered Ed25519 key.
struct Machine {
    id: String,
    secret: String,
    api_key: String,
    signing: SigningKey,
}

async fn provision(app: &TestApp) -> Machine {
    app.put(
        "/v1/roles/reader",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    let id = app.machine("edge").await;
    app.put(
        &format!("/v1/tenants/{}/users/{id}/roles", app.workspace_id),
        json!({"roles": ["reader"]}),
    )
    .await
    .expect(200);
    let secret = app.secret(&id).await;
    let (_, api_key) = app
        .api_key(json!({"userId": id, "ratelimit": {"limit": 100000, "windowSeconds": 60}}))
        .await;
    let signing = SigningKey::generate(Algorithm::EdDSA).unwrap();
    app.register(&id, &signing).await;
    Machine {
        id,
        secret,
        api_key,
        signing,
    }
}

/// One round of every hot path; returns a fresh access token.
async fn hot_round(app: &TestApp, m: &Machine) -> String {
    let form = [("grant_type", "client_credentials")];
    let token = app.token(Some((&m.id, &m.secret)), &form).await;
    let token = token.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.token(Some((&m.id, &m.api_key)), &form)
        .await
        .expect(200);
    assert_eq!(app.verify(&m.api_key).await["valid"], true);
    let r = app.introspect(&token).await;
    assert_eq!(r.expect(200)["active"], true);
    let assertion = app.sign(&m.signing, &app.claims(&m.id), true);
    app.with_private_key_jwt(&assertion).await.expect(200);
    token
}

async fn warm_hot_paths_do_no_store_operation(app: TestApp) {
    let m = provision(&app).await;
    hot_round(&app, &m).await;
    let before = app.store_ops().await;
    let rounds = 20;
    for _ in 0..rounds {
        hot_round(&app, &m).await;
    }
    let ops = app.request_ops_since(&before).await;
    if redis_url().is_some() {
        assert!(
            ops.is_empty(),
            "warm hot paths ran store operations: {ops:?}"
        );
    } else {
        // Without Redis the store is what makes a client assertion's jti
        // single-use across nodes: one write per assertion, nothing else.
        assert_eq!(
            ops,
            HashMap::from([("use_assertion".to_owned(), rounds)]),
            "warm hot paths ran store operations"
        );
    }
}

/// `n` verifications of `key` sent at the same time.
async fn verify_at_once(app: &TestApp, key: &str, n: usize) -> Vec<serde_json::Value> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let req = app
            .client
            .post(app.url("/v1/api-keys/verify"))
            .bearer_auth(&app.test_admin)
            .header("x-api-key", key);
        set.spawn(async move { req.send().await.unwrap().json().await.unwrap() });
    }
    set.join_all().await
}

async fn a_cold_miss_reads_the_store_once(app: TestApp) {
    let id = app.machine("cold").await;
    let (_, api_key) = app.api_key(json!({"userId": id})).await;
    let before = app.store_ops().await;
    // 32 verifications of a key nobody has looked up yet, at once.
    let answers = verify_at_once(&app, &api_key, 32).await;
    assert!(answers.iter().all(|a| a["valid"] == true), "{answers:?}");
    let ops = app.request_ops_since(&before).await;
    assert_eq!(ops.get("find_api_key"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("load_principal"), Some(&1), "{ops:?}");
    // An unknown key is remembered too: one read for many attempts.
    let unknown = latchkey_core::credential::generate(
        latchkey_types::Mode::Test,
        latchkey_core::credential::CredentialKind::ApiKey,
    );
    let before = app.store_ops().await;
    let answers = verify_at_once(&app, unknown.expose(), 16).await;
    assert!(answers.iter().all(|a| a["code"] == "not_found"));
    let ops = app.request_ops_since(&before).await;
    assert_eq!(ops.get("find_api_key"), Some(&1), "{ops:?}");
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn warm_hot_paths_do_no_store_operation() {
        super::warm_hot_paths_do_no_store_operation(spawn(Backend::Sqlite).await.unwrap()).await;
    }

    #[tokio::test]
    async fn a_cold_miss_reads_the_store_once() {
        super::a_cold_miss_reads_the_store_once(spawn(Backend::Sqlite).await.unwrap()).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn warm_hot_paths_do_no_store_operation() {
        let Some(app) = spawn(Backend::Postgres).await else {
            eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
            return;
        };
        super::warm_hot_paths_do_no_store_operation(app).await;
    }

    #[tokio::test]
    async fn a_cold_miss_reads_the_store_once() {
        let Some(app) = spawn(Backend::Postgres).await else {
            eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
            return;
        };
        super::a_cold_miss_reads_the_store_once(app).await;
    }

    /// The database refuses every connection: readiness turns false, the
    /// warm hot paths keep answering; when it is back the server reconnects
    /// by itself.
    #[tokio::test]
    async fn with_the_database_gone_warm_credentials_keep_working() {
        let Some(app) = spawn(Backend::Postgres).await else {
            eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
            return;
        };
        let m = provision(&app).await;
        hot_round(&app, &m).await;
        let url = app.database_url.clone().unwrap();
        let (server, db) = url.rsplit_once('/').unwrap();
        let mut admin =
            <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
                .await
                .unwrap();
        let set_allowed =
            |allowed: bool| format!("ALTER DATABASE {db} ALLOW_CONNECTIONS {allowed}");
        sqlx::query(&set_allowed(false))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(db)
            .execute(&mut admin)
            .await
            .unwrap();
        assert_eq!(app.get("/readyz").await.status, 503);
        let with_redis = redis_url().is_some();
        for _ in 0..5 {
            let form = [("grant_type", "client_credentials")];
            app.token(Some((&m.id, &m.secret)), &form).await.expect(200);
            app.token(Some((&m.id, &m.api_key)), &form)
                .await
                .expect(200);
            assert_eq!(app.verify(&m.api_key).await["valid"], true);
            if with_redis {
                let assertion = app.sign(&m.signing, &app.claims(&m.id), true);
                app.with_private_key_jwt(&assertion).await.expect(200);
            }
        }
        // Writes fail cleanly meanwhile.
        app.post("/v1/users", json!({"name": "n"}))
            .await
            .expect_problem(503, "unavailable");
        sqlx::query(&set_allowed(true))
            .execute(&mut admin)
            .await
            .unwrap();
        let start = Instant::now();
        while app.get("/readyz").await.status != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "never ready again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.post("/v1/users", json!({"name": "n"}))
            .await
            .expect(201);
        hot_round(&app, &m).await;
    }
}
