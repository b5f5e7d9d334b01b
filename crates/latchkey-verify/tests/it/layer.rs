//! The axum layer and extractors end to end in process: a router with
//! `AuthLayer`, `RequireRole` and `RequireScope`, driven with `oneshot`
//! against a mock issuer (tokens) and a mock verify endpoint (API keys).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use latchkey_verify::middleware::{
    AuthLayer, Authenticated, Authenticator, RequireRole, RequireScope,
};
use latchkey_verify::{Claims, KeyDigest, LocalKeyList, Mode, RemoteKeyVerifier, Verifier};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::api_keys::{key, valid, MockVerifyEndpoint};
use crate::support::{ed25519, mint, Mint, MockIssuer, TestClock};

const AUD: &str = "https://telemetry.example";

struct Fixture {
    app: Router,
    issuer: MockIssuer,
    keys: MockVerifyEndpoint,
    key: latchkey_core::signing::SigningKey,
    clock: TestClock,
    local_key: String,
}

async fn ok() -> &'static str {
    "ok"
}

async fn whoami(auth: Authenticated) -> Json<Value> {
    Json(json!({
        "user": auth.user_id(),
        "tenant": auth.tenant_id(),
        "mode": auth.mode(),
        "token": auth.claims().is_some(),
        "apiKey": auth.api_key().map(|k| k.key_id.clone()),
    }))
}

async fn claims_only(claims: Claims) -> String {
    claims.user_id().to_owned()
}

async fn fixture() -> Fixture {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = Verifier::builder(&issuer.url)
        .audience(AUD)
        .clock(clock.source())
        .build()
        .await
        .unwrap();
    let caller = key_of(Mode::Live);
    let keys = MockVerifyEndpoint::start(&caller).await;
    let remote = RemoteKeyVerifier::builder(&keys.url, &caller)
        .clock(clock.source())
        .build()
        .unwrap();
    let local_key = key_of(Mode::Live);
    let local = LocalKeyList::from_digests([KeyDigest::of(&local_key).to_hex()]).unwrap();
    let auth = Authenticator::new()
        .tokens(verifier)
        .remote_keys(remote)
        .local_keys(local);
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/claims", get(claims_only))
        .route(
            "/operate",
            get(ok).route_layer(RequireRole::new("operator")),
        )
        .route(
            "/operate-acme",
            get(ok).route_layer(RequireRole::in_tenant("acme", "operator")),
        )
        .route(
            "/administer",
            get(ok).route_layer(RequireRole::new("admin")),
        )
        .route(
            "/write",
            get(ok).route_layer(RequireScope::new("telemetry:write")),
        )
        .route(
            "/delete",
            get(ok).route_layer(RequireScope::new("telemetry:delete")),
        )
        .layer(AuthLayer::new(auth));
    Fixture {
        app,
        issuer,
        keys,
        key,
        clock,
        local_key,
    }
}

fn key_of(mode: Mode) -> String {
    key(mode)
}

impl Fixture {
    fn token(&self) -> String {
        mint(
            &self.key,
            &Mint {
                issuer: &self.issuer.url,
                mode: Mode::Live,
                audience: AUD,
                now: self.clock.now(),
                ttl: 3600,
            },
        )
    }

    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, Value) {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, challenge, body)
    }
}

#[tokio::test]
async fn a_request_without_credentials_gets_a_bare_bearer_challenge() {
    let f = fixture().await;
    let (status, challenge, body) = f.get("/whoami", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert_eq!(body["code"], "unauthenticated");
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let f = fixture().await;
    let bearer = format!("Bearer {}", f.token());
    let (status, _, body) = f.get("/whoami", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "usr_device1");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["mode"], "live");
    assert_eq!(body["token"], true);
    let (status, _, body) = f.get("/claims", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "usr_device1");
}

#[tokio::test]
async fn a_bad_or_expired_token_is_refused_with_invalid_token() {
    let f = fixture().await;
    let token = f.token();
    let tampered = format!("Bearer {}x", &token[..token.len() - 1]);
    let (status, challenge, _) = f.get("/whoami", &[("authorization", &tampered)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    f.clock.advance(3600 + 31);
    let (status, challenge, body) = f
        .get("/whoami", &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("expired"));
    assert_eq!(body["status"], 401);
    let (status, _, _) = f.get("/whoami", &[("authorization", "Basic dTpw")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_keys_are_accepted_from_the_local_list_and_from_the_issuer() {
    let f = fixture().await;
    let (status, _, body) = f.get("/whoami", &[("x-api-key", &f.local_key)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], Value::Null);
    assert_eq!(body["mode"], "live");
    assert_eq!(f.keys.hits(), 0);

    let remote = key_of(Mode::Live);
    f.keys.answer(&remote, valid(json!({})));
    let (status, _, body) = f.get("/whoami", &[("x-api-key", &remote)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "usr_sensor");
    assert_eq!(body["apiKey"], "key_abc");
    // As a bearer value too.
    let (status, _, _) = f
        .get("/whoami", &[("authorization", &format!("Bearer {remote}"))])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.keys.hits(), 1);

    // A token-only route refuses API keys.
    let (status, _, _) = f.get("/claims", &[("x-api-key", &remote)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let revoked = key_of(Mode::Live);
    f.keys
        .answer(&revoked, json!({"valid": false, "code": "revoked"}));
    let (status, challenge, _) = f.get("/whoami", &[("x-api-key", &revoked)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("invalid_token"));
    let (status, _, _) = f.get("/whoami", &[("x-api-key", "lk_live_key_typo")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.keys.hits(), 2);
}

#[tokio::test]
async fn roles_and_scopes_are_enforced_with_403() {
    let f = fixture().await;
    let bearer = format!("Bearer {}", f.token());
    let auth = [("authorization", bearer.as_str())];
    assert_eq!(f.get("/operate", &auth).await.0, StatusCode::OK);
    assert_eq!(f.get("/operate-acme", &auth).await.0, StatusCode::OK);
    assert_eq!(f.get("/write", &auth).await.0, StatusCode::OK);
    let (status, challenge, body) = f.get("/administer", &auth).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.unwrap().contains("insufficient_scope"));
    assert_eq!(body["code"], "forbidden");
    assert_eq!(f.get("/delete", &auth).await.0, StatusCode::FORBIDDEN);

    // An API key holds roles but no scopes; a local key holds neither.
    let remote = key_of(Mode::Live);
    f.keys.answer(
        &remote,
        valid(json!({"roles": ["operator"], "authorization": {"acme": {"roles": ["operator"]}}})),
    );
    let by_key = [("x-api-key", remote.as_str())];
    assert_eq!(f.get("/operate", &by_key).await.0, StatusCode::OK);
    assert_eq!(f.get("/write", &by_key).await.0, StatusCode::FORBIDDEN);
    let local = [("x-api-key", f.local_key.as_str())];
    assert_eq!(f.get("/operate", &local).await.0, StatusCode::FORBIDDEN);
    // Without credentials the layer answers 401 before any role check.
    assert_eq!(f.get("/operate", &[]).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_a_401() {
    let f = fixture().await;
    f.issuer.set_jwks_status(StatusCode::INTERNAL_SERVER_ERROR);
    let stranger = mint(
        &ed25519(),
        &Mint {
            issuer: &f.issuer.url,
            mode: Mode::Live,
            audience: AUD,
            now: f.clock.now(),
            ttl: 60,
        },
    );
    let (status, _, body) = f
        .get(
            "/whoami",
            &[("authorization", &format!("Bearer {stranger}"))],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
