//! The two-service example (`examples/mutual_m2m.rs`) end to end: a real
//! Latchkey server spawned in process, the machines, roles and secrets
//! created over its admin API, and telemetry and fleet on ports of their
//! own, calling each other with tokens Latchkey minted.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_server::{BootstrapKeys, Config, RunningServer, Settings};
use latchkey_verify::Mode;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[path = "../../examples/mutual_m2m.rs"]
mod mutual_m2m;

use mutual_m2m::{
    fetch_devices, fleet_app, send_command, telemetry_app, Command, Peer, ServiceConfig,
    TokenSource, FLEET_OPERATOR, TELEMETRY_READER,
};

/// A Latchkey server on a port of its own, with a test-mode admin key.
struct Latchkey {
    url: String,
    admin_key: String,
    workspace: String,
    http: reqwest::Client,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

impl Latchkey {
    async fn start() -> Latchkey {
        let dir = tempfile::tempdir().unwrap();
        let (listener, url) = listen().await;
        let settings = Settings {
            data_dir: Some(dir.path().to_path_buf()),
            issuer: Some(url.clone()),
            workspace_id: Some("acme".into()),
            ..Default::default()
        };
        let admin_key = credential::generate(Mode::Test, CredentialKind::Admin);
        let keys = BootstrapKeys {
            test: Some(admin_key.clone()),
            ..Default::default()
        };
        let config = Config::resolve(settings, keys).unwrap();
        let clock = Arc::new(SystemClock) as Arc<dyn Clock>;
        let server = latchkey_server::spawn_on(listener, config, clock)
            .await
            .unwrap();
        Latchkey {
            url,
            admin_key: admin_key.expose().to_owned(),
            workspace: "acme".into(),
            http: reqwest::Client::new(),
            _server: server,
            _dir: dir,
        }
    }

    /// An admin API call that must succeed.
    async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A machine holding `roles` in the workspace, and a client secret of
    /// it: `(client id, client secret)`.
    async fn machine(&self, name: &str, roles: &[&str]) -> (String, String) {
        let user = self
            .admin(Method::POST, "/v1/users", json!({ "name": name }))
            .await;
        let id = user["id"].as_str().unwrap().to_owned();
        if !roles.is_empty() {
            let path = format!("/v1/tenants/{}/users/{id}/roles", self.workspace);
            self.admin(Method::PUT, &path, json!({ "roles": roles }))
                .await;
        }
        let secret = self
            .admin(Method::POST, &format!("/v1/users/{id}/secrets"), json!({}))
            .await;
        (id, secret["secret"].as_str().unwrap().to_owned())
    }
}

/// Latchkey with telemetry and fleet running, each with its own machine.
struct Deployment {
    latchkey: Latchkey,
    telemetry: ServiceConfig,
    fleet: ServiceConfig,
}

async fn deploy() -> Deployment {
    let latchkey = Latchkey::start().await;
    for (role, permission) in [
        (FLEET_OPERATOR, "telemetry:command"),
        (TELEMETRY_READER, "fleet:read"),
    ] {
        let path = format!("/v1/roles/{role}");
        let body = json!({ "permissions": [permission] });
        latchkey.admin(Method::PUT, &path, body).await;
    }
    let (telemetry_id, telemetry_secret) = latchkey.machine("telemetry", &[TELEMETRY_READER]).await;
    let (fleet_id, fleet_secret) = latchkey.machine("fleet", &[FLEET_OPERATOR]).await;

    let (telemetry_listener, telemetry_url) = listen().await;
    let (fleet_listener, fleet_url) = listen().await;
    let telemetry = ServiceConfig {
        latchkey_url: latchkey.url.clone(),
        mode: Mode::Test,
        own_url: telemetry_url.clone(),
        peer_url: fleet_url.clone(),
        client_id: telemetry_id,
        client_secret: telemetry_secret,
    };
    let fleet = ServiceConfig {
        latchkey_url: latchkey.url.clone(),
        mode: Mode::Test,
        own_url: fleet_url,
        peer_url: telemetry_url,
        client_id: fleet_id,
        client_secret: fleet_secret,
    };
    serve(telemetry_listener, telemetry_app(&telemetry).await.unwrap());
    serve(fleet_listener, fleet_app(&fleet).await.unwrap());
    Deployment {
        latchkey,
        telemetry,
        fleet,
    }
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn serve(listener: TcpListener, app: axum::Router) {
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn calibrate(device: &str) -> Command {
    Command {
        device: device.into(),
        action: "calibrate".into(),
    }
}

fn challenge(response: &reqwest::Response) -> &str {
    response.headers()["www-authenticate"].to_str().unwrap()
}

#[tokio::test]
async fn telemetry_and_fleet_call_each_other_with_tokens_latchkey_minted_for_the_other() {
    let d = deploy().await;

    // telemetry → fleet: GET /devices, which needs telemetry-reader.
    let devices = fetch_devices(&d.telemetry.peer()).await.unwrap();
    assert_eq!(devices.len(), 2);

    // fleet → telemetry: POST /commands, which needs fleet-operator. The
    // receipt names the caller from its verified token.
    let to_telemetry = d.fleet.peer();
    for device in &devices {
        let command = calibrate(&device.id);
        let receipt = send_command(&to_telemetry, &command).await.unwrap();
        assert_eq!(receipt.command, command);
        assert_eq!(receipt.accepted_from, d.fleet.client_id);
    }
}

#[tokio::test]
async fn a_call_without_a_token_gets_401_with_a_bearer_challenge() {
    let d = deploy().await;
    let http = reqwest::Client::new();
    let to_telemetry = http
        .post(format!("{}/commands", d.telemetry.own_url))
        .json(&calibrate("dev-1"));
    let to_fleet = http.get(format!("{}/devices", d.fleet.own_url));
    for request in [to_telemetry, to_fleet] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&response), "Bearer");
    }
}

#[tokio::test]
async fn a_token_minted_for_another_audience_gets_401_even_with_the_right_role() {
    let d = deploy().await;
    // fleet holds fleet-operator, but this token names fleet itself as its
    // audience: telemetry must not accept a token meant for someone else.
    let f = &d.fleet;
    let misaddressed =
        TokenSource::new(&f.latchkey_url, &f.client_id, &f.client_secret, &f.own_url);
    let to_telemetry = Peer::new(&d.telemetry.own_url, misaddressed);
    let response = to_telemetry
        .post("/commands", &calibrate("dev-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).starts_with("Bearer error=\"invalid_token\""));
}

#[tokio::test]
async fn a_caller_without_the_role_gets_403_from_the_layer_and_from_the_handler() {
    let d = deploy().await;
    // A machine Latchkey knows, with a valid token for each service, but
    // holding neither role.
    let (id, secret) = d.latchkey.machine("dashboard", &[]).await;
    let token_for = |audience: &str| TokenSource::new(&d.latchkey.url, &id, &secret, audience);

    // telemetry checks with the `RequireRole` layer …
    let to_telemetry = Peer::new(&d.telemetry.own_url, token_for(&d.telemetry.own_url));
    let response = to_telemetry
        .post("/commands", &calibrate("dev-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&response).contains("error=\"insufficient_scope\""));

    // … fleet in its handler, with `claims.has_role`.
    let to_fleet = Peer::new(&d.fleet.own_url, token_for(&d.fleet.own_url));
    let response = to_fleet.get("/devices").await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&response).contains("error=\"insufficient_scope\""));
}

#[tokio::test]
async fn a_service_configured_for_live_mode_refuses_a_test_mode_token() {
    let d = deploy().await;
    // A second telemetry, the same in every way but its mode.
    let live = ServiceConfig {
        mode: Mode::Live,
        ..d.telemetry.clone()
    };
    let (listener, live_url) = listen().await;
    serve(listener, telemetry_app(&live).await.unwrap());

    let token = d.fleet.tokens_for_peer().token().await.unwrap();
    let post_to = |url: &str| {
        reqwest::Client::new()
            .post(format!("{url}/commands"))
            .bearer_auth(&token)
            .json(&calibrate("dev-1"))
            .send()
    };
    let response = post_to(&live_url).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).starts_with("Bearer error=\"invalid_token\""));
    // The same token, at the test-mode telemetry.
    let response = post_to(&d.telemetry.own_url).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_token_is_reused_until_shortly_before_it_expires_and_then_renewed() {
    let d = deploy().await;
    // fleet's tokens live three seconds from now on.
    let path = format!("/v1/users/{}", d.fleet.client_id);
    let body = json!({ "tokenTtlSeconds": 3 });
    d.latchkey.admin(Method::PATCH, &path, body).await;

    let to_telemetry = d.fleet.peer();
    let first = to_telemetry.tokens().token().await.unwrap();
    assert_eq!(to_telemetry.tokens().token().await.unwrap(), first);
    send_command(&to_telemetry, &calibrate("dev-1"))
        .await
        .unwrap();

    // A fifth of its lifetime before it expires (at 2.4 s), it is renewed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = to_telemetry.tokens().token().await.unwrap();
    assert_ne!(second, first);
    send_command(&to_telemetry, &calibrate("dev-1"))
        .await
        .unwrap();
}
