//! Crash safety: `kill -9` the server in the middle of a burst of admin
//! writes, restart it on the same store, and check that every acknowledged
//! write is there and that no write is half-applied (an API key without its
//! digest, a membership naming a user that does not exist), on SQLite and on
//! PostgreSQL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::serve::{printed, Serve};

/// What the server acknowledged before it was killed.
#[derive(Default)]
struct Acknowledged {
    users: Vec<String>,
    memberships: Vec<String>,
    keys: Vec<(String, String)>,
}

/// One writer: user, then its role in the workspace, then an API key, over
/// and over, recording each write the server answered with success.
async fn writer(base: String, admin: String, workspace: String, acked: Arc<Mutex<Acknowledged>>) {
    let http = reqwest::Client::new();
    loop {
        let Ok(r) = http
            .post(format!("{base}/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"name": "crash"}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != 201 {
            return;
        }
        let Ok(user) = r.json::<Value>().await else {
            return;
        };
        let id = user["id"].as_str().unwrap().to_owned();
        acked.lock().unwrap().users.push(id.clone());
        let Ok(r) = http
            .put(format!("{base}/v1/tenants/{workspace}/users/{id}/roles"))
            .bearer_auth(&admin)
            .json(&json!({"roles": ["reader"]}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != 200 {
            return;
        }
        acked.lock().unwrap().memberships.push(id.clone());
        let Ok(r) = http
            .post(format!("{base}/v1/api-keys"))
            .bearer_auth(&admin)
            .json(&json!({"userId": id}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != 201 {
            return;
        }
        let Ok(key) = r.json::<Value>().await else {
            return;
        };
        acked.lock().unwrap().keys.push((
            key["id"].as_str().unwrap().to_owned(),
            key["key"].as_str().unwrap().to_owned(),
        ));
    }
}

async fn kill_during_writes_loses_nothing(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let extra: Vec<&str> = match &database_url {
        Some(url) => vec!["--database-url", url.as_str()],
        None => vec![],
    };
    let mut server = Serve::start_with(dir.path(), &data, &extra);
    server.wait_healthy().await;
    let admin = printed(&server.stderr_text(), "LATCHKEY_TEST_ADMIN_KEY")
        .pop()
        .expect("the first start prints the admin key");
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let ws: Value = http
        .get(format!("{base}/v1/workspace"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let workspace = ws["id"].as_str().unwrap().to_owned();
    let r = http
        .put(format!("{base}/v1/roles/reader"))
        .bearer_auth(&admin)
        .json(&json!({"permissions": ["telemetry:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // A burst from 16 writers; SIGKILL in the middle of it.
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let writers: Vec<_> = (0..16)
        .map(|_| {
            tokio::spawn(writer(
                base.clone(),
                admin.clone(),
                workspace.clone(),
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.keys.len() >= 5,
        "the burst wrote too little before the kill to prove anything: {} keys",
        acked.keys.len()
    );

    // Restart on the same store.
    let mut server = Serve::start_with(dir.path(), &data, &extra);
    server.wait_healthy().await;
    let base = server.url.clone();
    for id in &acked.users {
        let r = http
            .get(format!("{base}/v1/users/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged user {id} is gone");
    }
    for id in &acked.memberships {
        let a: Value = http
            .get(format!("{base}/v1/users/{id}/authorization"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            a[&workspace]["roles"],
            json!(["reader"]),
            "acknowledged roles of {id}: {a}"
        );
    }
    for (id, key) in &acked.keys {
        let v: Value = http
            .post(format!("{base}/v1/api-keys/verify"))
            .bearer_auth(&admin)
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["valid"], true, "acknowledged key {id}: {v}");
    }
    drop(server);

    // Nothing half-applied, read from the database itself.
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=ro", data.join("latchkey.db").display()));
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let orphans: Vec<(String,)> = sqlx::query_as(
        "SELECT k.id FROM api_keys k WHERE NOT EXISTS \
         (SELECT 1 FROM api_key_digests d WHERE d.mode = k.mode AND d.key_id = k.id)",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(orphans.is_empty(), "API keys without a digest: {orphans:?}");
    let users: HashSet<String> = sqlx::query_as::<_, (String,)>("SELECT id FROM users")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let members: Vec<(String,)> = sqlx::query_as("SELECT user_id FROM memberships")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for (user,) in &members {
        assert!(
            users.contains(user),
            "a membership of a missing user {user}"
        );
    }
    // Every acknowledged write has its audit event.
    let audited: HashSet<(String, String)> =
        sqlx::query_as::<_, (String, String)>("SELECT action, target_id FROM audit_events")
            .fetch_all(&mut db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for id in &acked.users {
        assert!(
            audited.contains(&("user.created".to_owned(), id.clone())),
            "acknowledged user {id} has no audit event"
        );
    }
    for id in &acked.memberships {
        assert!(
            audited.contains(&("membership.set".to_owned(), id.clone())),
            "acknowledged membership of {id} has no audit event"
        );
    }
    for (id, _) in &acked.keys {
        assert!(
            audited.contains(&("api_key.created".to_owned(), id.clone())),
            "acknowledged key {id} has no audit event"
        );
    }
    eprintln!(
        "killed after {} users, {} memberships, {} keys acknowledged; {} users stored",
        acked.users.len(),
        acked.memberships.len(),
        acked.keys.len(),
        users.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_writes_on_sqlite_loses_nothing_acknowledged() {
    kill_during_writes_loses_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_writes_on_postgres_loses_nothing_acknowledged() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    kill_during_writes_loses_nothing(Some(url)).await;
}
