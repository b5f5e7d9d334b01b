//! `latchkey-verify` against a REAL Latchkey server spawned on port 0 with
//! its own SQLite store: tokens minted by the server's token endpoint,
//! discovery and JWKS from its well-known endpoints.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use latchkey_core::clock::{Clock, ManualClock};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_server::{BootstrapKeys, Config, RunningServer, Settings};
use latchkey_verify::middleware::{AuthLayer, Authenticator, RequireScope};
use latchkey_verify::{
    verify_jwt, Claims, DiscoveryError, Expectations, JwkSet, KeySet, Mode, Verifier, VerifyError,
};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tower::ServiceExt as _;

use crate::support::TestClock;

const AUD: &str = "https://telemetry.example";

struct Server {
    base: String,
    /// Test mode's issuer (these tests' machines are of test mode).
    issuer: String,
    client: reqwest::Client,
    admin: String,
    workspace: String,
    clock: Arc<ManualClock>,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

async fn spawn(adjust: impl FnOnce(&mut Settings)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings {
        listen: Some(addr),
        data_dir: Some(dir.path().to_path_buf()),
        issuer: Some(format!("http://{addr}")),
        workspace_id: Some("acme-ws".into()),
        ..Default::default()
    };
    adjust(&mut settings);
    let admin = credential::generate(Mode::Test, CredentialKind::Admin);
    let keys = BootstrapKeys {
        test: Some(admin.clone()),
        ..Default::default()
    };
    let config = Config::resolve(settings, keys).unwrap();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let server = latchkey_server::spawn_on(listener, config, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    Server {
        base: format!("http://{addr}"),
        issuer: format!("http://{addr}/test"),
        client: reqwest::Client::new(),
        admin: admin.expose().to_owned(),
        workspace: "acme-ws".into(),
        clock,
        _server: server,
        _dir: dir,
    }
}

impl Server {
    async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A test-mode machine holding `operator` (telemetry:write) in the
    /// workspace, with a custom claim, and a client secret.
    async fn machine(&self) -> (String, String) {
        let user = self
            .admin_call(
                reqwest::Method::POST,
                "/v1/users",
                json!({"name": "sensor", "customClaims": {"region": "eu"}}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.admin_call(
            reqwest::Method::PUT,
            "/v1/roles/operator",
            json!({"permissions": ["telemetry:write"]}),
        )
        .await;
        self.admin_call(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{}/users/{user}/roles", self.workspace),
            json!({"roles": ["operator"]}),
        )
        .await;
        let secret = self
            .admin_call(
                reqwest::Method::POST,
                &format!("/v1/users/{user}/secrets"),
                json!({}),
            )
            .await["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        (user, secret)
    }

    /// An access token from `POST /oauth/token` (client_credentials).
    async fn token(&self, user: &str, secret: &str, extra: &[(&str, &str)]) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let r = self
            .client
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(user, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A verifier clock showing the server's time (which stands still
    /// until the test moves it), so lifetimes can be checked to the second.
    fn verifier_clock(&self) -> TestClock {
        use latchkey_core::clock::Clock as _;
        TestClock::at(self.clock.now().unix_timestamp())
    }

    async fn verifier(&self, clock: &TestClock) -> Verifier {
        Verifier::builder(&self.issuer)
            .audience(AUD)
            .mode(Mode::Test)
            .clock(clock.source())
            .build()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_token_from_a_real_server_verifies_with_its_roles_scope_and_custom_claims() {
    let s = spawn(|_| {}).await;
    let (user, secret) = s.machine().await;
    let token = s
        .token(
            &user,
            &secret,
            &[("audience", AUD), ("scope", "telemetry:write")],
        )
        .await;
    let clock = s.verifier_clock();
    let v = s.verifier(&clock).await;
    let claims = v.verify(&token).await.unwrap();
    assert_eq!(claims.user_id(), user);
    assert_eq!(claims.tenant_id(), s.workspace);
    assert_eq!(claims.mode(), Mode::Test);
    assert_eq!(claims.issuer(), s.issuer);
    assert!(claims.has_role(&s.workspace, "operator"));
    assert!(!claims.has_role(&s.workspace, "admin"));
    assert!(claims.has_scope("telemetry:write"));
    assert_eq!(claims.custom("region"), Some(&json!("eu")));
    assert_eq!(v.jwks_uri(), format!("{}/.well-known/jwks.json", s.issuer));
}

#[tokio::test]
async fn every_signing_algorithm_the_server_offers_verifies() {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let s = spawn(|settings| settings.test_signing_alg = Some(alg.into())).await;
        let (user, secret) = s.machine().await;
        let token = s.token(&user, &secret, &[("audience", AUD)]).await;
        let v = s.verifier(&s.verifier_clock()).await;
        let claims = v
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.user_id(), user, "{alg}");
    }
}

#[tokio::test]
async fn wrong_audience_issuer_and_mode_are_refused() {
    let s = spawn(|_| {}).await;
    let (user, secret) = s.machine().await;
    let clock = s.verifier_clock();

    // Without `audience` the server sets aud to the mode's issuer URL.
    let token = s.token(&user, &secret, &[]).await;
    let v = s.verifier(&clock).await;
    assert_eq!(
        v.verify(&token).await.unwrap_err(),
        VerifyError::WrongAudience
    );
    let token = s
        .token(&user, &secret, &[("audience", "https://other.example")])
        .await;
    assert_eq!(
        v.verify(&token).await.unwrap_err(),
        VerifyError::WrongAudience
    );

    // A verifier of the live issuer (the server's URL) refuses test
    // tokens: its JWKS does not even hold their key.
    let token = s.token(&user, &secret, &[("audience", AUD)]).await;
    let live = Verifier::builder(&s.base)
        .audience(AUD)
        .build()
        .await
        .unwrap();
    assert!(matches!(
        live.verify(&token).await.unwrap_err(),
        VerifyError::UnknownKid(_)
    ));
    // One configured for the test issuer but told to accept live tokens
    // refuses them by their mode claim.
    let misconfigured = Verifier::builder(&s.issuer)
        .audience(AUD)
        .mode(Mode::Live)
        .build()
        .await
        .unwrap();
    assert_eq!(
        misconfigured.verify(&token).await.unwrap_err(),
        VerifyError::WrongMode
    );

    // The issuer's genuine keys, but another expected issuer: the live
    // issuer, or a stranger.
    let jwks: JwkSet = s
        .client
        .get(format!("{}/.well-known/jwks.json", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = KeySet::from_jwks(&jwks).unwrap();
    assert_eq!(keys.len(), 1, "test mode's key only");
    for elsewhere in [s.base.as_str(), "https://auth.elsewhere.example"] {
        let elsewhere = Expectations::new(elsewhere).mode(Mode::Test);
        assert_eq!(
            verify_jwt(&token, &keys, &elsewhere, clock.now()).unwrap_err(),
            VerifyError::WrongIssuer
        );
    }
    let here = Expectations::new(&s.issuer).mode(Mode::Test).audience(AUD);
    assert!(verify_jwt(&token, &keys, &here, clock.now()).is_ok());

    // A token of another Latchkey server names a key this one never had.
    let other = spawn(|_| {}).await;
    let (u2, s2) = other.machine().await;
    let foreign = other.token(&u2, &s2, &[("audience", AUD)]).await;
    assert!(matches!(
        v.verify(&foreign).await.unwrap_err(),
        VerifyError::UnknownKid(_)
    ));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let s = spawn(|settings| settings.token_ttl_seconds = Some(600)).await;
    let (user, secret) = s.machine().await;
    // Minted by a server whose clock says two hours ago.
    s.clock.advance(-7200);
    let old = s.token(&user, &secret, &[("audience", AUD)]).await;
    s.clock.advance(7200);
    let clock = s.verifier_clock();
    let v = s.verifier(&clock).await;
    assert_eq!(v.verify(&old).await.unwrap_err(), VerifyError::Expired);
    // A fresh one passes, then expires once the verifier's clock moves past
    // exp and the leeway.
    let fresh = s.token(&user, &secret, &[("audience", AUD)]).await;
    assert!(v.verify(&fresh).await.is_ok());
    clock.advance(600 + 29);
    assert!(v.verify(&fresh).await.is_ok());
    clock.advance(2);
    assert_eq!(v.verify(&fresh).await.unwrap_err(), VerifyError::Expired);
}

#[tokio::test]
async fn the_jwks_is_fetched_once_and_cached_for_the_servers_max_age() {
    let s = spawn(|_| {}).await;
    let (user, secret) = s.machine().await;
    let clock = s.verifier_clock();
    let v = s.verifier(&clock).await;
    for _ in 0..20 {
        let token = s.token(&user, &secret, &[("audience", AUD)]).await;
        v.verify(&token).await.unwrap();
    }
    assert_eq!(v.fetch_count(), 1);
    // The server says max-age=300.
    clock.advance(299);
    let token = s.token(&user, &secret, &[("audience", AUD)]).await;
    v.verify(&token).await.unwrap();
    assert_eq!(v.fetch_count(), 1);
    clock.advance(2);
    v.verify(&token).await.unwrap();
    assert_eq!(v.fetch_count(), 2);
}

#[tokio::test]
async fn discovery_requires_the_exact_issuer_url() {
    let s = spawn(|_| {}).await;
    for issuer in [&s.base, &s.issuer] {
        let err = Verifier::builder(format!("{issuer}/"))
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(err, DiscoveryError::IssuerMismatch { ref found, .. } if found == issuer),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_axum_service_accepts_a_real_token_and_enforces_its_scope() {
    let s = spawn(|_| {}).await;
    let (user, secret) = s.machine().await;
    let v = s.verifier(&s.verifier_clock()).await;
    let app = Router::new()
        .route(
            "/ingest",
            get(|claims: Claims| async move { claims.user_id().to_owned() })
                .route_layer(RequireScope::new("telemetry:write")),
        )
        .layer(AuthLayer::new(Authenticator::new().tokens(v)));
    let call = |token: String| {
        let app = app.clone();
        async move {
            app.oneshot(
                Request::get("/ingest")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
        }
    };
    let scoped = s
        .token(
            &user,
            &secret,
            &[("audience", AUD), ("scope", "telemetry:write")],
        )
        .await;
    let response = call(scoped).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, user.as_bytes());
    let unscoped = s.token(&user, &secret, &[("audience", AUD)]).await;
    assert_eq!(call(unscoped).await.status(), StatusCode::FORBIDDEN);
}
