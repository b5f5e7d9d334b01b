//! Live mode over TLS: the native TLS listener with a real rustls client,
//! `tls_required` for live credentials over plain HTTP wherever they hide,
//! trusted proxies, certificate reload, and the cost of the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_server::tls::{ensure_self_signed, SelfSigned};
use latchkey_server::{BootstrapKeys, Config, RunningServer, Settings};
use latchkey_types::Mode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{behind_tls_proxy, spawn_app_with, Backend, Reply, TestApp};

/// A client that trusts only the CA in `ca` (no public roots).
fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// A server on the native TLS listener with its development certificate,
/// and a client that trusts its CA; `base` is `https://127.0.0.1:<port>`.
async fn tls_app() -> TestApp {
    let mut app = spawn_app_with(Backend::Sqlite, |s| {
        s.tls_self_signed = Some(true);
        s.issuer = Some(format!("https://{}", s.listen.unwrap()));
        s.trusted_proxies = None;
    })
    .await
    .unwrap();
    app.base = app.base.replace("http://", "https://");
    app.client = client_trusting(&app.data_dir().join("tls/ca.pem"));
    app
}

/// A plain-HTTP server that trusts `X-Forwarded-Proto` from `trusted`, with
/// a client that sends no such header.
async fn plain_app(trusted: &[&str]) -> TestApp {
    let trusted: Vec<String> = trusted.iter().map(|s| (*s).to_owned()).collect();
    let mut app = spawn_app_with(Backend::Sqlite, |s| {
        s.trusted_proxies = Some(trusted);
    })
    .await
    .unwrap();
    app.client = reqwest::Client::new();
    app
}

async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// Asserts the OAuth shape of `tls_required`.
#[track_caller]
fn expect_oauth_tls_required(r: &Reply) {
    r.expect_oauth_error(403, "tls_required");
    assert!(r.body["error_description"].is_string(), "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
}

/// A live machine with a client secret and an API key (budget of 10),
/// created through `app.client` (which must count as TLS).
struct LiveData {
    user: String,
    secret: String,
    key: String,
    key_id: String,
}

async fn live_data(app: &TestApp) -> LiveData {
    let live = app.live_admin.clone();
    let r = app
        .send(
            Method::POST,
            "/v1/users",
            Some(&live),
            Some(json!({"name": "live-m"})),
        )
        .await;
    let user = r.expect(201)["id"].as_str().unwrap().to_owned();
    let r = app
        .send(
            Method::POST,
            &format!("/v1/users/{user}/secrets"),
            Some(&live),
            Some(json!({})),
        )
        .await;
    let secret = r.expect(201)["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("lk_live_secret_"));
    let r = app
        .send(
            Method::POST,
            "/v1/api-keys",
            Some(&live),
            Some(json!({"userId": user, "remaining": 10})),
        )
        .await;
    let body = r.expect(201);
    LiveData {
        user,
        secret,
        key: body["key"].as_str().unwrap().to_owned(),
        key_id: body["id"].as_str().unwrap().to_owned(),
    }
}

/// Everything live the live admin can list about `data`.
async fn live_snapshot(app: &TestApp, data: &LiveData) -> Value {
    let live = app.live_admin.clone();
    let mut out = serde_json::Map::new();
    for path in [
        "/v1/users?limit=1000".to_owned(),
        "/v1/tenants?limit=1000".to_owned(),
        format!("/v1/users/{}/secrets", data.user),
        format!("/v1/api-keys/{}", data.key_id),
    ] {
        let r = app.send(Method::GET, &path, Some(&live), None).await;
        out.insert(path, r.expect(200).clone());
    }
    Value::Object(out)
}

#[tokio::test]
async fn a_tls_client_trusting_the_development_ca_gets_health_a_test_token_and_a_live_token() {
    let app = tls_app().await;
    let tls_dir = app.data_dir().join("tls");
    for file in ["ca.pem", "server.pem", "server.key"] {
        assert!(tls_dir.join(file).is_file(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(tls_dir.join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let r = read(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    r.expect(200);

    let m = app.machine("test-m").await;
    let secret = app.secret(&m).await;
    let (_, claims) = app.access_token(&m, &secret, &[]).await;
    assert_eq!(claims["mode"], "test");
    assert_eq!(claims["iss"], format!("{}/test", app.base));

    let live = live_data(&app).await;
    let (token, claims) = app.access_token(&live.user, &live.secret, &[]).await;
    assert_eq!(claims["mode"], "live");
    assert_eq!(claims["sub"], live.user.as_str());
    assert!(app.base.starts_with("https://127.0.0.1:"));
    assert_eq!(claims["iss"], app.base);
    // The live token and key work as credentials over TLS too.
    let r = app
        .send(
            Method::POST,
            "/v1/api-keys/verify",
            Some(&token),
            Some(json!({"key": live.key})),
        )
        .await;
    assert_eq!(r.expect(200)["valid"], true, "{}", r.text);

    let metadata = app
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert_eq!(metadata.expect(200)["issuer"], app.base);
}

#[tokio::test]
async fn the_tls_listener_negotiates_h2_or_http1_by_alpn_and_plain_http_gets_no_answer() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let app = tls_app().await;
    let pem = std::fs::read(app.data_dir().join("tls/ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pem_to_der(&pem)))
        .unwrap();
    let addr: SocketAddr = app.base.trim_start_matches("https://").parse().unwrap();
    for (offer, expected) in [
        (vec![b"h2".to_vec(), b"http/1.1".to_vec()], "h2"),
        (vec![b"http/1.1".to_vec()], "http/1.1"),
    ] {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = offer;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        assert_eq!(alpn.as_deref(), Some(expected.as_bytes()));
        if expected == "http/1.1" {
            tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            tls.read_to_string(&mut answer).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }

    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

/// The DER bytes of the first PEM block.
fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn live_credentials_over_plain_http_are_refused_with_tls_required_and_change_nothing() {
    // The server trusts loopback as a proxy so the live data can be made
    // "over TLS" first; every request below sends no forwarded header.
    let mut app = plain_app(&["127.0.0.0/8"]).await;
    let plain = std::mem::replace(&mut app.client, behind_tls_proxy());
    let live = live_data(&app).await;
    let (live_jwt, claims) = app.access_token(&live.user, &live.secret, &[]).await;
    assert_eq!(claims["mode"], "live");
    let before = live_snapshot(&app, &live).await;
    assert_eq!(
        before[format!("/v1/api-keys/{}", live.key_id)]["remaining"],
        10
    );
    let live_admin = app.live_admin.clone();
    let test_admin = app.test_admin.clone();

    app.client = plain;
    // A live admin key, to read and to write.
    app.send(Method::GET, "/v1/users", Some(&live_admin), None)
        .await
        .expect_problem(403, "tls_required");
    app.send(
        Method::POST,
        "/v1/users",
        Some(&live_admin),
        Some(json!({"name": "sneaky"})),
    )
    .await
    .expect_problem(403, "tls_required");
    // Even on a path that does not exist: the credential is never looked at.
    app.send(Method::GET, "/v1/nowhere", Some(&live_admin), None)
        .await
        .expect_problem(403, "tls_required");

    // A live client secret, by client_secret_basic and client_secret_post.
    let r = app
        .token(
            Some((&live.user, &live.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    expect_oauth_tls_required(&r);
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &live.user),
                ("client_secret", &live.secret),
            ],
        )
        .await;
    expect_oauth_tls_required(&r);
    // A live API key used as the client secret.
    let r = app
        .token(
            Some((&live.user, &live.key)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    expect_oauth_tls_required(&r);

    // A live API key in X-Api-Key, in the JSON body, and as the caller.
    let r = read(
        app.client
            .post(app.url("/v1/api-keys/verify"))
            .bearer_auth(&test_admin)
            .header("x-api-key", &live.key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.expect_problem(403, "tls_required");
    app.send(
        Method::POST,
        "/v1/api-keys/verify",
        Some(&test_admin),
        Some(json!({"key": live.key})),
    )
    .await
    .expect_problem(403, "tls_required");
    app.send(
        Method::POST,
        "/v1/api-keys/verify",
        Some(&live.key),
        Some(json!({"key": live.key})),
    )
    .await
    .expect_problem(403, "tls_required");

    // A live JWT as bearer, and as the token to introspect or revoke.
    app.send(
        Method::POST,
        "/v1/api-keys/verify",
        Some(&live_jwt),
        Some(json!({"key": "lk_test_key_whatever"})),
    )
    .await
    .expect_problem(403, "tls_required");
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let r = app
            .oauth_form(path, None, Some(&test_admin), &[("token", &live_jwt)])
            .await;
        expect_oauth_tls_required(&r);
        let r = app
            .oauth_form(path, None, Some(&test_admin), &[("token", &live.key)])
            .await;
        expect_oauth_tls_required(&r);
    }

    // Nothing live changed: no user, no secret, the key's budget and
    // last-used time untouched, and the token still active.
    app.client = behind_tls_proxy();
    tokio::time::sleep(Duration::from_millis(1500)).await; // past a usage flush
    assert_eq!(live_snapshot(&app, &live).await, before);
    let r = app
        .oauth_form(
            "/oauth/introspect",
            None,
            Some(&live_admin),
            &[("token", &live_jwt)],
        )
        .await;
    assert_eq!(r.expect(200)["active"], true, "{}", r.text);
}

#[tokio::test]
async fn test_mode_credentials_keep_working_over_plain_http() {
    let app = plain_app(&[]).await;
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (token, claims) = app.access_token(&m, &secret, &[]).await;
    assert_eq!(claims["mode"], "test");
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &m),
                ("client_secret", &secret),
            ],
        )
        .await;
    r.expect(200);
    let (_, key) = app.api_key(json!({"userId": m})).await;
    let r = read(
        app.client
            .post(app.url("/v1/api-keys/verify"))
            .bearer_auth(&token)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.expect(200)["valid"], true, "{}", r.text);
    let r = app.introspect(&token).await;
    assert_eq!(r.expect(200)["active"], true);
    // A live key's prefix in a field that is not a credential is just data.
    let r = app
        .token(
            Some((&m, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "lk_live_is_not_a_scope"),
            ],
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_scope", "{}", r.text);
}

#[tokio::test]
async fn a_forwarded_proto_header_counts_only_from_a_trusted_proxy() {
    let send = |app: &TestApp, proto: Option<&'static str>| {
        let mut req = app
            .client
            .get(app.url("/v1/workspace"))
            .bearer_auth(&app.live_admin);
        if let Some(proto) = proto {
            req = req.header("x-forwarded-proto", proto);
        }
        async move { read(req.send().await.unwrap()).await }
    };

    let trusting = plain_app(&["127.0.0.0/8"]).await;
    let r = send(&trusting, Some("https")).await;
    assert_eq!(r.expect(200)["mode"], "live");
    send(&trusting, None)
        .await
        .expect_problem(403, "tls_required");
    send(&trusting, Some("http"))
        .await
        .expect_problem(403, "tls_required");

    // The same header from a peer outside the trusted CIDRs is ignored.
    let elsewhere = plain_app(&["10.0.0.0/8", "fd00::/8", "192.0.2.7"]).await;
    send(&elsewhere, Some("https"))
        .await
        .expect_problem(403, "tls_required");
    let nobody = plain_app(&[]).await;
    send(&nobody, Some("https"))
        .await
        .expect_problem(403, "tls_required");
}

#[tokio::test]
async fn the_issuer_in_metadata_is_the_configured_one_whatever_the_host_header() {
    let app = plain_app(&["127.0.0.0/8"]).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        for proto in ["http", "https"] {
            let r = read(
                app.client
                    .get(app.url(path))
                    .header("host", "evil.example")
                    .header("x-forwarded-host", "evil.example")
                    .header("x-forwarded-proto", proto)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let body = r.expect(200);
            assert_eq!(body["issuer"], app.base, "{path}");
            assert!(!r.text.contains("evil.example"), "{}", r.text);
        }
    }
}

/// Starts a TLS server on port 0 reading `cert` and `key`.
async fn spawn_tls_on_files(cert: &Path, key: &Path, data: &Path) -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = Settings {
        listen: Some(addr),
        data_dir: Some(data.to_path_buf()),
        tls_cert: Some(cert.to_path_buf()),
        tls_key: Some(key.to_path_buf()),
        workspace_id: Some("acme-ws".into()),
        ..Default::default()
    };
    let keys = BootstrapKeys {
        test: Some(credential::generate(Mode::Test, CredentialKind::Admin)),
        live: Some(credential::generate(Mode::Live, CredentialKind::Admin)),
        master_key: None,
    };
    let config = Config::resolve(settings, keys).unwrap();
    assert_eq!(config.issuer, format!("https://{addr}"));
    latchkey_server::spawn_on(listener, config, Arc::new(SystemClock) as Arc<dyn Clock>)
        .await
        .unwrap()
}

fn install(set: &SelfSigned, cert: &Path, key: &Path) {
    std::fs::copy(&set.cert, cert).unwrap();
    std::fs::copy(&set.key, key).unwrap();
}

#[tokio::test]
async fn reloading_tls_serves_the_new_certificate_to_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    let first = ensure_self_signed(&dir.path().join("first"), &names).unwrap();
    let second = ensure_self_signed(&dir.path().join("second"), &names).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    install(&first, &cert, &key);
    let data = dir.path().join("data");
    let server = spawn_tls_on_files(&cert, &key, &data).await;
    let url = format!("https://{}/healthz", server.addr);

    // A keep-alive client that trusts only the first CA.
    let kept = client_trusting(&first.ca);
    assert!(kept.get(&url).send().await.unwrap().status().is_success());

    install(&second, &cert, &key);
    server.reload_tls().unwrap();

    // New connections get the new certificate: a client that trusts only
    // the first CA can no longer connect, one trusting the second can.
    let fresh_first = client_trusting(&first.ca);
    assert!(fresh_first.get(&url).send().await.is_err());
    let fresh_second = client_trusting(&second.ca);
    assert!(fresh_second
        .get(&url)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    // The open connection (made with the first certificate) still works; a
    // new one would fail its handshake with this client.
    for _ in 0..3 {
        assert!(kept.get(&url).send().await.unwrap().status().is_success());
    }

    // A broken file is refused and the current certificate stays in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = server.reload_tls().unwrap_err().to_string();
    assert!(err.contains("cert.pem"), "{err}");
    let again = client_trusting(&second.ca);
    assert!(again.get(&url).send().await.unwrap().status().is_success());

    // Graceful shutdown closes the listening socket as well.
    let addr = server.addr;
    server.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_tls_server_refuses_to_start_on_missing_or_mismatched_files() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = vec!["localhost".into()];
    let a = ensure_self_signed(&dir.path().join("a"), &names).unwrap();
    let b = ensure_self_signed(&dir.path().join("b"), &names).unwrap();
    for (cert, key, expected) in [
        (dir.path().join("nope.pem"), a.key.clone(), "nope.pem"),
        (a.cert.clone(), b.key.clone(), "do not make a usable"),
        (a.ca.clone(), a.ca.clone(), "no PEM private key"),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = Settings {
            listen: Some(listener.local_addr().unwrap()),
            data_dir: Some(dir.path().join("data")),
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..Default::default()
        };
        let config = Config::resolve(settings, BootstrapKeys::default()).unwrap();
        let err = latchkey_server::spawn_on(listener, config, Arc::new(SystemClock))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

/// `n` requests to `/healthz`, each on a fresh connection.
async fn time_fresh_connections(client: &reqwest::Client, url: &str, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let r = client.get(url).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
    }
    start.elapsed()
}

#[tokio::test]
async fn the_tls_handshake_overhead_is_measured_against_plain_connections() {
    const N: u32 = 200;
    let tls = tls_app().await;
    let plain = plain_app(&[]).await;
    let ca = tls.data_dir().join("tls/ca.pem");

    // No pooling: every request opens, uses and closes one connection.
    let plain_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let resuming = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    // Full handshakes: session resumption off.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pem_to_der(
            &std::fs::read(&ca).unwrap(),
        )))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let full = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .use_preconfigured_tls(config)
        .build()
        .unwrap();

    let plain_url = plain.url("/healthz");
    let tls_url = tls.url("/healthz");
    // Warm-up: code paths, allocators, the resumption cache.
    time_fresh_connections(&plain_client, &plain_url, 10).await;
    time_fresh_connections(&full, &tls_url, 10).await;
    time_fresh_connections(&resuming, &tls_url, 10).await;

    let plain_time = time_fresh_connections(&plain_client, &plain_url, N).await;
    let full_time = time_fresh_connections(&full, &tls_url, N).await;
    let resumed_time = time_fresh_connections(&resuming, &tls_url, N).await;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(N);
    println!(
        "TLS handshake overhead, {N} fresh connections each to /healthz on loopback \
         (client and server in one process, {} build):\n  \
         plain HTTP:          {:>8.1} ms total, {:>7.1} µs per connection\n  \
         TLS, full handshake: {:>8.1} ms total, {:>7.1} µs per connection (+{:.1} µs)\n  \
         TLS, resumed:        {:>8.1} ms total, {:>7.1} µs per connection (+{:.1} µs)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        plain_time.as_secs_f64() * 1e3,
        per(plain_time),
        full_time.as_secs_f64() * 1e3,
        per(full_time),
        per(full_time) - per(plain_time),
        resumed_time.as_secs_f64() * 1e3,
        per(resumed_time),
        per(resumed_time) - per(plain_time),
    );
    // Figures, not a benchmark gate: other tests share the two cores. Only
    // an absurd handshake time (a stall, a timeout) fails.
    assert!(per(full_time) < 100_000.0, "{} µs", per(full_time));
}
