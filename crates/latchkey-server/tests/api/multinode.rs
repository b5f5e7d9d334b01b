//! Two nodes on one PostgreSQL: a write on one node reaches the other's
//! caches within the cache TTL, and a revoked access token is refused on
//! the other node within the deny-list sync period.

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
) -> (String, latchkey_server::RunningServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = Settings {
        listen: Some(addr),
        data_dir: Some(dir.to_path_buf()),
        database_url: Some(url.to_owned()),
        // One issuer for the cluster, as behind a load balancer.
        issuer: Some("http://latchkey.cluster.test".into()),
        workspace_id: Some("acme-ws".into()),
        ..Default::default()
    };
    let keys = BootstrapKeys {
        test: Some(admin.clone()),
        ..Default::default()
    };
    let mut config = Config::resolve(settings, keys).unwrap();
    config.cache_ttl = Duration::from_secs(1);
    let server =
        latchkey_server::spawn_on(listener, config, Arc::new(SystemClock) as Arc<dyn Clock>)
            .await
            .unwrap();
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_by_the_other_within_the_cache_ttl() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    // Both nodes share the store and the master key file (one data dir).
    let dir = tempfile::tempdir().unwrap();
    let admin = credential::generate(Mode::Test, CredentialKind::Admin);
    let (a, _node_a) = node(&url, dir.path(), &admin).await;
    let (b, _node_b) = node(&url, dir.path(), &admin).await;
    let http = reqwest::Client::new();
    let key = admin.expose();
    let post = |base: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let user: Value = post(&a, "/v1/users", json!({"name": "edge"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = user["id"].as_str().unwrap().to_owned();
    let created: Value = post(&a, "/v1/api-keys", json!({"userId": user}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key_id, api_key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    let verify = |base: String| {
        let http = http.clone();
        let api_key = api_key.clone();
        async move {
            let r = http
                .post(format!("{base}/v1/api-keys/verify"))
                .bearer_auth(key)
                .header("x-api-key", api_key)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    // Node B caches the key as valid.
    assert_eq!(verify(b.clone()).await["valid"], true);
    // Revoked on node A...
    let r = http
        .delete(format!("{a}/v1/api-keys/{key_id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(verify(a.clone()).await["code"], "revoked");
    // ...and refused by node B within the TTL (1 s here), every time after.
    let start = Instant::now();
    loop {
        if verify(b.clone()).await["code"] == "revoked" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "node B still accepts the key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = start.elapsed();
    for _ in 0..5 {
        assert_eq!(verify(b.clone()).await["code"], "revoked");
    }
    eprintln!("node B refused the revoked key after {seen:?}");

    // An access token revoked on A becomes inactive on B within the
    // deny-list sync period (5 s).
    let secret: Value = post(&a, &format!("/v1/users/{user}/secrets"), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = secret["secret"].as_str().unwrap().to_owned();
    let token: Value = http
        .post(format!("{a}/oauth/token"))
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
        let http = http.clone();
        let token = token.clone();
        async move {
            let r = http
                .post(format!("{base}/oauth/introspect"))
                .bearer_auth(key)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["active"].clone()
        }
    };
    assert_eq!(introspect(b.clone()).await, true);
    let r = http
        .post(format!("{a}/oauth/revoke"))
        .bearer_auth(key)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    while introspect(b.clone()).await == true {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "node B still reports the token active"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("node B saw the revoked token after {:?}", start.elapsed());
}
