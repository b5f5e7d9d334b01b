//! `latchkey verify`: access tokens checked against the issuer's JWKS and
//! API keys checked by the verify endpoint, with exit status 0 for valid, 1
//! for invalid and 2 for errors. The value checked is never printed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::credential::{generate, CredentialKind};
use latchkey_core::Mode;
use serde_json::Value;

use crate::helpers::*;

/// A server, a machine with a secret, and a test-mode token of it.
async fn with_token(flags: &[&str]) -> (TestServer, String, String) {
    let server = TestServer::spawn().await;
    let (user, secret) = server.machine_with_secret("m").await;
    let token = server.token(&user, &secret, flags).await;
    (server, user, token)
}

/// `latchkey verify <token> flags…` with no credential in the environment.
async fn verify(server: &TestServer, value: &str, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["verify", value];
    args.extend_from_slice(flags);
    let out = server.run(&[], &args).await;
    if !value.is_empty() {
        assert_not_echoed(&out, value);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_is_valid_and_its_claims_are_printed() {
    let (server, user, token) = with_token(&["--audience", "https://api.example"]).await;
    let out = verify(
        &server,
        &token,
        &["--mode", "test", "--audience", "https://api.example"],
    )
    .await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    let (verdict, claims) = text.split_once('\n').unwrap();
    assert_eq!(verdict, "valid: access token");
    let claims: Value = serde_json::from_str(claims).unwrap();
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["iss"], format!("{}/test", server.url));
    assert_eq!(claims["mode"], "test");
    assert_eq!(claims["tenantId"], WORKSPACE);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let out = verify(&server, &token, &["--mode", "test", "--json"]).await;
    assert_exit(&out, 0);
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["valid"], true);
    assert_eq!(body["claims"]["userId"], user.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_can_come_from_stdin_so_it_stays_out_of_the_shell_history() {
    let (server, _, token) = with_token(&[]).await;
    let out = server
        .run_with_stdin(
            &[],
            &["verify", "-", "--mode", "test"],
            Some(&format!("{token}\n")),
        )
        .await;
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("valid: access token\n"));
    assert_not_echoed(&out, &token);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_token_is_invalid_unless_test_mode_is_asked_for() {
    let (server, _, token) = with_token(&[]).await;
    let out = verify(&server, &token, &[]).await;
    assert_exit(&out, 1);
    let text = stdout(&out);
    // The live issuer does not even hold the key that signed it.
    assert!(text.starts_with("invalid: no key with kid"), "{text}");
    assert!(text.contains("says it is a test-mode token"), "{text}");
    assert!(text.contains("--mode test"), "{text}");
    let out = verify(&server, &token, &["--json"]).await;
    assert_exit(&out, 1);
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["code"], "unknown_kid");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_token_is_invalid_with_a_bad_signature() {
    let (server, _, token) = with_token(&[]).await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["authorization"] = serde_json::json!({"root": {"roles": ["admin"]}});
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let out = verify(&server, &forged, &["--mode", "test"]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: bad signature\n");

    let out = verify(&server, &forged, &["--mode", "test", "--json"]).await;
    assert_exit(&out, 1);
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["valid"], false);
    assert_eq!(body["code"], "bad_signature");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_audience_or_issuer_is_invalid() {
    let (server, _, token) = with_token(&["--audience", "https://a.example"]).await;
    let out = verify(
        &server,
        &token,
        &["--mode", "test", "--audience", "https://b.example"],
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("invalid: wrong audience"),
        "{}",
        stdout(&out)
    );
    let out = verify(
        &server,
        &token,
        &["--mode", "test", "--issuer", "https://evil.example"],
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("invalid: wrong issuer"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn something_that_is_not_a_token_is_invalid_without_asking_the_server() {
    let out = run_binary(
        &[],
        &["verify", "not-a-token", "--url", "http://127.0.0.1:9"],
        None,
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("invalid: malformed token"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_issuer_makes_verify_exit_with_2() {
    let (_server, _, token) = with_token(&[]).await;
    let out = run_binary(
        &[],
        &["verify", &token, "--url", "http://127.0.0.1:9"],
        None,
    )
    .await;
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.starts_with("error: fetching the issuer's metadata"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    assert_not_echoed(&out, &token);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_key_is_valid_with_its_details() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let (id, key) = server.api_key(&user, &["--remaining", "5"]).await;
    let out = server.admin(&["verify", &key]).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("valid: API key\n"), "{text}");
    for line in [
        format!("keyId:         {id}"),
        format!("userId:        {user}"),
        format!("tenantId:      {WORKSPACE}"),
        "mode:          test".to_owned(),
        "remaining:     4".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in {text}");
    }
    assert_not_echoed(&out, &key);

    // The JSON is the endpoint's answer as sent.
    let out = server.admin(&["verify", &key, "--json"]).await;
    assert_exit(&out, 0);
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (body["valid"].clone(), body["remaining"].clone()),
        (Value::Bool(true), 3.into())
    );
    assert_not_echoed(&out, &key);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_caller_may_be_another_api_key_or_an_access_token() {
    let server = TestServer::spawn().await;
    let (user, secret) = server.machine_with_secret("m").await;
    let (_, key) = server.api_key(&user, &[]).await;
    let (_, caller_key) = server.api_key(&user, &[]).await;
    let token = server.token(&user, &secret, &[]).await;
    for caller in [&caller_key, &token] {
        let out = server
            .run(&[("LATCHKEY_CALLER", caller)], &["verify", &key])
            .await;
        assert_exit(&out, 0);
        assert_not_echoed(&out, caller);
        assert_not_echoed(&out, &key);
    }
    let out = server.run(&[], &["verify", &key, "--caller", &token]).await;
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_is_invalid_with_its_code() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let (id, key) = server.api_key(&user, &[]).await;
    assert_success(&server.admin(&["api-keys", "revoke", &id]).await);
    let out = server.admin(&["verify", &key]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: revoked\n");
    let out = server.admin(&["verify", &key, "--json"]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out).trim(), r#"{"valid":false,"code":"revoked"}"#);
    assert_not_echoed(&out, &key);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_mistyped_keys_are_invalid() {
    let server = TestServer::spawn().await;
    let unknown = generate(Mode::Test, CredentialKind::ApiKey);
    let out = server.admin(&["verify", unknown.expose()]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: not_found\n");
    let mut typo = unknown.expose().to_owned();
    // Change the last character to a different one (whatever it was).
    let last = typo.pop().unwrap();
    typo.push(if last == 'A' { 'B' } else { 'A' });
    let out = server.admin(&["verify", &typo]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: malformed\n");
    assert_not_echoed(&out, &typo);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_another_mode_than_asked_for_is_invalid_without_a_request() {
    let key = generate(Mode::Test, CredentialKind::ApiKey);
    let out = run_binary(
        &[],
        &[
            "verify",
            key.expose(),
            "--mode",
            "live",
            "--url",
            "http://127.0.0.1:9",
        ],
        None,
    )
    .await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: wrong_mode\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_key_is_never_sent_over_plain_http() {
    let server = TestServer::spawn().await;
    let key = generate(Mode::Live, CredentialKind::ApiKey);
    let out = server.admin(&["verify", key.expose()]).await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
    assert_not_echoed(&out, key.expose());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_a_caller_is_a_usage_error() {
    let server = TestServer::spawn().await;
    let key = generate(Mode::Test, CredentialKind::ApiKey);
    let out = verify(&server, key.expose(), &[]).await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("LATCHKEY_CALLER"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_caller_exits_with_2_and_the_problem_code_without_secrets() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let (_, key) = server.api_key(&user, &[]).await;
    let wrong = generate(Mode::Test, CredentialKind::Admin);
    let out = server
        .run(&[("LATCHKEY_ADMIN_KEY", wrong.expose())], &["verify", &key])
        .await;
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.starts_with("error: unauthenticated"), "{err}");
    assert!(err.contains("(HTTP 401)"), "{err}");
    assert!(stdout(&out).is_empty());
    assert_not_echoed(&out, wrong.expose());
    assert_not_echoed(&out, &key);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_latchkey_credentials_are_a_usage_error() {
    let server = TestServer::spawn().await;
    let admin = server.test_admin.clone();
    let out = verify(&server, &admin, &[]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("this is an admin key"),
        "{}",
        stderr(&out)
    );
    let out = verify(&server, "", &[]).await;
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_budget_and_an_exceeded_rate_limit_show_their_codes() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let (_, budget) = server.api_key(&user, &["--remaining", "1"]).await;
    assert_exit(&server.admin(&["verify", &budget]).await, 0);
    let out = server.admin(&["verify", &budget]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: usage_exceeded\n");

    let (_, limited) = server.api_key(&user, &["--rate-limit", "1/3600"]).await;
    assert_exit(&server.admin(&["verify", &limited]).await, 0);
    let out = server.admin(&["verify", &limited]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: rate_limited\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_a_disabled_user_is_invalid() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let (_, key) = server.api_key(&user, &[]).await;
    assert_success(&server.admin(&["users", "update", &user, "--disable"]).await);
    let out = server.admin(&["verify", &key]).await;
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "invalid: disabled\n");
}
