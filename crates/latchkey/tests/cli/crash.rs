//! Crash safety: `kill -9` the server in the middle of a burst of admin
//! writes, restart it on the same store, and check that every acknowledged
//! write is there and that no write is half-applied (an API key without its
//! digest, a membership naming a user that does not exist), on SQLite and on
//! PostgreSQL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::serve::{printed, Serve};

/// `method {base}{path}` as the admin, with a JSON body; the answer's JSON.
async fn admin_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    admin: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url).bearer_auth(admin);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// The verify endpoint's verdict on `key` at `base`, asked as the admin.
async fn verdict(http: &reqwest::Client, base: &str, admin: &str, key: &str) -> Value {
    http.post(format!("{base}/v1/api-keys/verify"))
        .bearer_auth(admin)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Starts a server on a store it bootstraps; the server and its test admin
/// key.
async fn first_start(
    dir: &std::path::Path,
    data: &std::path::Path,
    args: &[&str],
) -> (Serve, String) {
    let mut server = Serve::start_with(dir, data, args);
    server.wait_healthy().await;
    let admin = printed(&server.stderr_text(), "LATCHKEY_TEST_ADMIN_KEY")
        .pop()
        .expect("the first start prints the admin key");
    (server, admin)
}

/// Lets `writers` run for `after`, kills `server` with SIGKILL in the middle
/// of their burst, and waits for them to give up.
async fn kill_mid_burst(
    server: &mut Serve,
    after: Duration,
    writers: Vec<tokio::task::JoinHandle<()>>,
) {
    tokio::time::sleep(after).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
}

/// A connection to the database itself, to see what it holds.
async fn database(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

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
    let (mut server, admin) = first_start(dir.path(), &data, &extra).await;
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let ws = admin_json(
        &http,
        Method::GET,
        format!("{base}/v1/workspace"),
        &admin,
        None,
    )
    .await;
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
    kill_mid_burst(&mut server, Duration::from_millis(700), writers).await;
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
        let url = format!("{base}/v1/users/{id}/authorization");
        let a = admin_json(&http, Method::GET, url, &admin, None).await;
        assert_eq!(
            a[&workspace]["roles"],
            json!(["reader"]),
            "acknowledged roles of {id}: {a}"
        );
    }
    for (id, key) in &acked.keys {
        let v = verdict(&http, &base, &admin, key).await;
        assert_eq!(v["valid"], true, "acknowledged key {id}: {v}");
    }
    drop(server);

    // Nothing half-applied, read from the database itself.
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=ro", data.join("latchkey.db").display()));
    let mut db = database(&url).await;
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
    // Every committed write has its audit event (written in the write's own
    // transaction): not only the acknowledged ones, every one the database
    // holds.
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
    let keys: Vec<(String,)> = sqlx::query_as("SELECT id FROM api_keys")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for id in &users {
        assert!(
            audited.contains(&("user.created".to_owned(), id.clone())),
            "committed user {id} has no audit event"
        );
    }
    for (user,) in &members {
        assert!(
            audited.contains(&("membership.set".to_owned(), user.clone())),
            "committed membership of {user} has no audit event"
        );
    }
    for (id,) in &keys {
        assert!(
            audited.contains(&("api_key.created".to_owned(), id.clone())),
            "committed key {id} has no audit event"
        );
    }
    // And no event records a write that did not commit.
    for (action, target) in &audited {
        let committed = match action.as_str() {
            "user.created" => users.contains(target),
            "api_key.created" => keys.iter().any(|(k,)| k == target),
            _ => true,
        };
        assert!(committed, "{action} {target} has an event but no record");
    }
    eprintln!(
        "killed after {} users, {} memberships, {} keys acknowledged; {} users, {} memberships, \
         {} keys committed, each with its event",
        acked.users.len(),
        acked.memberships.len(),
        acked.keys.len(),
        users.len(),
        members.len(),
        keys.len()
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

/// Two nodes on one PostgreSQL; `kill -9` the one revoking keys in the
/// middle of a burst. Every revocation the database holds reached the other
/// node, whose caches hold the keys for a day (so nothing but the
/// notification can tell it), within moments; every one has its audit
/// event; no key that was not revoked is refused.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_revocations_every_committed_one_reaches_the_other_node() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Cached entries live a day: only a notification can refresh them.
    let args = [
        "--database-url",
        url.as_str(),
        "--cache-ttl-seconds",
        "86400",
    ];
    let (mut a, admin) = first_start(dir.path(), &data, &args).await;
    // The same data directory: the same master key.
    let mut b = Serve::start_with(dir.path(), &data, &args);
    b.wait_healthy().await;
    let http = reqwest::Client::new();
    let user = admin_json(
        &http,
        Method::POST,
        format!("{}/v1/users", a.url),
        &admin,
        Some(json!({"name": "fleet"})),
    )
    .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for _ in 0..300 {
        let created = admin_json(
            &http,
            Method::POST,
            format!("{}/v1/api-keys", a.url),
            &admin,
            Some(json!({"userId": user})),
        )
        .await;
        keys.push((
            created["id"].as_str().unwrap().to_owned(),
            created["key"].as_str().unwrap().to_owned(),
        ));
    }
    // B caches every key as valid.
    for (id, key) in &keys {
        let v = verdict(&http, &b.url, &admin, key).await;
        assert_eq!(v["valid"], true, "{id}: {v}");
    }

    // 16 writers revoke the keys on A; SIGKILL in the middle.
    let queue = Arc::new(Mutex::new(
        keys.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
    ));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let (queue, acked, http, admin) =
                (queue.clone(), acked.clone(), http.clone(), admin.clone());
            let base = a.url.clone();
            tokio::spawn(async move {
                loop {
                    let Some(id) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let Ok(r) = http
                        .delete(format!("{base}/v1/api-keys/{id}"))
                        .bearer_auth(&admin)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 204 {
                        return;
                    }
                    acked.lock().unwrap().insert(id);
                }
            })
        })
        .collect();
    kill_mid_burst(&mut a, Duration::from_millis(250), writers).await;
    let acked = std::mem::take(&mut *acked.lock().unwrap());

    // What the database holds, once it has settled: a COMMIT the killed
    // node sent just before it died is still carried out by its backend.
    let mut db = database(&url).await;
    let mut revoked = HashSet::new();
    loop {
        let now: HashSet<String> =
            sqlx::query_as::<_, (String,)>("SELECT id FROM api_keys WHERE revoked_at IS NOT NULL")
                .fetch_all(&mut db)
                .await
                .unwrap()
                .into_iter()
                .map(|(id,)| id)
                .collect();
        if now == revoked {
            break;
        }
        revoked = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        revoked.len() >= 5 && revoked.len() < keys.len(),
        "the kill did not land in the middle of the burst: {} of {} revoked",
        revoked.len(),
        keys.len()
    );
    assert!(
        acked.is_subset(&revoked),
        "an acknowledged revocation is not stored"
    );
    // B refuses every committed revocation, without waiting for its
    // day-long cache TTL, and still accepts every other key.
    let started = std::time::Instant::now();
    let mut pending: Vec<&(String, String)> =
        keys.iter().filter(|(id, _)| revoked.contains(id)).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for entry in pending {
            let v = verdict(&http, &b.url, &admin, &entry.1).await;
            if v["code"] != "revoked" {
                still.push(entry);
            }
        }
        pending = still;
        assert!(
            pending.is_empty() || started.elapsed() < Duration::from_secs(5),
            "node B still accepts {} of {} committed revocations after {:?} ({:?}…)",
            pending.len(),
            revoked.len(),
            started.elapsed(),
            pending.iter().take(3).map(|(id, _)| id).collect::<Vec<_>>()
        );
    }
    let caught_up = started.elapsed();
    for (id, key) in keys.iter().filter(|(id, _)| !revoked.contains(id)) {
        let v = verdict(&http, &b.url, &admin, key).await;
        assert_eq!(v["valid"], true, "{id} was never revoked: {v}");
    }
    let audited: HashSet<String> = sqlx::query_as::<_, (String,)>(
        "SELECT target_id FROM audit_events WHERE action = 'api_key.revoked'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .into_iter()
    .map(|(id,)| id)
    .collect();
    let unaudited: Vec<&String> = revoked.difference(&audited).collect();
    let unrecorded: Vec<&String> = audited.difference(&revoked).collect();
    assert!(
        unaudited.is_empty() && unrecorded.is_empty(),
        "{} of {} committed revocations have no event ({:?}…), {} events record none",
        unaudited.len(),
        revoked.len(),
        unaudited.iter().take(3).collect::<Vec<_>>(),
        unrecorded.len()
    );
    eprintln!(
        "killed A after {} revocations acknowledged, {} committed (each with its event); \
         node B refused all {} within {caught_up:?} of the check (cache TTL: a day)",
        acked.len(),
        revoked.len(),
        revoked.len()
    );
}

/// An import file: `n` users, each with a membership and a legacy API key.
fn import_file(n: usize) -> (String, Vec<String>) {
    let mut body = String::from(
        "{\"type\":\"role\",\"name\":\"device\",\"permissions\":[\"telemetry:write\"]}\n",
    );
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!(
            "legacy_{i:08}_{}",
            latchkey_core::ids::random_lower_alnum(24)
        );
        body.push_str(&format!(
            "{{\"type\":\"user\",\"externalId\":\"dev-{i}\",\"name\":\"Device {i}\"}}\n\
             {{\"type\":\"membership\",\"user\":{{\"externalId\":\"dev-{i}\"}},\"roles\":[\"device\"]}}\n\
             {{\"type\":\"api_key\",\"user\":{{\"externalId\":\"dev-{i}\"}},\"key\":\"{key}\"}}\n"
        ));
        keys.push(key);
    }
    (body, keys)
}

async fn import(http: &reqwest::Client, base: &str, admin: &str, body: String) -> Value {
    http.post(format!("{base}/v1/import"))
        .bearer_auth(admin)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `kill -9` in the middle of an import: what was committed is whole
/// records (no key without its digest, no membership without its user),
/// and running the same import again completes it, changing nothing that
/// was already there.
async fn kill_during_import_leaves_whole_records(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let extra: Vec<&str> = match &database_url {
        Some(url) => vec!["--database-url", url.as_str()],
        None => vec![],
    };
    let (mut server, admin) = first_start(dir.path(), &data, &extra).await;
    let http = reqwest::Client::new();
    let n = 20_000;
    let (file, keys) = import_file(n);
    let total = (1 + 3 * n) as u64;
    let upload = {
        let (http, base, admin, file) = (
            http.clone(),
            server.url.clone(),
            admin.clone(),
            file.clone(),
        );
        tokio::spawn(async move {
            http.post(format!("{base}/v1/import"))
                .bearer_auth(&admin)
                .header("content-type", "application/x-ndjson")
                .body(file)
                .send()
                .await
        })
    };
    kill_mid_burst(&mut server, Duration::from_millis(1500), vec![]).await;
    assert!(
        upload.await.unwrap().is_err(),
        "the import finished before the kill"
    );

    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=ro", data.join("latchkey.db").display()));
    let mut db = database(&url).await;
    let (users,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM users WHERE external_id IS NOT NULL")
            .fetch_one(&mut db)
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
    let (stray,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM memberships m WHERE NOT EXISTS \
         (SELECT 1 FROM users u WHERE u.mode = m.mode AND u.id = m.user_id)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(stray, 0);
    drop(db);
    assert!(
        users > 0 && (users as usize) < n,
        "the kill should land mid-import: {users} of {n} users committed"
    );

    let mut server = Serve::start_with(dir.path(), &data, &extra);
    server.wait_healthy().await;
    let summary = import(&http, &server.url, &admin, file.clone()).await;
    assert_eq!(summary["errorCount"], 0, "{summary}");
    let created = summary["created"].as_u64().unwrap();
    let unchanged = summary["unchanged"].as_u64().unwrap();
    assert_eq!(created + unchanged, total, "{summary}");
    assert!(unchanged >= users as u64, "{summary}");
    let again = import(&http, &server.url, &admin, file).await;
    assert_eq!(again["unchanged"].as_u64(), Some(total), "{again}");
    for key in keys.iter().step_by(997) {
        let v = verdict(&http, &server.url, &admin, key).await;
        assert_eq!(v["valid"], true, "{key}: {v}");
    }
    eprintln!("killed after {users} of {n} users; the rerun created {created}, found {unchanged}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_an_import_on_sqlite_leaves_whole_records_and_a_rerun_completes_it() {
    kill_during_import_leaves_whole_records(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_an_import_on_postgres_leaves_whole_records_and_a_rerun_completes_it() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    kill_during_import_leaves_whole_records(Some(url)).await;
}
