//! `RemoteKeyVerifier` against a tiny mock of `POST /v1/api-keys/verify`
//! written from the contract: answers, local refusals that never reach the
//! network, and the positive and negative caches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use latchkey_core::credential::{self, CredentialKind};
use latchkey_verify::{ApiKeyError, Mode, RefusalCode, RemoteKeyVerifier};
use serde_json::{json, Value};

use crate::support::TestClock;

#[derive(Clone, Default)]
struct Mock {
    caller: Arc<Mutex<String>>,
    answers: Arc<Mutex<HashMap<String, Value>>>,
    status: Arc<Mutex<Option<StatusCode>>>,
    hits: Arc<AtomicUsize>,
}

async fn verify(State(m): State<Mock>, headers: HeaderMap, body: String) -> Response {
    m.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *m.status.lock().unwrap() {
        return status.into_response();
    }
    let expected = format!("Bearer {}", m.caller.lock().unwrap());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        let problem = json!({"type": "about:blank", "title": "Unauthenticated",
            "status": 401, "detail": "bad credential", "code": "unauthenticated"});
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/problem+json")],
            problem.to_string(),
        )
            .into_response();
    }
    assert_eq!(body, "{}");
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let answer = m
        .answers
        .lock()
        .unwrap()
        .get(key)
        .cloned()
        .unwrap_or(json!({"valid": false, "code": "not_found"}));
    axum::Json(answer).into_response()
}

pub struct MockVerifyEndpoint {
    pub url: String,
    mock: Mock,
}

impl MockVerifyEndpoint {
    pub async fn start(caller: &str) -> Self {
        let mock = Mock::default();
        *mock.caller.lock().unwrap() = caller.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/v1/api-keys/verify", post(verify))
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockVerifyEndpoint { url, mock }
    }

    pub fn answer(&self, key: &str, answer: Value) {
        self.mock
            .answers
            .lock()
            .unwrap()
            .insert(key.to_owned(), answer);
    }

    pub fn hits(&self) -> usize {
        self.mock.hits.load(Ordering::SeqCst)
    }
}

pub fn key(mode: Mode) -> String {
    credential::generate(mode, CredentialKind::ApiKey)
        .expose()
        .to_owned()
}

pub fn valid(extra: Value) -> Value {
    let mut v = json!({
        "valid": true, "keyId": "key_abc", "userId": "usr_sensor", "tenantId": "acme",
        "mode": "live", "roles": ["reader"],
        "authorization": {"acme": {"roles": ["reader"]}}, "expiresAt": null
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

async fn setup() -> (MockVerifyEndpoint, RemoteKeyVerifier, TestClock, String) {
    let caller = key(Mode::Live);
    let endpoint = MockVerifyEndpoint::start(&caller).await;
    let clock = TestClock::new();
    let v = RemoteKeyVerifier::builder(&endpoint.url, &caller)
        .clock(clock.source())
        .build()
        .unwrap();
    (endpoint, v, clock, caller)
}

#[tokio::test]
async fn a_valid_key_is_described_and_its_answer_cached_for_thirty_seconds() {
    let (endpoint, v, clock, _) = setup().await;
    let k = key(Mode::Live);
    endpoint.answer(&k, valid(json!({})));
    let info = v.verify(&k).await.unwrap();
    assert_eq!(info.key_id, "key_abc");
    assert_eq!(info.user_id, "usr_sensor");
    assert_eq!(info.tenant_id, "acme");
    assert_eq!(info.mode, Mode::Live);
    assert_eq!(info.roles, ["reader"]);
    assert!(info.has_role("acme", "reader"));
    assert_eq!(info.expires_at, None);
    for _ in 0..10 {
        assert!(v.verify(&k).await.is_ok());
    }
    assert_eq!(endpoint.hits(), 1);
    clock.advance(29);
    assert!(v.verify(&k).await.is_ok());
    assert_eq!(endpoint.hits(), 1);
    // Revoked meanwhile: seen once the positive entry expires.
    endpoint.answer(&k, json!({"valid": false, "code": "revoked"}));
    clock.advance(1);
    assert_eq!(
        v.verify(&k).await.unwrap_err(),
        ApiKeyError::Refused(RefusalCode::Revoked)
    );
    assert_eq!(endpoint.hits(), 2);
    assert_eq!(v.request_count(), 2);
}

#[tokio::test]
async fn a_refusal_is_cached_for_five_seconds() {
    let (endpoint, v, clock, _) = setup().await;
    let k = key(Mode::Live);
    endpoint.answer(&k, json!({"valid": false, "code": "revoked"}));
    for _ in 0..5 {
        assert_eq!(
            v.verify(&k).await.unwrap_err(),
            ApiKeyError::Refused(RefusalCode::Revoked)
        );
    }
    assert_eq!(endpoint.hits(), 1);
    clock.advance(5);
    endpoint.answer(&k, valid(json!({})));
    assert!(v.verify(&k).await.is_ok());
    assert_eq!(endpoint.hits(), 2);
    // Unknown keys are refused as not_found, and unknown codes kept.
    assert_eq!(
        v.verify(&key(Mode::Live)).await.unwrap_err(),
        ApiKeyError::Refused(RefusalCode::NotFound)
    );
    let odd = key(Mode::Live);
    endpoint.answer(&odd, json!({"valid": false, "code": "quarantined"}));
    assert_eq!(
        v.verify(&odd).await.unwrap_err(),
        ApiKeyError::Refused(RefusalCode::Other("quarantined".into()))
    );
}

#[tokio::test]
async fn malformed_keys_and_keys_of_the_other_mode_never_reach_the_network() {
    let (endpoint, v, _, _) = setup().await;
    let good = key(Mode::Live);
    let mut typo = good.clone().into_bytes();
    typo[25] = if typo[25] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let admin = credential::generate(Mode::Live, CredentialKind::Admin)
        .expose()
        .to_owned();
    for bad in [
        "",
        "hunter2",
        typo.as_str(),
        admin.as_str(),
        &"x".repeat(100_000),
    ] {
        assert_eq!(
            v.verify(bad).await.unwrap_err(),
            ApiKeyError::Refused(RefusalCode::Malformed),
            "{bad:.40}"
        );
    }
    // The caller credential is live, so a test key is the other mode.
    assert_eq!(
        v.verify(&key(Mode::Test)).await.unwrap_err(),
        ApiKeyError::Refused(RefusalCode::WrongMode)
    );
    assert_eq!(endpoint.hits(), 0);
    assert_eq!(v.request_count(), 0);
}

#[tokio::test]
async fn keys_with_a_budget_are_asked_about_every_time() {
    let (endpoint, v, _, _) = setup().await;
    let k = key(Mode::Live);
    endpoint.answer(&k, valid(json!({"remaining": 3})));
    for _ in 0..3 {
        assert_eq!(v.verify(&k).await.unwrap().remaining, Some(3));
    }
    assert_eq!(endpoint.hits(), 3);
}

#[tokio::test]
async fn a_positive_answer_is_not_reused_past_the_keys_expiry() {
    let (endpoint, v, clock, _) = setup().await;
    let k = key(Mode::Live);
    let expiry = time::OffsetDateTime::from_unix_timestamp(clock.now() + 10).unwrap();
    let expiry = expiry
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    endpoint.answer(&k, valid(json!({"expiresAt": expiry})));
    assert_eq!(
        v.verify(&k).await.unwrap().expires_at,
        Some(clock.now() + 10)
    );
    clock.advance(9);
    assert!(v.verify(&k).await.is_ok());
    assert_eq!(endpoint.hits(), 1);
    clock.advance(1);
    endpoint.answer(&k, json!({"valid": false, "code": "expired"}));
    assert_eq!(
        v.verify(&k).await.unwrap_err(),
        ApiKeyError::Refused(RefusalCode::Expired)
    );
    assert_eq!(endpoint.hits(), 2);
}

#[tokio::test]
async fn a_refused_caller_credential_and_an_issuer_failure_are_the_verifiers_trouble() {
    let (endpoint, v, _, _) = setup().await;
    let k = key(Mode::Live);
    endpoint.answer(&k, valid(json!({})));
    v.set_caller_credential(key(Mode::Live));
    let err = v.verify(&k).await.unwrap_err();
    assert_eq!(
        err,
        ApiKeyError::CallerRejected {
            status: 401,
            code: Some("unauthenticated".into())
        }
    );
    assert!(err.is_unavailable());
    *endpoint.mock.status.lock().unwrap() = Some(StatusCode::INTERNAL_SERVER_ERROR);
    let err = v.verify(&k).await.unwrap_err();
    assert!(matches!(err, ApiKeyError::Unavailable(_)), "{err:?}");
    // Failures are not cached: the next call asks again.
    *endpoint.mock.status.lock().unwrap() = None;
    v.set_caller_credential(endpoint.mock.caller.lock().unwrap().clone());
    assert!(v.verify(&k).await.is_ok());
    assert_eq!(endpoint.hits(), 3);
    let down = RemoteKeyVerifier::builder("http://127.0.0.1:9", key(Mode::Live))
        .build()
        .unwrap();
    assert!(matches!(
        down.verify(&k).await.unwrap_err(),
        ApiKeyError::Unavailable(_)
    ));
}

#[tokio::test]
async fn with_caching_off_every_check_asks_the_issuer() {
    let (endpoint, _, _, caller) = setup().await;
    let v = RemoteKeyVerifier::builder(&endpoint.url, &caller)
        .positive_ttl(Duration::ZERO)
        .negative_ttl(Duration::ZERO)
        .build()
        .unwrap();
    let k = key(Mode::Live);
    endpoint.answer(&k, valid(json!({})));
    assert!(v.verify(&k).await.is_ok());
    endpoint.answer(&k, json!({"valid": false, "code": "revoked"}));
    assert!(v.verify(&k).await.is_err());
    assert!(v.verify(&k).await.is_err());
    assert_eq!(endpoint.hits(), 3);
    assert!(!format!("{v:?}").contains(&caller));
}
