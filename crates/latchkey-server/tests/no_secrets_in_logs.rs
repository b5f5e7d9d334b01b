//! No secret is logged, and none is echoed after the response that created
//! it. Its own test binary, because it installs the process-wide tracing
//! subscriber (TRACE, everything, `log` records too) that the in-process
//! server and all its spawned tasks write into.

#[allow(dead_code, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;

use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use latchkey_core::credential::{self, CredentialKind};
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_types::Mode;
use reqwest::Method;
use serde_json::{json, Value};

use helpers::{spawn_app, Backend, Reply, TestApp};

/// Everything every subscriber-visible event of this process wrote.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("the first subscriber of this test binary");
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every response of the scenario, in order, and where each secret was
/// created.
#[derive(Default)]
struct Transcript {
    responses: Vec<(String, String)>,
    secrets: Vec<(String, String, Option<usize>)>,
}

impl Transcript {
    fn record(&mut self, what: &str, r: &Reply) -> usize {
        self.responses.push((what.to_owned(), r.text.clone()));
        self.responses.len() - 1
    }

    /// A secret created by response `at` (`None`: created outside any
    /// response, e.g. by the client itself or by the test harness).
    fn secret(&mut self, name: &str, value: &str, at: Option<usize>) {
        assert!(value.len() >= 16, "{name} is not much of a secret");
        self.secrets.push((name.to_owned(), value.to_owned(), at));
    }
}

async fn send(
    app: &TestApp,
    t: &mut Transcript,
    what: &str,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (Reply, usize) {
    let r = app.send(method, path, bearer, body).await;
    let i = t.record(what, &r);
    (r, i)
}

async fn form(
    app: &TestApp,
    t: &mut Transcript,
    what: &str,
    path: &str,
    basic: Option<(&str, &str)>,
    bearer: Option<&str>,
    fields: &[(&str, &str)],
) -> (Reply, usize) {
    let mut req = app.client.post(app.url(path)).form(fields);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let r = Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    };
    let i = t.record(what, &r);
    (r, i)
}

fn assertion(key: &SigningKey, app: &TestApp, client: &str) -> String {
    use latchkey_core::clock::Clock as _;
    let now = app.clock.now().unix_timestamp();
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid()}).to_string();
    let claims = json!({
        "iss": client, "sub": client, "aud": app.url("/oauth/token"),
        "iat": now, "exp": now + 120, "jti": latchkey_core::token::new_jti(),
    })
    .to_string();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap());
    format!("{input}.{sig}")
}

async fn scenario(app: TestApp) {
    let logs = captured().clone();
    let mut t = Transcript::default();
    let admin = app.test_admin.clone();
    let live_admin = app.live_admin.clone();
    t.secret("test admin key", &admin, None);
    t.secret("live admin key", &live_admin, None);
    let master = std::fs::read_to_string(app.data_dir().join("master.key")).unwrap();
    t.secret("master key", master.trim(), None);

    let a = Some(admin.as_str());
    app.put(
        "/v1/roles/reader",
        json!({"permissions": ["telemetry:read"]}),
    )
    .await
    .expect(201);
    let (r, _) = send(
        &app,
        &mut t,
        "create user",
        Method::POST,
        "/v1/users",
        a,
        Some(json!({"name": "logged"})),
    )
    .await;
    let user = r.expect(201)["id"].as_str().unwrap().to_owned();
    app.put(
        &format!("/v1/tenants/{}/users/{user}/roles", app.workspace_id),
        json!({"roles": ["reader"]}),
    )
    .await
    .expect(200);
    let (r, i) = send(
        &app,
        &mut t,
        "create secret",
        Method::POST,
        &format!("/v1/users/{user}/secrets"),
        a,
        Some(json!({"name": "ci"})),
    )
    .await;
    let secret = r.expect(201)["secret"].as_str().unwrap().to_owned();
    t.secret("client secret", &secret, Some(i));
    let (r, i) = send(
        &app,
        &mut t,
        "create API key",
        Method::POST,
        "/v1/api-keys",
        a,
        Some(json!({"userId": user, "name": "edge"})),
    )
    .await;
    let key_id = r.expect(201)["id"].as_str().unwrap().to_owned();
    let api_key = r.body["key"].as_str().unwrap().to_owned();
    t.secret("API key", &api_key, Some(i));
    let (r, i) = send(
        &app,
        &mut t,
        "rotate API key",
        Method::POST,
        &format!("/v1/api-keys/{key_id}/rotate"),
        a,
        Some(json!({"gracePeriodSeconds": 60})),
    )
    .await;
    let rotated = r.expect(200)["key"].as_str().unwrap().to_owned();
    t.secret("rotated API key", &rotated, Some(i));

    // Tokens: client secret (Basic and post), API key as client secret.
    let cc = [
        ("grant_type", "client_credentials"),
        ("scope", "telemetry:read"),
    ];
    let (r, i) = form(
        &app,
        &mut t,
        "token (basic)",
        "/oauth/token",
        Some((&user, &secret)),
        None,
        &cc,
    )
    .await;
    let token = r.expect(200)["access_token"].as_str().unwrap().to_owned();
    t.secret("access token (basic)", &token, Some(i));
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", user.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let (r, i) = form(
        &app,
        &mut t,
        "token (post)",
        "/oauth/token",
        None,
        None,
        &post,
    )
    .await;
    let token_post = r.expect(200)["access_token"].as_str().unwrap().to_owned();
    t.secret("access token (post)", &token_post, Some(i));
    let (r, i) = form(
        &app,
        &mut t,
        "token (API key)",
        "/oauth/token",
        Some((&user, &rotated)),
        None,
        &cc,
    )
    .await;
    let token_key = r.expect(200)["access_token"].as_str().unwrap().to_owned();
    t.secret("access token (API key)", &token_key, Some(i));
    // Refused attempts, whose presented values are secrets too (a typo of
    // a real one, say).
    let wrong = credential::generate(Mode::Test, CredentialKind::ClientSecret);
    t.secret("wrong client secret", wrong.expose(), None);
    form(
        &app,
        &mut t,
        "token (wrong secret)",
        "/oauth/token",
        Some((&user, wrong.expose())),
        None,
        &cc,
    )
    .await
    .0
    .expect_oauth_error(401, "invalid_client");
    // The last character changed (to one it is not: a plain 'x' would
    // leave one secret in 62 unchanged).
    let mut typo = secret.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'x' { 'y' } else { 'x' });
    t.secret("mistyped client secret", &typo, None);
    form(
        &app,
        &mut t,
        "token (typo)",
        "/oauth/token",
        Some((&user, &typo)),
        None,
        &cc,
    )
    .await
    .0
    .expect_oauth_error(401, "invalid_client");

    // A client that puts its secret in the query string by mistake: the
    // request log names the path, never the query.
    let (r, i) = send(
        &app,
        &mut t,
        "create a second secret",
        Method::POST,
        &format!("/v1/users/{user}/secrets"),
        a,
        Some(json!({})),
    )
    .await;
    let misplaced = r.expect(201)["secret"].as_str().unwrap().to_owned();
    t.secret("client secret in a query string", &misplaced, Some(i));
    for path in [
        format!("/oauth/token?client_id={user}&client_secret={misplaced}"),
        format!("/oauth/introspect?token={token_post}"),
        format!("/v1/api-keys/verify?key={rotated}"),
    ] {
        let r = app
            .client
            .post(app.url(&path))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        t.responses
            .push((format!("POST {path}"), r.text().await.unwrap()));
    }

    // Verify and introspect.
    for (what, k) in [("old", &api_key), ("rotated", &rotated)] {
        let r = app
            .client
            .post(app.url("/v1/api-keys/verify"))
            .bearer_auth(&admin)
            .header("x-api-key", k.as_str())
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        t.responses
            .push((format!("verify {what} key"), text.clone()));
        assert!(text.contains("\"valid\":true"), "{text}");
    }
    let (r, _) = send(
        &app,
        &mut t,
        "verify by body",
        Method::POST,
        "/v1/api-keys/verify",
        a,
        Some(json!({"key": rotated})),
    )
    .await;
    assert_eq!(r.expect(200)["valid"], true);
    let (r, _) = send(
        &app,
        &mut t,
        "verify with an access token as caller",
        Method::POST,
        "/v1/api-keys/verify",
        Some(&token),
        Some(json!({"key": rotated})),
    )
    .await;
    assert_eq!(r.expect(200)["valid"], true);
    for (what, tok) in [("token", &token), ("API key", &rotated)] {
        let (r, _) = form(
            &app,
            &mut t,
            &format!("introspect {what} (admin)"),
            "/oauth/introspect",
            None,
            a,
            &[("token", tok)],
        )
        .await;
        assert_eq!(r.expect(200)["active"], true);
        let (r, _) = form(
            &app,
            &mut t,
            &format!("introspect {what} (client)"),
            "/oauth/introspect",
            Some((&user, &secret)),
            None,
            &[("token", tok)],
        )
        .await;
        assert_eq!(r.expect(200)["active"], true);
    }

    // A public key and private_key_jwt, the JWT-bearer grant, a refused
    // assertion.
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    t.secret(
        "client private key (PKCS#8)",
        &STANDARD.encode(key.pkcs8_der()),
        None,
    );
    t.secret(
        "client private key (base64url PKCS#8)",
        &URL_SAFE_NO_PAD.encode(key.pkcs8_der()),
        None,
    );
    let (r, _) = send(
        &app,
        &mut t,
        "register key",
        Method::POST,
        &format!("/v1/users/{user}/keys"),
        a,
        Some(json!({"jwk": key.public_jwk()})),
    )
    .await;
    r.expect(201);
    let signed = assertion(&key, &app, &user);
    t.secret("client assertion", &signed, None);
    let (r, i) = form(
        &app,
        &mut t,
        "token (private_key_jwt)",
        "/oauth/token",
        None,
        None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &signed),
        ],
    )
    .await;
    let token_jwt = r.expect(200)["access_token"].as_str().unwrap().to_owned();
    t.secret("access token (private_key_jwt)", &token_jwt, Some(i));
    let bearer = assertion(&key, &app, &user);
    t.secret("JWT-bearer assertion", &bearer, None);
    let (r, i) = form(
        &app,
        &mut t,
        "token (jwt-bearer)",
        "/oauth/token",
        None,
        None,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &bearer),
        ],
    )
    .await;
    let token_bearer = r.expect(200)["access_token"].as_str().unwrap().to_owned();
    t.secret("access token (jwt-bearer)", &token_bearer, Some(i));
    form(
        &app,
        &mut t,
        "replayed assertion",
        "/oauth/token",
        None,
        None,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &bearer),
        ],
    )
    .await
    .0
    .expect_oauth_error(400, "invalid_grant");

    // A custom token.
    let (r, i) = send(
        &app,
        &mut t,
        "custom token",
        Method::POST,
        "/v1/tokens",
        a,
        Some(json!({"userId": user})),
    )
    .await;
    let custom = r.expect(200)["accessToken"].as_str().unwrap().to_owned();
    t.secret("custom access token", &custom, Some(i));

    // Revoke a token and the API key.
    let (r, _) = form(
        &app,
        &mut t,
        "revoke token",
        "/oauth/revoke",
        None,
        a,
        &[("token", &token)],
    )
    .await;
    r.expect(200);
    let (r, _) = form(
        &app,
        &mut t,
        "revoke API key",
        "/oauth/revoke",
        Some((&user, &secret)),
        None,
        &[("token", &rotated)],
    )
    .await;
    r.expect(200);
    let (r, _) = form(
        &app,
        &mut t,
        "introspect revoked",
        "/oauth/introspect",
        None,
        a,
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.expect(200), &json!({"active": false}));

    // A live user and secret, over the trusted proxy.
    let l = Some(live_admin.as_str());
    let (r, _) = send(
        &app,
        &mut t,
        "create live user",
        Method::POST,
        "/v1/users",
        l,
        Some(json!({"name": "live"})),
    )
    .await;
    let live_user = r.expect(201)["id"].as_str().unwrap().to_owned();
    let (r, i) = send(
        &app,
        &mut t,
        "create live secret",
        Method::POST,
        &format!("/v1/users/{live_user}/secrets"),
        l,
        Some(json!({})),
    )
    .await;
    let live_secret = r.expect(201)["secret"].as_str().unwrap().to_owned();
    t.secret("live client secret", &live_secret, Some(i));
    // ... and refused over plain HTTP.
    let r = reqwest::Client::new()
        .post(app.url("/oauth/token"))
        .basic_auth(&live_user, Some(&live_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    t.responses
        .push(("live over plain HTTP".into(), r.text().await.unwrap()));

    // Everything that lists or reads back.
    for path in [
        format!("/v1/users/{user}"),
        "/v1/users?limit=1000".to_owned(),
        format!("/v1/users/{user}/secrets"),
        format!("/v1/users/{user}/keys"),
        format!("/v1/api-keys?userId={user}"),
        format!("/v1/api-keys/{key_id}"),
        "/v1/signing-keys".to_owned(),
        "/v1/workspace".to_owned(),
        format!(
            "/v1/users/{user}/authorization?tenantId={}",
            app.workspace_id
        ),
        "/.well-known/jwks.json".to_owned(),
        "/.well-known/oauth-authorization-server".to_owned(),
        "/metrics".to_owned(),
    ] {
        let (r, _) = send(
            &app,
            &mut t,
            &format!("GET {path}"),
            Method::GET,
            &path,
            a,
            None,
        )
        .await;
        r.expect(200);
    }
    let (r, _) = send(
        &app,
        &mut t,
        "GET live secrets",
        Method::GET,
        &format!("/v1/users/{live_user}/secrets"),
        l,
        None,
    )
    .await;
    r.expect(200);

    // Logins: a password, a login secret, a magic link, session tokens and
    // a rotated refresh token, a TOTP secret.
    let password = "plum-kettle-orbit-9-logs";
    t.secret("password", password, None);
    let (r, _) = send(
        &app,
        &mut t,
        "create login user",
        Method::POST,
        "/v1/users",
        Some(&admin),
        Some(json!({"name": "login", "email": "login@example.com"})),
    )
    .await;
    let login_user = r.expect(201)["id"].as_str().unwrap().to_owned();
    let (r, _) = send(
        &app,
        &mut t,
        "set password",
        Method::PUT,
        &format!("/v1/users/{login_user}/password"),
        Some(&admin),
        Some(json!({"password": password})),
    )
    .await;
    assert_eq!(r.status, 204);
    let (r, at) = send(
        &app,
        &mut t,
        "start login",
        Method::POST,
        "/auth/logins",
        None,
        Some(json!({"identifier": "login@example.com"})),
    )
    .await;
    let login_id = r.expect(201)["id"].as_str().unwrap().to_owned();
    let login_secret = r.body["secret"].as_str().unwrap().to_owned();
    t.secret("login secret", &login_secret, Some(at));
    let (r, _) = send(
        &app,
        &mut t,
        "wrong password",
        Method::POST,
        &format!("/auth/logins/{login_id}/password"),
        Some(&login_secret),
        Some(json!({"password": format!("{password}-wrong")})),
    )
    .await;
    assert_eq!(r.status, 401);
    let (r, at) = send(
        &app,
        &mut t,
        "password step",
        Method::POST,
        &format!("/auth/logins/{login_id}/password"),
        Some(&login_secret),
        Some(json!({"password": password})),
    )
    .await;
    let session = r.expect(200)["session"].clone();
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let refresh = session["refreshToken"].as_str().unwrap().to_owned();
    t.secret("session access token", &access, Some(at));
    t.secret("refresh token", &refresh, Some(at));
    let (r, at) = form(
        &app,
        &mut t,
        "refresh",
        "/oauth/token",
        None,
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let next = r.expect(200)["refresh_token"].as_str().unwrap().to_owned();
    t.secret("rotated refresh token", &next, Some(at));
    t.secret(
        "refreshed access token",
        r.body["access_token"].as_str().unwrap(),
        Some(at),
    );
    let (r, at) = send(
        &app,
        &mut t,
        "start totp",
        Method::POST,
        "/v1/me/totp",
        Some(&access),
        None,
    )
    .await;
    t.secret(
        "totp secret",
        r.expect(201)["secret"].as_str().unwrap(),
        Some(at),
    );
    let (r, _) = send(
        &app,
        &mut t,
        "start magic login",
        Method::POST,
        "/auth/logins",
        None,
        Some(json!({"identifier": "login@example.com"})),
    )
    .await;
    let magic_id = r.expect(201)["id"].as_str().unwrap().to_owned();
    let magic_secret = r.body["secret"].as_str().unwrap().to_owned();
    let (r, _) = send(
        &app,
        &mut t,
        "send magic link",
        Method::POST,
        &format!("/auth/logins/{magic_id}/magic-link"),
        Some(&magic_secret),
        Some(json!({})),
    )
    .await;
    r.expect(200);
    let (r, at) = send(
        &app,
        &mut t,
        "read outbox",
        Method::GET,
        "/v1/test-outbox?to=login%40example.com",
        Some(&admin),
        None,
    )
    .await;
    let text = r.expect(200)["data"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = text
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    t.secret("magic link token", &token, Some(at));
    let confirm = app
        .client
        .post(app.url("/auth/magic"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    let (r, _) = send(
        &app,
        &mut t,
        "logout",
        Method::POST,
        "/auth/logout",
        None,
        Some(json!({"refreshToken": next})),
    )
    .await;
    assert_eq!(r.status, 204);

    // Workload identity federation: a trusted issuer's token exchanged
    // (and one refused), neither the workload's token nor the issued one in
    // any log.
    let (r, _) = send(
        &app,
        &mut t,
        "workload user",
        Method::POST,
        "/v1/users",
        Some(&admin),
        Some(json!({"name": "workload"})),
    )
    .await;
    let workload_user = r.body["id"].as_str().unwrap().to_owned();
    let cluster = SigningKey::generate(latchkey_core::signing::Algorithm::RS256).unwrap();
    let audience = format!("{}/test", app.base);
    let (r, _) = send(
        &app,
        &mut t,
        "trusted issuer",
        Method::PUT,
        "/v1/trusted-issuers/cluster",
        Some(&admin),
        Some(json!({
            "issuer": "https://k8s.example", "jwks": {"keys": [cluster.public_jwk()]},
            "audiences": [audience],
            "rules": [{"when": {"kubernetes.io.namespace": "prod"}, "userId": workload_user}],
        })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for (namespace, accepted) in [("prod", true), ("dev", false)] {
        use latchkey_core::clock::Clock as _;
        let now = app.clock.now().unix_timestamp();
        let header = json!({"alg": "RS256", "kid": cluster.kid()}).to_string();
        let claims = json!({
            "iss": "https://k8s.example", "aud": [audience], "iat": now, "exp": now + 600,
            "sub": format!("system:serviceaccount:{namespace}:job"),
            "kubernetes.io": {"namespace": namespace},
        })
        .to_string();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = URL_SAFE_NO_PAD.encode(cluster.sign(input.as_bytes()).unwrap());
        let subject_token = format!("{input}.{sig}");
        t.secret("workload subject token", &subject_token, None);
        let (r, at) = form(
            &app,
            &mut t,
            "token exchange",
            "/oauth/token",
            None,
            None,
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &subject_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ],
        )
        .await;
        if accepted {
            assert_eq!(r.status, 200, "{}", r.text);
            t.secret(
                "exchanged access token",
                r.body["access_token"].as_str().unwrap(),
                Some(at),
            );
        } else {
            assert_eq!(r.status, 400, "{}", r.text);
        }
    }

    // Let background tasks (last-used batches, notifications) log too.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(app);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.contains("TRACE") && logs.contains("latchkey"),
        "the capture saw nothing of the server: {} bytes",
        logs.len()
    );
    for (name, value, created_at) in &t.secrets {
        // The whole value, and the part after any `lk_…_` prefix or the
        // signature of a JWT, whichever a log line might carry.
        let mut needles = vec![value.clone()];
        // (Only for credentials: the tail of a base64url private key after
        // its last `_` can be the public key it embeds, which is public.)
        if let Some(body) = value
            .strip_prefix("lk_")
            .and_then(|rest| rest.rsplit('_').next())
            .filter(|b| b.len() >= 40)
        {
            needles.push(body.to_owned());
        }
        if value.matches('.').count() == 2 {
            needles.push(value.rsplit('.').next().unwrap().to_owned());
        }
        for needle in &needles {
            if let Some(at) = logs.find(needle.as_str()) {
                let start = logs[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = logs[at..].find('\n').map_or(logs.len(), |n| at + n);
                panic!("{name} appears in the logs: {}", &logs[start..end]);
            }
            for (i, (what, text)) in t.responses.iter().enumerate() {
                if Some(i) != *created_at && text.contains(needle.as_str()) {
                    panic!("{name} is echoed by a later response ({what}): {text}");
                }
            }
        }
    }
    if let Ok(path) = std::env::var("LATCHKEY_DUMP_LOGS") {
        std::fs::write(path, &logs).unwrap();
    }
    eprintln!(
        "checked {} secrets against {} bytes of TRACE logs and {} responses",
        t.secrets.len(),
        logs.len(),
        t.responses.len()
    );
}

#[tokio::test]
async fn no_secret_is_logged_or_echoed_on_sqlite() {
    captured();
    scenario(spawn_app(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn no_secret_is_logged_or_echoed_on_postgres() {
    captured();
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    scenario(app).await;
}
