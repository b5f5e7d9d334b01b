//! A mock issuer (RFC 8414 metadata and a JWKS a test can swap), a clock
//! tests can move, and tokens signed with Latchkey's own minting code.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_core::token::{self, TokenGrant};
use latchkey_types::admin::{Authorization, TenantRoles};
use latchkey_types::oauth::{Audience, JwkSet};
use latchkey_types::{JsonObject, Mode, UserKind};
use time::OffsetDateTime;

/// A clock the test moves by hand; starts at the real time so tokens look
/// ordinary.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn new() -> Self {
        TestClock(Arc::new(AtomicI64::new(
            OffsetDateTime::now_utc().unix_timestamp(),
        )))
    }
    /// A clock set to `unix` seconds.
    pub fn at(unix: i64) -> Self {
        TestClock(Arc::new(AtomicI64::new(unix)))
    }
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
    /// As a `latchkey_verify::Clock`.
    pub fn source(&self) -> impl Fn() -> i64 + Send + Sync + 'static {
        let t = self.0.clone();
        move || t.load(Ordering::SeqCst)
    }
}

/// What the mock issuer serves.
pub struct MockState {
    pub issuer: String,
    /// The `issuer` the metadata claims (normally `issuer`).
    pub metadata_issuer: String,
    pub jwks: JwkSet,
    pub cache_control: Option<String>,
    pub jwks_status: StatusCode,
}

/// A mock issuer on a random port.
pub struct MockIssuer {
    pub url: String,
    pub state: Arc<Mutex<MockState>>,
    pub jwks_hits: Arc<AtomicUsize>,
    pub metadata_hits: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    state: Arc<Mutex<MockState>>,
    jwks_hits: Arc<AtomicUsize>,
    metadata_hits: Arc<AtomicUsize>,
}

async fn metadata(State(s): State<AppState>) -> Response {
    s.metadata_hits.fetch_add(1, Ordering::SeqCst);
    let st = s.state.lock().unwrap();
    axum::Json(serde_json::json!({
        "issuer": st.metadata_issuer,
        "jwks_uri": format!("{}/keys/jwks.json", st.issuer),
        "token_endpoint": format!("{}/oauth/token", st.issuer),
    }))
    .into_response()
}

async fn jwks(State(s): State<AppState>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let st = s.state.lock().unwrap();
    if st.jwks_status != StatusCode::OK {
        return st.jwks_status.into_response();
    }
    let mut response = axum::Json(st.jwks.clone()).into_response();
    if let Some(cc) = &st.cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    response
}

impl MockIssuer {
    pub async fn start(keys: &[&SigningKey]) -> MockIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(MockState {
            issuer: url.clone(),
            metadata_issuer: url.clone(),
            jwks: jwk_set(keys),
            cache_control: Some("public, max-age=300".into()),
            jwks_status: StatusCode::OK,
        }));
        let app_state = AppState {
            state: state.clone(),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            metadata_hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/keys/jwks.json", get(jwks))
            .with_state(app_state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockIssuer {
            url,
            state,
            jwks_hits: app_state.jwks_hits,
            metadata_hits: app_state.metadata_hits,
            _task: task,
        }
    }

    /// Publishes exactly these keys from now on.
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.state.lock().unwrap().jwks = jwk_set(keys);
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().unwrap().cache_control = value.map(Into::into);
    }

    pub fn set_jwks_status(&self, status: StatusCode) {
        self.state.lock().unwrap().jwks_status = status;
    }

    pub fn metadata_hits(&self) -> usize {
        self.metadata_hits.load(Ordering::SeqCst)
    }

    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

pub fn jwk_set(keys: &[&SigningKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.public_jwk().clone()).collect(),
    }
}

/// What a minted token says; `Default` is a live machine token of `acme`.
pub struct Mint<'a> {
    pub issuer: &'a str,
    pub mode: Mode,
    pub audience: &'a str,
    pub now: i64,
    pub ttl: i64,
}

/// Signs a token exactly as the Latchkey server does.
pub fn mint(key: &SigningKey, m: &Mint<'_>) -> String {
    let mut authorization = Authorization::new();
    authorization.insert(
        "acme".into(),
        TenantRoles {
            roles: vec!["operator".into()],
        },
    );
    let custom = JsonObject::new();
    let claims = token::build_claims(TokenGrant {
        issuer: m.issuer,
        user_id: "usr_device1",
        kind: UserKind::Machine,
        mode: m.mode,
        tenant_id: "acme",
        audience: Audience::One(m.audience.into()),
        scope: Some("telemetry:write".into()),
        authorization,
        authorization_truncated: false,
        custom_claims: &custom,
        ttl_seconds: m.ttl,
        now: OffsetDateTime::from_unix_timestamp(m.now).unwrap(),
        session: None,
        actor: None,
    });
    token::sign(key, &token::encoded_header(key), &claims).unwrap()
}

pub fn ed25519() -> SigningKey {
    SigningKey::generate(Algorithm::EdDSA).unwrap()
}
