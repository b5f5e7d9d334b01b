//! End-to-end tests of the `latchkey` binary: each runs the real executable
//! against a small fake server that answers as the HTTP contract says, and
//! checks what the CLI sent, printed and exited with.

use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use latchkey_core::credential::{generate, CredentialKind};
use latchkey_core::Mode;
use serde_json::{json, Value};

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path_and_query: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

#[derive(Clone)]
struct Fake {
    admin_key: String,
    client_secret: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running fake server.
struct TestServer {
    url: String,
    fake: Fake,
}

impl TestServer {
    async fn spawn() -> TestServer {
        let fake = Fake {
            admin_key: generate(Mode::Test, CredentialKind::Admin)
                .expose()
                .to_owned(),
            client_secret: generate(Mode::Test, CredentialKind::ClientSecret)
                .expose()
                .to_owned(),
            seen: Arc::default(),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestServer {
            url: format!("http://{addr}"),
            fake,
        }
    }

    /// Runs `latchkey args…` with only the given environment (plus the URL).
    async fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.env_clear().env("LATCHKEY_URL", &self.url).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs an admin command with the right admin key in the environment.
    async fn admin(&self, args: &[&str]) -> Output {
        let key = self.fake.admin_key.clone();
        self.run(&[("LATCHKEY_ADMIN_KEY", &key)], args).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.fake.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen().pop().expect("no request reached the server")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(),
        "detail": detail, "code": code,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn tenant(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "parentId": "ws1", "cascade": true, "metadata": {},
           "mode": "test", "createdAt": "2025-03-04T05:06:07Z"})
}

fn jwt() -> String {
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        enc(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})),
        enc(json!({"sub": "usr_1", "tenantId": "acme", "mode": "test"}))
    )
}

async fn handle(State(fake): State<Fake>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let seen = Seen {
        method: parts.method.clone(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authorization: parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    fake.seen.lock().unwrap().push(seen.clone());

    let path = parts.uri.path();
    if path.starts_with("/oauth/") {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("usr_1:{}", fake.client_secret))
        );
        if seen.authorization.as_deref() != Some(basic.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::WWW_AUTHENTICATE, "Basic realm=\"latchkey\""),
                ],
                r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
            )
                .into_response();
        }
        return ok(
            StatusCode::OK,
            json!({"access_token": jwt(), "token_type": "Bearer", "expires_in": 3600, "scope": "a:read"}),
        );
    }

    if seen.authorization.as_deref() != Some(&format!("Bearer {}", fake.admin_key)) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the admin key is not valid",
        );
    }
    let query = parts.uri.query().unwrap_or("");
    match (&parts.method, path) {
        (&Method::GET, "/v1/workspace") => ok(
            StatusCode::OK,
            json!({"id": "ws1", "name": "Acme", "mode": "test",
                   "issuer": "http://127.0.0.1:8080", "tokenTtlSeconds": 3600}),
        ),
        (&Method::GET, "/v1/tenants") if query.contains("cursor=p2") => ok(
            StatusCode::OK,
            json!({"data": [tenant("beta", "Beta")], "nextCursor": null}),
        ),
        (&Method::GET, "/v1/tenants") => ok(
            StatusCode::OK,
            json!({"data": [tenant("alpha", "Alpha")], "nextCursor": "p2"}),
        ),
        (&Method::POST, "/v1/tenants") => {
            let req: Value = serde_json::from_str(&seen.body).unwrap();
            ok(
                StatusCode::CREATED,
                tenant(
                    req["id"].as_str().unwrap_or("gen12345"),
                    req["name"].as_str().unwrap(),
                ),
            )
        }
        (&Method::GET, "/v1/tenants/missing") => {
            problem(StatusCode::NOT_FOUND, "not_found", "no tenant \"missing\"")
        }
        (&Method::DELETE, "/v1/tenants/acme") => StatusCode::NO_CONTENT.into_response(),
        (&Method::PUT, "/v1/tenants/acme/users/usr_1/roles") => {
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::PATCH, "/v1/users/usr_1") => ok(
            StatusCode::OK,
            json!({"id": "usr_1", "kind": "machine", "name": "Sensor", "email": null,
                   "username": null, "phoneNumber": null, "metadata": {}, "customClaims": {},
                   "disabled": true, "tokenTtlSeconds": null, "mode": "test",
                   "createdAt": "2025-03-04T05:06:07Z", "updatedAt": "2025-03-04T05:06:08Z"}),
        ),
        (&Method::POST, "/v1/users/usr_1/secrets") => ok(
            StatusCode::CREATED,
            json!({"id": "sec_1", "userId": "usr_1", "name": "edge", "secret": "lk_test_secret_SHOWNONCE",
                   "createdAt": "2025-03-04T05:06:07Z", "expiresAt": null}),
        ),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workspace_sends_the_admin_key_as_a_bearer_token_and_prints_a_record() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["workspace"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("id:"), "{}", stdout(&out));
    assert!(stdout(&out).contains("\nissuer:          http://127.0.0.1:8080\n"));
    let seen = server.last();
    assert_eq!(seen.path_and_query, "/v1/workspace");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_prints_the_body_as_the_server_sent_it() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["workspace", "--json"]).await;
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["tokenTtlSeconds"], 3600);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_all_follows_next_cursor_and_json_merges_the_pages() {
    let server = TestServer::spawn().await;
    let out = server
        .admin(&["tenants", "list", "--all", "--limit", "1"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("alpha") && text.contains("beta"), "{text}");
    let paths: Vec<String> = server
        .seen()
        .into_iter()
        .map(|s| s.path_and_query)
        .collect();
    assert_eq!(
        paths,
        ["/v1/tenants?limit=1", "/v1/tenants?limit=1&cursor=p2"]
    );

    let out = server.admin(&["tenants", "list", "--all", "--json"]).await;
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["nextCursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_page_mentions_the_next_cursor_on_stderr() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["tenants", "list"]).await;
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 2);
    assert!(stderr(&out).contains("--cursor p2"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_problem_prints_its_code_and_detail_and_exits_with_1() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["tenants", "get", "missing"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: not_found: no tenant \"missing\" (HTTP 404)\n"
    );
    assert!(stdout(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_admin_key_is_never_echoed() {
    let server = TestServer::spawn().await;
    let wrong = generate(Mode::Test, CredentialKind::Admin);
    let out = server
        .run(&[("LATCHKEY_ADMIN_KEY", wrong.expose())], &["workspace"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unauthenticated"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(wrong.expose()));
    assert!(!stdout(&out).contains(wrong.expose()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_admin_key_is_not_sent_over_plain_http() {
    let server = TestServer::spawn().await;
    let live = generate(Mode::Live, CredentialKind::Admin);
    let out = server
        .run(&[("LATCHKEY_ADMIN_KEY", live.expose())], &["workspace"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
    assert!(server.seen().is_empty(), "nothing may reach the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_create_sends_the_contract_body() {
    let server = TestServer::spawn().await;
    let out = server
        .admin(&[
            "tenants",
            "create",
            "--id",
            "acme",
            "--name",
            "Acme",
            "--no-cascade",
            "--metadata",
            r#"{"plan":"pro"}"#,
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = server.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["id"], "acme");
    assert_eq!(body["cascade"], false);
    assert_eq!(body["metadata"], json!({"plan": "pro"}));
    assert!(stdout(&out).contains("id:        acme\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_update_clears_with_null_and_keeps_the_rest() {
    let server = TestServer::spawn().await;
    let out = server
        .admin(&["users", "update", "usr_1", "--clear-email", "--disable"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_str(&server.last().body).unwrap();
    let body = body.as_object().unwrap();
    assert_eq!(body["email"], Value::Null);
    assert_eq!(body["disabled"], true);
    assert!(!body.contains_key("username"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_and_ended_memberships_print_a_sentence() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["tenants", "delete", "acme"]).await;
    assert_eq!(stdout(&out), "Deleted tenant acme.\n");
    let out = server.admin(&["members", "set", "acme", "usr_1"]).await;
    assert_eq!(stdout(&out), "Removed user usr_1 from tenant acme.\n");
    assert_eq!(server.last().body, r#"{"roles":[]}"#);
    let out = server
        .admin(&["members", "set", "acme", "usr_1", "--json"])
        .await;
    assert!(out.status.success());
    assert!(stdout(&out).is_empty(), "a 204 has no body to print");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_secret_is_printed_with_a_warning() {
    let server = TestServer::spawn().await;
    let out = server
        .admin(&["secrets", "create", "usr_1", "--name", "edge"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\n    lk_test_secret_SHOWNONCE\n"));
    assert!(stdout(&out).contains("shown only this once"));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_authenticates_with_basic_and_prints_only_the_token() {
    let server = TestServer::spawn().await;
    let secret = server.fake.client_secret.clone();
    let out = server
        .run(
            &[("LATCHKEY_CLIENT_SECRET", &secret)],
            &[
                "token",
                "--client-id",
                "usr_1",
                "--scope",
                "a:read",
                "--tenant",
                "acme",
            ],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", jwt()));
    let seen = server.last();
    assert_eq!(seen.path_and_query, "/oauth/token");
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.body,
        "grant_type=client_credentials&scope=a%3Aread&tenant_id=acme"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_decode_prints_header_and_claims_after_the_token() {
    let server = TestServer::spawn().await;
    let secret = server.fake.client_secret.clone();
    let out = server
        .run(
            &[("LATCHKEY_CLIENT_SECRET", &secret)],
            &["token", "--client-id", "usr_1", "--decode"],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (token, rest) = text.split_once('\n').unwrap();
    assert_eq!(token, jwt());
    assert!(rest.contains("\"typ\": \"at+jwt\""), "{rest}");
    assert!(rest.contains("\"tenantId\": \"acme\""), "{rest}");
    assert!(stderr(&out).contains("NOT verified"));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_errors_show_the_oauth_error_without_the_secret() {
    let server = TestServer::spawn().await;
    let wrong = generate(Mode::Test, CredentialKind::ClientSecret);
    let out = server
        .run(
            &[],
            &[
                "token",
                "--client-id",
                "usr_1",
                "--client-secret",
                wrong.expose(),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: invalid_client: client authentication failed (HTTP 401)\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_named() {
    let server = TestServer::spawn().await;
    let key = server.fake.admin_key.clone();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.env_clear().env("LATCHKEY_ADMIN_KEY", key).args([
        "workspace",
        "--url",
        "http://127.0.0.1:9",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: request to http://127.0.0.1:9/v1/workspace could not connect"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}
