//! `spawn_app()`: a real server on port 0 with its own fresh store, and a
//! typed handle to talk HTTP to it as clients do.

use std::collections::HashMap;
use std::sync::Arc;

use latchkey_core::clock::{Clock, ManualClock};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_server::{BootstrapKeys, Config, RunningServer, Settings};
use latchkey_types::Mode;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Which store backs a test server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub test_admin: String,
    pub live_admin: String,
    pub workspace_id: String,
    pub clock: Arc<ManualClock>,
    /// The PostgreSQL database's URL (`None` on SQLite).
    pub database_url: Option<String>,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

/// A server on a fresh store, or `None` for PostgreSQL when
/// `LATCHKEY_TEST_POSTGRES_URL` is unset (the caller reports a skip).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with a chance to adjust the settings.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    // Server warnings and errors show up in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(latchkey_store::testing::fresh_postgres_url().await?),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings {
        listen: Some(addr),
        data_dir: Some(dir.path().to_path_buf()),
        database_url,
        issuer: Some(format!("http://{addr}")),
        workspace_id: Some("acme-ws".into()),
        // Live credentials need TLS. The suite talks plain HTTP on loopback,
        // so its client says it came through a TLS-terminating proxy there,
        // which the server trusts; tests/api/tls.rs undoes both.
        trusted_proxies: Some(vec!["127.0.0.0/8".into()]),
        ..Default::default()
    };
    adjust(&mut settings);
    let database_url = settings.database_url.clone();
    let test_admin = credential::generate(Mode::Test, CredentialKind::Admin);
    let live_admin = credential::generate(Mode::Live, CredentialKind::Admin);
    let keys = BootstrapKeys {
        test: Some(test_admin.clone()),
        live: Some(live_admin.clone()),
        master_key: None,
    };
    let config = Config::resolve(settings, keys).unwrap();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let server = latchkey_server::spawn_on(listener, config, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    Some(TestApp {
        base: format!("http://{addr}"),
        client: behind_tls_proxy(),
        test_admin: test_admin.expose().to_owned(),
        live_admin: live_admin.expose().to_owned(),
        workspace_id: "acme-ws".into(),
        clock,
        database_url,
        _server: server,
        _dir: dir,
    })
}

/// Settings for suites that fail on purpose many times from one address:
/// brute-force limits far above what they do.
pub fn no_bruteforce_limits(s: &mut Settings) {
    s.max_failures_per_address = Some(1_000_000);
    s.max_failures_per_client = Some(1_000_000);
}

/// A client whose requests say `X-Forwarded-Proto: https`.
pub fn behind_tls_proxy() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-proto",
        reqwest::header::HeaderValue::from_static("https"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        &self.body
    }

    /// Asserts a problem document with this status and code.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        let ct = self
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap());
        assert_eq!(ct, Some("application/problem+json"), "body: {}", self.text);
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        assert!(self.body["type"].is_string());
    }

    /// Asserts an OAuth error with this status and `error`.
    #[track_caller]
    pub fn expect_oauth_error(&self, status: u16, error: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(self.body["error"], error, "body: {}", self.text);
    }
}

impl TestApp {
    /// The server's data directory (SQLite file, master key file).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The issuer of `mode`: the server's URL for live, `{url}/test` for
    /// test.
    pub fn issuer(&self, mode: Mode) -> String {
        match mode {
            Mode::Live => self.base.clone(),
            Mode::Test => format!("{}/test", self.base),
        }
    }

    /// The path of `mode`'s JWKS (its metadata's `jwks_uri`).
    pub fn jwks_path(mode: Mode) -> &'static str {
        match mode {
            Mode::Live => "/.well-known/jwks.json",
            Mode::Test => "/test/.well-known/jwks.json",
        }
    }

    pub fn admin(&self, mode: Mode) -> &str {
        match mode {
            Mode::Test => &self.test_admin,
            Mode::Live => &self.live_admin,
        }
    }

    /// Sends a request with an optional bearer credential and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.unwrap()).await
    }

    /// Sends a raw body with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.test_admin)
            .header("content-type", content_type)
            .body(body);
        read(req.send().await.unwrap()).await
    }

    /// Test-mode admin helpers.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(&self.test_admin), None)
            .await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(&self.test_admin), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(&self.test_admin), Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(&self.test_admin), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(&self.test_admin), None)
            .await
    }

    /// Creates a test-mode machine and returns its id.
    pub async fn machine(&self, name: &str) -> String {
        let r = self.post("/v1/users", json!({"name": name})).await;
        r.expect(201)["id"].as_str().unwrap().to_owned()
    }

    /// Creates a client secret for a test-mode user and returns its value.
    pub async fn secret(&self, user: &str) -> String {
        let r = self
            .post(&format!("/v1/users/{user}/secrets"), json!({}))
            .await;
        r.expect(201)["secret"].as_str().unwrap().to_owned()
    }

    /// `POST /oauth/token` with a form and optional Basic credentials.
    pub async fn token(&self, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Reply {
        let mut req = self.client.post(self.url("/oauth/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        read(req.send().await.unwrap()).await
    }

    /// A client-credentials token for `user`, returned with its claims.
    pub async fn access_token(
        &self,
        user: &str,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> (String, Value) {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let r = self.token(Some((user, secret)), &form).await;
        let body = r.expect(200);
        let token = body["access_token"].as_str().unwrap().to_owned();
        let claims = decode_claims(&token);
        (token, claims)
    }

    /// A snapshot of everything the test-mode admin API lists, to prove a
    /// refused request changed nothing.
    pub async fn snapshot(&self) -> Value {
        let mut out = serde_json::Map::new();
        for path in [
            "/v1/tenants?limit=1000",
            "/v1/users?limit=1000",
            "/v1/roles?limit=1000",
        ] {
            out.insert(path.into(), self.get(path).await.expect(200).clone());
        }
        Value::Object(out)
    }
}

/// Store operations a background task runs on its own schedule (last-used
/// times, deny-list sync, signing-key reload, readiness, notifications).
pub const BACKGROUND_OPS: [&str; 6] = [
    "touch_api_keys",
    "revoked_tokens",
    "purge_revoked_tokens",
    "signing_keys",
    "ping",
    "notify",
];

impl TestApp {
    /// Store operations so far, by operation, from `/metrics`.
    pub async fn store_ops(&self) -> HashMap<String, u64> {
        let text = self.get("/metrics").await.text;
        text.lines()
            .filter_map(|l| {
                let rest =
                    l.strip_prefix("latchkey_store_operation_duration_seconds_count{op=\"")?;
                let (op, n) = rest.split_once("\"} ")?;
                Some((op.to_owned(), n.parse().ok()?))
            })
            .collect()
    }

    /// Store operations run on the request path since `before`.
    pub async fn request_ops_since(&self, before: &HashMap<String, u64>) -> HashMap<String, u64> {
        self.store_ops()
            .await
            .into_iter()
            .filter(|(op, _)| !BACKGROUND_OPS.contains(&op.as_str()))
            .map(|(op, n)| {
                let d = n - before.get(&op).copied().unwrap_or(0);
                (op, d)
            })
            .filter(|(_, d)| *d > 0)
            .collect()
    }
}

async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// The claims of a JWT, without checking anything (tests verify signatures
/// separately with a standard library).
pub fn decode_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Runs each listed test body on SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_stores!(with |_| {}; $($name),*);
    };
    (with $adjust:expr; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::helpers::spawn_app_with(
                        $crate::helpers::Backend::Sqlite,
                        $adjust,
                    )
                    .await
                    .unwrap();
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app_with(
                        $crate::helpers::Backend::Postgres,
                        $adjust,
                    )
                    .await
                    else {
                        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    super::$name(app).await;
                }
            )*
        }
    };
}
