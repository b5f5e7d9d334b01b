//! Two nodes on one PostgreSQL with the default cache TTL (60 s): a write on
//! one node reaches the other's caches through LISTEN/NOTIFY within a
//! second, every time, including after the listener's connection is cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_server::{BootstrapKeys, Config, Settings};
use latchkey_types::Mode;
use serde_json::{json, Value};

async fn node(
    url: &str,
    dir: &std::path::Path,
    admin: &latchkey_core::Secret,
    redis_url: Option<String>,
    workspace: &str,
) -> (String, latchkey_server::RunningServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = Settings {
        listen: Some(addr),
        data_dir: Some(dir.to_path_buf()),
        database_url: Some(url.to_owned()),
        // One issuer for the cluster, as behind a load balancer.
        issuer: Some("http://latchkey.cluster.test".into()),
        workspace_id: Some(workspace.to_owned()),
        redis_url,
        ..Default::default()
    };
    let keys = BootstrapKeys {
        test: Some(admin.clone()),
        ..Default::default()
    };
    let config = Config::resolve(settings, keys).unwrap();
    let server =
        latchkey_server::spawn_on(listener, config, Arc::new(SystemClock) as Arc<dyn Clock>)
            .await
            .unwrap();
    (format!("http://{addr}"), server)
}

/// Two nodes on one fresh PostgreSQL database, and an admin client.
struct Cluster {
    a: String,
    b: String,
    url: String,
    http: reqwest::Client,
    admin: latchkey_core::Secret,
    _nodes: (
        latchkey_server::RunningServer,
        latchkey_server::RunningServer,
    ),
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        Cluster::start_with(None).await
    }

    async fn start_with(redis_url: Option<String>) -> Option<Cluster> {
        let url = latchkey_store::testing::fresh_postgres_url().await?;
        // Both nodes share the store and the master key file (one data dir).
        let dir = tempfile::tempdir().unwrap();
        let admin = credential::generate(Mode::Test, CredentialKind::Admin);
        // A workspace of its own: clusters of concurrent tests share Redis,
        // and the brute-force counters there are per workspace.
        let workspace = latchkey_core::ids::new_tenant_id();
        let (a, node_a) = node(&url, dir.path(), &admin, redis_url.clone(), &workspace).await;
        let (b, node_b) = node(&url, dir.path(), &admin, redis_url, &workspace).await;
        Some(Cluster {
            a,
            b,
            url,
            http: reqwest::Client::new(),
            admin,
            _nodes: (node_a, node_b),
            _dir: dir,
        })
    }

    /// A cluster sharing Redis too, or `None` (said) when
    /// `LATCHKEY_TEST_REDIS_URL` or `LATCHKEY_TEST_POSTGRES_URL` is unset.
    async fn with_redis() -> Option<Cluster> {
        let Some(redis) = std::env::var("LATCHKEY_TEST_REDIS_URL")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            eprintln!("skipped: LATCHKEY_TEST_REDIS_URL is not set");
            return None;
        };
        let cluster = Cluster::start_with(Some(redis)).await;
        if cluster.is_none() {
            eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        }
        cluster
    }

    async fn post(&self, base: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(self.admin.expose())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn verify(&self, base: &str, api_key: &str) -> Value {
        self.http
            .post(format!("{base}/v1/api-keys/verify"))
            .bearer_auth(self.admin.expose())
            .header("x-api-key", api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Creates a key on A, has B cache it as valid, revokes it on A, and
    /// returns how long B took to refuse it (failing past `limit`).
    async fn revoke_and_time(&self, user: &str, limit: Duration) -> Duration {
        let created = self
            .post(&self.a, "/v1/api-keys", json!({"userId": user}))
            .await;
        let key_id = created["id"].as_str().unwrap();
        let api_key = created["key"].as_str().unwrap();
        assert_eq!(self.verify(&self.b, api_key).await["valid"], true);
        let r = self
            .http
            .delete(format!("{}/v1/api-keys/{key_id}", self.a))
            .bearer_auth(self.admin.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let start = Instant::now();
        loop {
            if self.verify(&self.b, api_key).await["code"] == "revoked" {
                break;
            }
            assert!(
                start.elapsed() < limit,
                "node B still accepts the key after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = start.elapsed();
        // And it stays refused.
        for _ in 0..3 {
            assert_eq!(self.verify(&self.b, api_key).await["code"], "revoked");
        }
        seen
    }
}

#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_by_the_other_within_a_second_every_time() {
    let Some(c) = Cluster::start().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let user = c.post(&c.a, "/v1/users", json!({"name": "edge"})).await;
    let user = user["id"].as_str().unwrap().to_owned();
    let mut times = Vec::new();
    for _ in 0..20 {
        times.push(c.revoke_and_time(&user, Duration::from_secs(1)).await);
    }
    times.sort();
    eprintln!(
        "node B refused 20 revoked keys: median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // A user disabled on A is refused by B (its principal is cached there).
    let created = c.post(&c.a, "/v1/api-keys", json!({"userId": user})).await;
    let api_key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(c.verify(&c.b, &api_key).await["valid"], true);
    let r = c
        .http
        .patch(format!("{}/v1/users/{user}", c.a))
        .bearer_auth(c.admin.expose())
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    while c.verify(&c.b, &api_key).await["code"] != "disabled" {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B still accepts a disabled user"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_token_revoked_on_one_node_is_inactive_on_the_other_within_a_second() {
    let Some(c) = Cluster::start().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let user = c.post(&c.a, "/v1/users", json!({"name": "edge"})).await;
    let user = user["id"].as_str().unwrap().to_owned();
    let secret = c
        .post(&c.a, &format!("/v1/users/{user}/secrets"), json!({}))
        .await;
    let secret = secret["secret"].as_str().unwrap().to_owned();
    let token: Value = c
        .http
        .post(format!("{}/oauth/token", c.a))
        .basic_auth(&user, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let introspect = |base: String| {
        let http = c.http.clone();
        let token = token.clone();
        let admin = c.admin.expose().to_owned();
        async move {
            let r = http
                .post(format!("{base}/oauth/introspect"))
                .bearer_auth(admin)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["active"].clone()
        }
    };
    assert_eq!(introspect(c.b.clone()).await, true);
    let r = c
        .http
        .post(format!("{}/oauth/revoke", c.a))
        .bearer_auth(c.admin.expose())
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    while introspect(c.b.clone()).await == true {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "node B still reports the token active"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("node B saw the revoked token after {:?}", start.elapsed());
}

#[tokio::test]
async fn after_its_listener_connection_is_cut_a_node_reconnects_and_misses_nothing() {
    let Some(c) = Cluster::start().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let user = c.post(&c.a, "/v1/users", json!({"name": "edge"})).await;
    let user = user["id"].as_str().unwrap().to_owned();
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&c.url)
        .await
        .unwrap();
    for _ in 0..3 {
        // Both nodes listen again (after the previous cut, a busy machine
        // may take a moment to reconnect)...
        let waiting = Instant::now();
        loop {
            let (listening,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            if listening == 2 || waiting.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ...then cut both listening connections; a revocation made while
        // they are away is caught by the resync after the reconnect.
        let cut: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        assert_eq!(cut.len(), 2, "each node holds one listening connection");
        let seen = c.revoke_and_time(&user, Duration::from_secs(2)).await;
        eprintln!("after a cut connection, B refused the key after {seen:?}");
    }
    // B's listener did reconnect (and resync) after each cut.
    let start = Instant::now();
    loop {
        let metrics = c
            .http
            .get(format!("{}/metrics", c.b))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let resyncs: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("latchkey_invalidations_received_total{kind=\"resync\"} "))
            .map_or(0, |n| n.parse().unwrap());
        if resyncs >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "B resynced {resyncs} times, not 3"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_redis_a_rate_limit_holds_exactly_across_nodes() {
    let Some(c) = Cluster::with_redis().await else {
        return;
    };
    let user = c.post(&c.a, "/v1/users", json!({"name": "edge"})).await;
    let user = user["id"].as_str().unwrap().to_owned();
    let created = c
        .post(
            &c.a,
            "/v1/api-keys",
            json!({"userId": user, "ratelimit": {"limit": 10, "windowSeconds": 3600}}),
        )
        .await;
    let api_key = created["key"].as_str().unwrap().to_owned();
    // Ten uses spread over both nodes are allowed; the eleventh, on either
    // node, is not (per node, each would still have five left).
    for i in 0..10 {
        let base = if i % 2 == 0 { &c.a } else { &c.b };
        assert_eq!(c.verify(base, &api_key).await["valid"], true, "use {i}");
    }
    assert_eq!(c.verify(&c.a, &api_key).await["code"], "rate_limited");
    assert_eq!(c.verify(&c.b, &api_key).await["code"], "rate_limited");
}

/// Failed attempts at the token endpoint, for `client` with a wrong secret,
/// at `base`; the status of each.
async fn guesses(c: &Cluster, base: &str, client: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = c
            .http
            .post(format!("{base}/oauth/token"))
            .basic_auth(client, Some("lk_test_secret_wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn with_redis_brute_force_limits_hold_across_nodes() {
    let Some(c) = Cluster::with_redis().await else {
        return;
    };
    // Counting windows are whole minutes: start early in one.
    let into_minute = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .rem_euclid(60);
    if into_minute > 45 {
        tokio::time::sleep(Duration::from_secs((61 - into_minute) as u64)).await;
    }
    // Ten failures for one client from this address, five on each node:
    // each node alone has seen five, but the limit (10) is one for both.
    let spread = [
        guesses(&c, &c.a, "usr_spread", 5).await,
        guesses(&c, &c.b, "usr_spread", 5).await,
    ]
    .concat();
    assert_eq!(spread, vec![401; 10]);
    assert_eq!(guesses(&c, &c.a, "usr_spread", 1).await, [429]);
    assert_eq!(guesses(&c, &c.b, "usr_spread", 1).await, [429]);
    // Ten on A alone: B refuses the eleventh the first time it sees the
    // client.
    assert_eq!(guesses(&c, &c.a, "usr_one_node", 10).await, vec![401; 10]);
    assert_eq!(guesses(&c, &c.b, "usr_one_node", 1).await, [429]);
    // The address limit (50 failures, whatever the client), spread too:
    // 20 failures so far, then 30 more over both nodes, then nothing.
    let mut rest = Vec::new();
    for i in 0..30 {
        let base = if i % 2 == 0 { &c.a } else { &c.b };
        rest.extend(guesses(&c, base, &format!("usr_many_{i}"), 1).await);
    }
    assert_eq!(rest, vec![401; 30]);
    for base in [&c.a, &c.b] {
        assert_eq!(guesses(&c, base, "usr_fresh", 1).await, [429], "{base}");
    }
}

#[tokio::test]
async fn a_login_begun_on_one_node_completes_on_the_other_and_a_reuse_there_ends_the_family() {
    let Some(c) = Cluster::start().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let user = c
        .post(
            &c.a,
            "/v1/users",
            json!({"name": "roamer", "email": "roamer@example.com"}),
        )
        .await;
    let user = user["id"].as_str().unwrap();
    let password = "plum-kettle-orbit-9";
    let r = c
        .http
        .put(format!("{}/v1/users/{user}/password", c.a))
        .bearer_auth(c.admin.expose())
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let call = |base: &str, path: &str, bearer: Option<&str>, body: Value| {
        let mut req = c.http.post(format!("{base}{path}")).json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // Begun on A, finished on B.
    let (status, login) = call(&c.a, "/auth/logins", None, json!({"identifier": user})).await;
    assert_eq!(status, 201);
    let (id, secret) = (
        login["id"].as_str().unwrap(),
        login["secret"].as_str().unwrap(),
    );
    let (status, done) = call(
        &c.b,
        &format!("/auth/logins/{id}/password"),
        Some(secret),
        json!({"password": password}),
    )
    .await;
    assert_eq!(
        (status, done["complete"].clone()),
        (200, json!(true)),
        "{done}"
    );
    let first = done["session"]["refreshToken"].as_str().unwrap().to_owned();
    let refresh = |base: String, token: String| {
        let req = c.http.post(format!("{base}/oauth/token")).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
        ]);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Rotated on A; the old token again on B, past the retry window, ends
    // the family for A too.
    let (status, rotated) = refresh(c.a.clone(), first.clone()).await;
    assert_eq!(status, 200, "{rotated}");
    let newest = rotated["refresh_token"].as_str().unwrap().to_owned();
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let (status, reused) = refresh(c.b.clone(), first).await;
    assert_eq!(
        (status, reused["error"].clone()),
        (400, json!("invalid_grant"))
    );
    let (status, _) = refresh(c.a.clone(), newest).await;
    assert_eq!(status, 400, "the newest token of the family is dead on A");
    let me = c
        .http
        .get(format!("{}/v1/me", c.a))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        401,
        "the session's access token is refused on A"
    );
}

/// Workload identity federation across nodes: B holds A's trusted issuers
/// in memory, and a change on A (a rule replaced, the issuer deleted)
/// reaches B within a second, with no restart.
#[tokio::test]
async fn a_trusted_issuer_changed_on_one_node_applies_on_the_other_within_a_second() {
    let Some(c) = Cluster::start().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use latchkey_core::signing::{Algorithm, SigningKey};
    let user = c.post(&c.a, "/v1/users", json!({"name": "pod"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let audience = "http://latchkey.cluster.test/test";
    let put = |namespace: &str| {
        json!({"issuer": "https://k8s.cluster.test", "jwks": {"keys": [key.public_jwk()]},
               "audiences": [audience],
               "rules": [{"when": {"kubernetes.io.namespace": namespace}, "userId": user}]})
    };
    let admin_put = |base: &str, body: Value| {
        c.http
            .put(format!("{base}/v1/trusted-issuers/cluster"))
            .bearer_auth(c.admin.expose())
            .json(&body)
            .send()
    };
    assert!(admin_put(&c.a, put("prod"))
        .await
        .unwrap()
        .status()
        .is_success());
    let now = SystemClock.now().unix_timestamp();
    let token = {
        let header = json!({"alg": "EdDSA", "kid": key.kid()}).to_string();
        let claims = json!({"iss": "https://k8s.cluster.test", "aud": audience, "iat": now, "exp": now + 600,
            "sub": "system:serviceaccount:prod:job", "kubernetes.io": {"namespace": "prod"}})
        .to_string();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap())
        )
    };
    let exchange = |base: String| {
        let token = token.clone();
        let http = c.http.clone();
        async move {
            http.post(format!("{base}/oauth/token"))
                .form(&[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("subject_token", token.as_str()),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // B loads the set and accepts the token.
    assert_eq!(exchange(c.b.clone()).await, 200);
    // A narrows the rule to another namespace: B refuses within a second.
    assert!(admin_put(&c.a, put("staging"))
        .await
        .unwrap()
        .status()
        .is_success());
    let start = Instant::now();
    while exchange(c.b.clone()).await != 400 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B still uses the old rule"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And back, then deleted on A: B follows each time.
    assert!(admin_put(&c.a, put("prod"))
        .await
        .unwrap()
        .status()
        .is_success());
    let start = Instant::now();
    while exchange(c.b.clone()).await != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B does not see the new rule"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = c
        .http
        .delete(format!("{}/v1/trusted-issuers/cluster", c.a))
        .bearer_auth(c.admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let start = Instant::now();
    while exchange(c.b.clone()).await != 400 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B still trusts a deleted issuer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
