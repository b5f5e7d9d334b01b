//! `GET /metrics`: Prometheus text with requests and latency per route,
//! tokens issued, API-key verifications by result, and cache lookups.

use serde_json::json;

use crate::helpers::{spawn_app, Backend};

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix}:\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_tokens_verifications_and_cache_lookups() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    app.access_token(&m, &secret, &[]).await;
    app.access_token(&m, &secret, &[]).await;
    let (_, key) = app.api_key(json!({"userId": m})).await;
    assert_eq!(app.verify(&key).await["valid"], true);
    assert_eq!(app.verify("lk_test_key_nope").await["code"], "malformed");

    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            r#"latchkey_http_requests_total{method="POST",route="/oauth/token",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(&text, r#"latchkey_tokens_issued_total{mode="test"}"#),
        2.0
    );
    assert_eq!(
        sample(&text, r#"latchkey_tokens_issued_total{mode="live"}"#),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            r#"latchkey_api_key_verifications_total{result="valid"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"latchkey_api_key_verifications_total{result="malformed"}"#
        ),
        1.0
    );
    // Ids never become labels: the route is the template.
    assert!(text.contains(r#"route="/v1/users/{id}/secrets""#), "{text}");
    assert!(!text.contains(&m), "a user id leaked into a label");
    // The histogram's buckets are cumulative and end at the count.
    let prefix =
        r#"latchkey_http_request_duration_seconds_bucket{method="POST",route="/oauth/token",le=""#;
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 13);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*buckets.last().unwrap(), 2.0);
    // The second token came from memory.
    assert!(sample(&text, r#"latchkey_cache_lookups_total{outcome="hit"}"#) >= 1.0);
    assert!(sample(&text, r#"latchkey_cache_lookups_total{outcome="miss"}"#) >= 1.0);
    // No secret appears in the metrics.
    assert!(!text.contains(&secret) && !text.contains(&key));
}

/// The transport layer reads and parses an OAuth form once, for the TLS
/// rule, the brute-force guard and the handler alike.
#[tokio::test]
async fn an_oauth_request_form_is_parsed_once() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let parsed = || async {
        let text = app.get("/metrics").await.text;
        sample(&text, "latchkey_oauth_forms_parsed_total ")
    };
    let before = parsed().await;
    // client_secret_post: the client id is in the form, which the
    // brute-force guard reads before the handler does.
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
    assert_eq!(parsed().await - before, 1.0);
    // Basic, and a refused one.
    app.token(Some((&m, &secret)), &[("grant_type", "client_credentials")])
        .await
        .expect(200);
    app.token(
        Some((&m, "lk_test_secret_wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(parsed().await - before, 3.0);
    // Introspection reads its form once too.
    let (token, _) = app.access_token(&m, &secret, &[]).await;
    let at = parsed().await;
    app.oauth_form(
        "/oauth/introspect",
        Some((&m, &secret)),
        None,
        &[("token", &token)],
    )
    .await
    .expect(200);
    assert_eq!(parsed().await - at, 1.0);
}
