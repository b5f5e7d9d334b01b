//! Two services that authenticate each other through Latchkey, in both
//! directions (bi-directional machine-to-machine):
//!
//! - **fleet** manages devices and sends them commands through telemetry:
//!   it calls `POST /commands` on telemetry, which requires the role
//!   `fleet-operator`;
//! - **telemetry** asks fleet which devices exist: it calls `GET /devices` on
//!   fleet, which requires the role `telemetry-reader`.
//!
//! Each service is a Latchkey machine with its own client id and secret.
//! **As a caller** it gets an access token from Latchkey
//! (`client_credentials`, audience = the other service's URL), caches it and
//! renews it shortly before it expires ([`TokenSource`], [`Peer`]).
//! **As a receiver** it verifies the caller's token with `latchkey-verify`
//! (the configured mode's Latchkey issuer, its own URL as audience) and
//! checks the caller's role ([`telemetry_app`], [`fleet_app`]).
//!
//! Run it against a Latchkey server (the crate README shows how to create
//! the two machines, their roles and secrets):
//!
//! ```sh
//! LATCHKEY_URL=http://127.0.0.1:8080 \
//! TELEMETRY_CLIENT_ID=usr_… TELEMETRY_CLIENT_SECRET=lk_test_secret_… \
//! FLEET_CLIENT_ID=usr_… FLEET_CLIENT_SECRET=lk_test_secret_… \
//!   cargo run -p latchkey-verify --example mutual_m2m --features axum
//! ```
//!
//! Optional: `LATCHKEY_MODE` (`test`, the default, or `live`),
//! `TELEMETRY_URL` (`http://127.0.0.1:3001`), `FLEET_URL`
//! (`http://127.0.0.1:3002`). `tests/it/mutual.rs` runs this same code
//! against a Latchkey server spawned in process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use latchkey_verify::middleware::{AuthLayer, AuthRejection, Authenticator, RequireRole};
use latchkey_verify::{Claims, DiscoveryError, Mode, Verifier};
use serde::{Deserialize, Serialize};

/// Errors of the calling side, boxed: this is an example.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The role a caller needs to send commands through telemetry.
pub const FLEET_OPERATOR: &str = "fleet-operator";
/// The role a caller needs to list fleet's devices.
pub const TELEMETRY_READER: &str = "telemetry-reader";

/// One service's configuration: who it is, whom it talks to, which tokens
/// it accepts.
#[derive(Clone)]
pub struct ServiceConfig {
    /// Latchkey's URL (its configured issuer URL): live mode's issuer,
    /// and where its token endpoint is.
    pub latchkey_url: String,
    /// The mode of the tokens this service accepts and asks for (`test`
    /// while developing, `live` in production). Each mode is its own
    /// issuer: `{latchkey_url}/test` for test.
    pub mode: Mode,
    /// This service's URL as its callers know it: the audience their tokens
    /// must name.
    pub own_url: String,
    /// The other service's URL: where this one calls, and the audience of
    /// the tokens it asks for.
    pub peer_url: String,
    /// This service's machine identity in Latchkey (a user id, `usr_…`).
    pub client_id: String,
    /// A client secret of that machine (`lk_<mode>_secret_…`).
    pub client_secret: String,
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("latchkey_url", &self.latchkey_url)
            .field("mode", &self.mode)
            .field("own_url", &self.own_url)
            .field("peer_url", &self.peer_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive() // never the secret
    }
}

impl ServiceConfig {
    /// The tokens this service presents to its peer.
    pub fn tokens_for_peer(&self) -> TokenSource {
        TokenSource::new(
            &self.latchkey_url,
            &self.client_id,
            &self.client_secret,
            &self.peer_url,
        )
    }

    /// A client for calling the peer with those tokens.
    pub fn peer(&self) -> Peer {
        Peer::new(&self.peer_url, self.tokens_for_peer())
    }
}

// ---------------------------------------------------------------------------
// The receiving side: latchkey-verify.
// ---------------------------------------------------------------------------

/// Accepts access tokens of `cfg.mode`'s Latchkey issuer addressed to
/// `cfg.own_url`; answers 401 with `WWW-Authenticate` for anything else.
pub async fn auth_layer(cfg: &ServiceConfig) -> Result<AuthLayer, DiscoveryError> {
    let verifier = Verifier::for_mode(&cfg.latchkey_url, cfg.mode)
        .audience(&cfg.own_url)
        .build() // discovery and the first JWKS fetch
        .await?;
    Ok(AuthLayer::new(Authenticator::new().tokens(verifier)))
}

/// The telemetry service: `POST /commands` for callers holding
/// `fleet-operator`.
pub async fn telemetry_app(cfg: &ServiceConfig) -> Result<Router, DiscoveryError> {
    Ok(Router::new()
        .route(
            "/commands",
            // The role check as a layer: a 403 before the handler runs.
            post(accept_command).route_layer(RequireRole::new(FLEET_OPERATOR)),
        )
        .layer(auth_layer(cfg).await?))
}

/// The fleet service: `GET /devices` for callers holding
/// `telemetry-reader`.
pub async fn fleet_app(cfg: &ServiceConfig) -> Result<Router, DiscoveryError> {
    Ok(Router::new()
        .route("/devices", get(list_devices))
        .layer(auth_layer(cfg).await?))
}

/// A device fleet manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// What it is.
    pub model: String,
}

/// A command for a device, sent by fleet to telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The device's id.
    pub device: String,
    /// What it should do.
    pub action: String,
}

/// Telemetry's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The command, as received.
    pub command: Command,
    /// The machine (Latchkey user id) that sent it, from its token.
    pub accepted_from: String,
}

async fn accept_command(
    claims: Claims,
    Json(command): Json<Command>,
) -> (StatusCode, Json<Receipt>) {
    // Signature, issuer, audience, mode, expiry and role are checked by now;
    // the typed claims say who is calling.
    let receipt = Receipt {
        command,
        accepted_from: claims.user_id().to_owned(),
    };
    (StatusCode::ACCEPTED, Json(receipt))
}

async fn list_devices(claims: Claims) -> Result<Json<Vec<Device>>, AuthRejection> {
    // The role check in the handler, on the typed claims: the role must be
    // effective in the tenant the token is scoped to.
    if !claims.has_role(claims.tenant_id(), TELEMETRY_READER) {
        return Err(AuthRejection::Forbidden); // 403, insufficient_scope
    }
    let device = |id: &str, model: &str| Device {
        id: id.into(),
        model: model.into(),
    };
    Ok(Json(vec![
        device("dev-1", "thermometer"),
        device("dev-2", "pressure-gauge"),
    ]))
}

// ---------------------------------------------------------------------------
// The calling side: tokens from Latchkey's token endpoint.
// ---------------------------------------------------------------------------

/// Access tokens of one machine for one audience, from Latchkey's token
/// endpoint (`client_credentials`): fetched on first use, then reused until
/// shortly before they expire.
pub struct TokenSource {
    http: reqwest::Client,
    token_endpoint: String,
    client_id: String,
    client_secret: String,
    audience: String,
    /// Held across the fetch, so concurrent callers that find the token
    /// stale wait for one fetch instead of each starting their own.
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    renew_at: Instant,
}

/// The part of the token endpoint's answer (RFC 6749 §5.1) used here.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive() // never the secret or the token
    }
}

impl TokenSource {
    /// Tokens of the machine `client_id` for `audience`, from the Latchkey
    /// server at `latchkey_url` (one token endpoint serves both modes: the
    /// secret's prefix says which).
    pub fn new(latchkey_url: &str, client_id: &str, client_secret: &str, audience: &str) -> Self {
        TokenSource {
            http: reqwest::Client::new(),
            token_endpoint: format!("{latchkey_url}/oauth/token"),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            audience: audience.into(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token that is good for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<String, Error> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch(&self) -> Result<CachedToken, Error> {
        let asked_at = Instant::now();
        let response = self
            .http
            .post(&self.token_endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("audience", self.audience.as_str()),
            ])
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("the token endpoint answered {status}: {body}").into());
        }
        let token: TokenResponse = response.json().await?;
        // Renew a fifth of the lifetime early (a minute at most), so a
        // token never expires on its way to the other service.
        let lifetime = Duration::from_secs(token.expires_in);
        let early = (lifetime / 5).min(Duration::from_secs(60));
        Ok(CachedToken {
            value: token.access_token,
            renew_at: asked_at + lifetime - early,
        })
    }
}

/// The other service, called with `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Peer {
    url: String,
    tokens: Arc<TokenSource>,
    http: reqwest::Client,
}

impl Peer {
    /// The service at `url`, called with tokens from `tokens`.
    pub fn new(url: &str, tokens: TokenSource) -> Self {
        Peer {
            url: url.into(),
            tokens: Arc::new(tokens),
            http: reqwest::Client::new(),
        }
    }

    /// Where its tokens come from.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// `GET path`, whatever the answer.
    pub async fn get(&self, path: &str) -> Result<reqwest::Response, Error> {
        let token = self.tokens.token().await?;
        let request = self.http.get(format!("{}{path}", self.url));
        Ok(request.bearer_auth(token).send().await?)
    }

    /// `POST path` with a JSON body, whatever the answer.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response, Error> {
        let token = self.tokens.token().await?;
        let request = self.http.post(format!("{}{path}", self.url)).json(body);
        Ok(request.bearer_auth(token).send().await?)
    }
}

/// telemetry → fleet: the devices fleet manages.
pub async fn fetch_devices(fleet: &Peer) -> Result<Vec<Device>, Error> {
    let response = fleet.get("/devices").await?.error_for_status()?;
    Ok(response.json().await?)
}

/// fleet → telemetry: sends a command, returns telemetry's receipt.
pub async fn send_command(telemetry: &Peer, command: &Command) -> Result<Receipt, Error> {
    let response = telemetry
        .post("/commands", command)
        .await?
        .error_for_status()?;
    Ok(response.json().await?)
}

// ---------------------------------------------------------------------------
// `cargo run`: both services in one process, one call in each direction.
// ---------------------------------------------------------------------------

#[allow(dead_code)] // unused where tests/it/mutual.rs includes this file
#[tokio::main]
async fn main() -> Result<(), Error> {
    let latchkey_url = env_or("LATCHKEY_URL", "http://127.0.0.1:8080");
    let mode =
        Mode::parse(&env_or("LATCHKEY_MODE", "test")).ok_or("LATCHKEY_MODE: test or live")?;
    let telemetry_url = env_or("TELEMETRY_URL", "http://127.0.0.1:3001");
    let fleet_url = env_or("FLEET_URL", "http://127.0.0.1:3002");
    let telemetry = ServiceConfig {
        latchkey_url: latchkey_url.clone(),
        mode,
        own_url: telemetry_url.clone(),
        peer_url: fleet_url.clone(),
        client_id: env("TELEMETRY_CLIENT_ID")?,
        client_secret: env("TELEMETRY_CLIENT_SECRET")?,
    };
    let fleet = ServiceConfig {
        latchkey_url,
        mode,
        own_url: fleet_url,
        peer_url: telemetry_url,
        client_id: env("FLEET_CLIENT_ID")?,
        client_secret: env("FLEET_CLIENT_SECRET")?,
    };
    serve(telemetry_app(&telemetry).await?, &telemetry.own_url).await?;
    serve(fleet_app(&fleet).await?, &fleet.own_url).await?;

    let devices = fetch_devices(&telemetry.peer()).await?;
    println!("telemetry → fleet  GET /devices: {devices:?}");
    let to_telemetry = fleet.peer(); // one token for all the commands
    for device in devices {
        let command = Command {
            device: device.id,
            action: "calibrate".into(),
        };
        let receipt = send_command(&to_telemetry, &command).await?;
        println!("fleet → telemetry  POST /commands: {receipt:?}");
    }
    Ok(())
}

/// Serves `app` in the background on the host and port of `url`.
async fn serve(app: Router, url: &str) -> Result<(), Error> {
    let url = reqwest::Url::parse(url)?;
    let host = url.host_str().ok_or("a service URL without host")?;
    let port = url
        .port_or_known_default()
        .ok_or("a service URL without port")?;
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}
