//! `Verifier` against a mock issuer: discovery, caching by `max-age`, key
//! rotation, the rate-limited refetch on unknown kids, and an issuer that
//! goes down.

use std::time::Duration;

use axum::http::StatusCode;
use latchkey_verify::{DiscoveryError, Mode, Verifier, VerifyError};

use crate::support::{ed25519, mint, Mint, MockIssuer, TestClock};

const AUD: &str = "https://telemetry.example";

async fn verifier(issuer: &MockIssuer, clock: &TestClock) -> Verifier {
    Verifier::builder(&issuer.url)
        .audience(AUD)
        .mode(Mode::Live)
        .clock(clock.source())
        .build()
        .await
        .unwrap()
}

fn live<'a>(issuer: &'a MockIssuer, clock: &TestClock) -> Mint<'a> {
    Mint {
        issuer: &issuer.url,
        mode: Mode::Live,
        audience: AUD,
        now: clock.now(),
        ttl: 3600,
    }
}

#[tokio::test]
async fn a_token_verifies_and_the_keys_are_fetched_once() {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    assert_eq!(v.jwks_uri(), format!("{}/keys/jwks.json", issuer.url));
    for _ in 0..20 {
        let token = mint(&key, &live(&issuer, &clock));
        let claims = v.verify(&token).await.unwrap();
        assert_eq!(claims.user_id(), "usr_device1");
        assert!(claims.has_role("acme", "operator"));
        assert!(claims.has_scope("telemetry:write"));
    }
    assert_eq!(issuer.jwks_hits(), 1);
    assert_eq!(issuer.metadata_hits(), 1);
    assert_eq!(v.fetch_count(), 1);
    assert_eq!(v.cached_kids(), vec![key.kid().to_owned()]);
}

#[tokio::test]
async fn a_token_signed_after_the_issuer_rotated_to_a_new_key_verifies_after_one_refetch() {
    let old = ed25519();
    let issuer = MockIssuer::start(&[&old]).await;
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    assert!(v.verify(&mint(&old, &live(&issuer, &clock))).await.is_ok());

    // The issuer rotates: the new key signs, the old one is still published
    // for tokens in flight. The cache (max-age 300) has not expired.
    let new = ed25519();
    issuer.publish(&[&new, &old]);
    clock.advance(5);
    let token = mint(&new, &live(&issuer, &clock));
    let claims = v.verify(&token).await.unwrap();
    assert_eq!(claims.tenant_id(), "acme");
    assert_eq!(issuer.jwks_hits(), 2);
    // Old tokens still verify, with no further fetch.
    assert!(v.verify(&mint(&old, &live(&issuer, &clock))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn a_flood_of_bogus_kids_causes_at_most_one_refetch_per_interval() {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    let clock = TestClock::new();
    let v = Verifier::builder(&issuer.url)
        .audience(AUD)
        .min_refetch_interval(Duration::from_secs(10))
        .clock(clock.source())
        .build()
        .await
        .unwrap();
    // The first bogus kid causes one refetch; the rest of the flood none.
    let mut handles = Vec::new();
    for _ in 0..50 {
        let v = v.clone();
        let token = mint(&ed25519(), &live(&issuer, &clock));
        handles.push(tokio::spawn(async move { v.verify(&token).await }));
    }
    for h in handles {
        assert!(matches!(h.await.unwrap(), Err(VerifyError::UnknownKid(_))));
    }
    assert_eq!(issuer.jwks_hits(), 2);
    clock.advance(9);
    let token = mint(&ed25519(), &live(&issuer, &clock));
    assert!(v.verify(&token).await.is_err());
    assert_eq!(issuer.jwks_hits(), 2);

    // After the interval, one refetch for the whole flood.
    clock.advance(10);
    let mut handles = Vec::new();
    for _ in 0..50 {
        let v = v.clone();
        let token = mint(&ed25519(), &live(&issuer, &clock));
        handles.push(tokio::spawn(async move { v.verify(&token).await }));
    }
    for h in handles {
        assert!(matches!(h.await.unwrap(), Err(VerifyError::UnknownKid(_))));
    }
    assert_eq!(issuer.jwks_hits(), 3);
    // And genuine tokens were never affected.
    assert!(v.verify(&mint(&key, &live(&issuer, &clock))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 3);
}

#[tokio::test]
async fn many_concurrent_tokens_of_a_new_key_share_one_refetch() {
    let old = ed25519();
    let issuer = MockIssuer::start(&[&old]).await;
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    clock.advance(60);
    let new = ed25519();
    issuer.publish(&[&new]);
    let mut handles = Vec::new();
    for _ in 0..50 {
        let v = v.clone();
        let token = mint(&new, &live(&issuer, &clock));
        handles.push(tokio::spawn(async move { v.verify(&token).await }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn keys_are_cached_for_max_age_and_refreshed_when_stale() {
    let a = ed25519();
    let issuer = MockIssuer::start(&[&a]).await;
    issuer.set_cache_control(Some("public, max-age=60"));
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    let b = ed25519();
    // The issuer drops key a; until max-age passes the verifier keeps it.
    issuer.publish(&[&b]);
    clock.advance(59);
    assert!(v.verify(&mint(&a, &live(&issuer, &clock))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 1);
    // Stale: the next verification refreshes, and a is gone.
    clock.advance(2);
    assert!(matches!(
        v.verify(&mint(&a, &live(&issuer, &clock))).await,
        Err(VerifyError::UnknownKid(_))
    ));
    assert_eq!(issuer.jwks_hits(), 2);
    assert_eq!(v.cached_kids(), vec![b.kid().to_owned()]);
    assert!(v.verify(&mint(&b, &live(&issuer, &clock))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn no_store_is_bounded_by_the_refetch_interval() {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    issuer.set_cache_control(Some("no-store"));
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    for _ in 0..10 {
        assert!(v.verify(&mint(&key, &live(&issuer, &clock))).await.is_ok());
    }
    assert_eq!(issuer.jwks_hits(), 1);
    clock.advance(10);
    assert!(v.verify(&mint(&key, &live(&issuer, &clock))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn when_the_issuer_fails_the_cached_keys_stay_in_use() {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    issuer.set_cache_control(Some("max-age=30"));
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    issuer.set_jwks_status(StatusCode::SERVICE_UNAVAILABLE);
    clock.advance(31);
    assert!(v.verify(&mint(&key, &live(&issuer, &clock))).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2);
    // An unknown kid while the issuer is down is the verifier's trouble,
    // not (necessarily) the token's.
    clock.advance(10);
    let err = v
        .verify(&mint(&ed25519(), &live(&issuer, &clock)))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(v.refresh().await.is_err());
    // Back up: the next due refresh recovers.
    issuer.set_jwks_status(StatusCode::OK);
    clock.advance(10);
    assert!(v.verify(&mint(&key, &live(&issuer, &clock))).await.is_ok());
    v.refresh().await.unwrap();
}

#[tokio::test]
async fn discovery_refuses_metadata_that_names_another_issuer() {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    issuer.state.lock().unwrap().metadata_issuer = "https://evil.example".into();
    let err = Verifier::builder(&issuer.url).build().await.unwrap_err();
    assert!(
        matches!(err, DiscoveryError::IssuerMismatch { ref found, .. } if found == "https://evil.example"),
        "{err:?}"
    );
    assert_eq!(issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn discovery_reports_an_unreachable_issuer_and_a_bad_jwks() {
    let err = Verifier::builder("http://127.0.0.1:9")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, DiscoveryError::Http { .. }), "{err:?}");
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    issuer.set_jwks_status(StatusCode::NOT_FOUND);
    let err = Verifier::builder(&issuer.url).build().await.unwrap_err();
    assert!(
        matches!(err, DiscoveryError::Status { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_audience_mode_and_issuer_are_refused_by_the_verifier() {
    let key = ed25519();
    let issuer = MockIssuer::start(&[&key]).await;
    let clock = TestClock::new();
    let v = verifier(&issuer, &clock).await;
    let mut m = live(&issuer, &clock);
    m.audience = "https://other.example";
    assert_eq!(
        v.verify(&mint(&key, &m)).await.unwrap_err(),
        VerifyError::WrongAudience
    );
    let mut m = live(&issuer, &clock);
    m.mode = Mode::Test;
    assert_eq!(
        v.verify(&mint(&key, &m)).await.unwrap_err(),
        VerifyError::WrongMode
    );
    let mut m = live(&issuer, &clock);
    m.issuer = "https://evil.example";
    assert_eq!(
        v.verify(&mint(&key, &m)).await.unwrap_err(),
        VerifyError::WrongIssuer
    );
    let mut m = live(&issuer, &clock);
    m.ttl = 60;
    let token = mint(&key, &m);
    clock.advance(91);
    assert_eq!(v.verify(&token).await.unwrap_err(), VerifyError::Expired);
    assert_eq!(v.verify_cached(&token).unwrap_err(), VerifyError::Expired);
}
