//! The admin commands and their error output, against the real server.

use latchkey_core::credential::{generate, CredentialKind};
use latchkey_core::Mode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn workspace_prints_a_record_with_the_issuer() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["workspace"]).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("id:              {WORKSPACE}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nissuer:          {}/test\n", server.url)),
        "{text}"
    );
    assert!(text.contains("\nmode:            test\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_prints_the_body_as_the_server_sent_it() {
    let server = TestServer::spawn().await;
    let body = server.admin_json(&["workspace"]).await;
    assert_eq!(body["id"], WORKSPACE);
    assert_eq!(body["issuer"], format!("{}/test", server.url));
    assert_eq!(body["tokenTtlSeconds"], 3600);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_all_follows_next_cursor_and_json_merges_the_pages() {
    let server = TestServer::spawn().await;
    for id in ["alpha", "beta", "gamma"] {
        assert_success(
            &server
                .admin(&["tenants", "create", "--id", id, "--name", id])
                .await,
        );
    }
    let every = server
        .admin_json(&["tenants", "list", "--limit", "1000"])
        .await;
    let total = every["data"].as_array().unwrap().len();
    assert!(total >= 3, "{every}");

    let out = server
        .admin(&["tenants", "list", "--all", "--limit", "1"])
        .await;
    assert_success(&out);
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        total + 1,
        "a header and every tenant: {text}"
    );
    for id in ["alpha", "beta", "gamma"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{text}"
        );
    }
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let merged = server
        .admin_json(&["tenants", "list", "--all", "--limit", "1"])
        .await;
    assert_eq!(merged["data"].as_array().unwrap().len(), total);
    assert_eq!(merged["nextCursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_page_mentions_the_next_cursor_on_stderr() {
    let server = TestServer::spawn().await;
    for id in ["alpha", "beta"] {
        assert_success(
            &server
                .admin(&["tenants", "create", "--id", id, "--name", id])
                .await,
        );
    }
    let out = server.admin(&["tenants", "list", "--limit", "1"]).await;
    assert_success(&out);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(stderr(&out).contains("--cursor "), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_problem_prints_its_code_and_detail_on_one_line_and_exits_with_1() {
    let server = TestServer::spawn().await;
    let out = server.admin(&["tenants", "get", "missing"]).await;
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.starts_with("error: not_found: "), "{err}");
    assert!(err.ends_with(" (HTTP 404)\n"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(stdout(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_admin_key_exits_with_1_and_the_problem_code_without_echoing_it() {
    let server = TestServer::spawn().await;
    let wrong = generate(Mode::Test, CredentialKind::Admin);
    for args in [&["workspace"][..], &["api-keys", "list"][..]] {
        let out = server
            .run(&[("LATCHKEY_ADMIN_KEY", wrong.expose())], args)
            .await;
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(err.starts_with("error: unauthenticated"), "{err}");
        assert!(err.contains("(HTTP 401)"), "{err}");
        assert_not_echoed(&out, wrong.expose());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_admin_key_is_refused_before_any_request_without_echoing_it() {
    let server = TestServer::spawn().await;
    let mut typo = server.test_admin.clone();
    typo.pop();
    typo.push('!');
    let out = server
        .run(&[("LATCHKEY_ADMIN_KEY", &typo)], &["workspace"])
        .await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("not a Latchkey credential"),
        "{}",
        stderr(&out)
    );
    assert_not_echoed(&out, &typo);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_admin_key_is_not_sent_over_plain_http() {
    let server = TestServer::spawn().await;
    let live = server.live_admin.clone();
    let out = server
        .run(&[("LATCHKEY_ADMIN_KEY", &live)], &["workspace"])
        .await;
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
    assert_not_echoed(&out, &live);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_create_stores_what_the_flags_say() {
    let server = TestServer::spawn().await;
    let out = server
        .admin(&[
            "tenants",
            "create",
            "--id",
            "acme",
            "--name",
            "Acme",
            "--no-cascade",
            "--metadata",
            r#"{"plan":"pro"}"#,
        ])
        .await;
    assert_success(&out);
    assert!(
        stdout(&out).starts_with("id:        acme\n"),
        "{}",
        stdout(&out)
    );
    let tenant = server.admin_json(&["tenants", "get", "acme"]).await;
    assert_eq!(tenant["cascade"], false);
    assert_eq!(tenant["parentId"], WORKSPACE);
    assert_eq!(tenant["metadata"]["plan"], "pro");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_update_clears_with_null_and_keeps_the_rest() {
    let server = TestServer::spawn().await;
    let user = server
        .admin_json(&[
            "users",
            "create",
            "--name",
            "sensor",
            "--email",
            "s@example.com",
            "--username",
            "sensor-1",
        ])
        .await;
    let id = user["id"].as_str().unwrap();
    let out = server
        .admin(&["users", "update", id, "--clear-email", "--disable"])
        .await;
    assert_success(&out);
    let user = server.admin_json(&["users", "get", id]).await;
    assert_eq!(user["email"], Value::Null);
    assert_eq!(user["username"], "sensor-1");
    assert_eq!(user["disabled"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_and_ended_memberships_print_a_sentence() {
    let server = TestServer::spawn().await;
    assert_success(
        &server
            .admin(&["tenants", "create", "--id", "acme", "--name", "Acme"])
            .await,
    );
    assert_success(
        &server
            .admin(&["roles", "set", "reader", "--permission", "a:read"])
            .await,
    );
    let (user, _) = server.machine_with_secret("m").await;
    let out = server
        .admin(&["members", "set", "acme", &user, "--role", "reader"])
        .await;
    assert_success(&out);
    assert!(
        stdout(&out).contains("roles:     reader\n"),
        "{}",
        stdout(&out)
    );
    let out = server.admin(&["members", "set", "acme", &user]).await;
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        format!("Removed user {user} from tenant acme.\n")
    );
    let out = server.admin(&["tenants", "delete", "acme"]).await;
    assert_success(&out);
    assert_eq!(stdout(&out), "Deleted tenant acme.\n");
    assert_exit(&server.admin(&["tenants", "get", "acme"]).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_secret_is_printed_once_with_a_warning_and_never_listed() {
    let server = TestServer::spawn().await;
    let user = server.admin_json(&["users", "create", "--name", "m"]).await;
    let user = user["id"].as_str().unwrap();
    let out = server
        .admin(&["secrets", "create", user, "--name", "edge"])
        .await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("shown only this once"), "{text}");
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("    "))
        .expect("the secret on its own indented line")
        .to_owned();
    assert!(secret.starts_with("lk_test_secret_"), "{text}");
    let out = server.admin(&["secrets", "list", user]).await;
    assert_success(&out);
    assert!(stdout(&out).contains("edge"));
    assert_not_echoed(&out, &secret);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_prints_only_the_token_and_decode_adds_header_and_claims() {
    let server = TestServer::spawn().await;
    let (user, secret) = server.machine_with_secret("m").await;
    let token = server.token(&user, &secret, &[]).await;
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert!(!token.contains('\n'));

    let out = server
        .run(
            &[("LATCHKEY_CLIENT_SECRET", &secret)],
            &["token", "--client-id", &user, "--decode"],
        )
        .await;
    assert_success(&out);
    let text = stdout(&out);
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first.split('.').count(), 3);
    assert!(rest.contains("\"typ\": \"at+jwt\""), "{rest}");
    assert!(rest.contains(&format!("\"sub\": \"{user}\"")), "{rest}");
    assert!(stderr(&out).contains("NOT verified"));
    assert_not_echoed(&out, &secret);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_errors_show_the_oauth_error_without_the_secret() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let wrong = generate(Mode::Test, CredentialKind::ClientSecret);
    let out = server
        .run(
            &[],
            &[
                "token",
                "--client-id",
                &user,
                "--client-secret",
                wrong.expose(),
            ],
        )
        .await;
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.starts_with("error: invalid_client"), "{err}");
    assert!(err.ends_with("(HTTP 401)\n"), "{err}");
    assert_not_echoed(&out, wrong.expose());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_named() {
    let server = TestServer::spawn().await;
    let key = server.test_admin.clone();
    let out = run_binary(
        &[("LATCHKEY_ADMIN_KEY", &key)],
        &["workspace", "--url", "http://127.0.0.1:9"],
        None,
    )
    .await;
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with("error: request to http://127.0.0.1:9/v1/workspace could not connect"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_rotate_publishes_a_next_key_and_list_shows_the_phases() {
    let server = TestServer::spawn().await;
    let before = server.admin_json(&["signing-keys", "list"]).await;
    assert_eq!(before["data"].as_array().unwrap().len(), 1);
    assert_eq!(before["data"][0]["status"], "active");
    let rotated = server
        .admin_json(&["signing-keys", "rotate", "--alg", "ES256"])
        .await;
    assert_eq!(rotated["status"], "next");
    assert_eq!(rotated["alg"], "ES256");
    let out = server.admin(&["signing-keys", "list"]).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.starts_with("KID"), "{text}");
    assert!(text.contains("next") && text.contains("active"), "{text}");
    assert!(!text.contains("\"d\""), "no private key material: {text}");
    let bad = server
        .admin(&["signing-keys", "rotate", "--alg", "HS256"])
        .await;
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("invalid_request"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread")]
async fn live_admin_commands_work_over_tls_when_the_development_ca_is_trusted() {
    let server = TestServer::spawn_tls().await;
    let ca = server.data_dir().join("tls/ca.pem");
    let ca = ca.to_str().unwrap().to_owned();
    let live = server.live_admin.clone();
    // Without the CA the certificate is not trusted: a clear network error.
    let out = server
        .run(&[("LATCHKEY_ADMIN_KEY", &live)], &["workspace", "--json"])
        .await;
    assert_exit(&out, 1);
    assert_not_echoed(&out, &live);
    // With it, a live admin key crosses TLS only, as it must.
    let out = server
        .run(
            &[("LATCHKEY_ADMIN_KEY", &live), ("LATCHKEY_CA_FILE", &ca)],
            &["workspace", "--json"],
        )
        .await;
    assert_success(&out);
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["mode"], "live");
    assert!(body["issuer"].as_str().unwrap().starts_with("https://"));
    let bad = server
        .run(
            &[
                ("LATCHKEY_ADMIN_KEY", &live),
                ("LATCHKEY_CA_FILE", "/nonexistent/ca.pem"),
            ],
            &["workspace"],
        )
        .await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("LATCHKEY_CA_FILE"),
        "{}",
        stderr(&bad)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_lists_what_admin_commands_did_with_filters() {
    let server = TestServer::spawn().await;
    server
        .admin_json(&["signing-keys", "rotate", "--alg", "ES256"])
        .await;
    let (user, _) = server.machine_with_secret("audited").await;
    let all = server.admin_json(&["audit", "--all"]).await;
    let actions: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "client_secret.created",
            "user.created",
            "signing_key.rotated",
            // The first start, newest first.
            "admin_key.created",
            "signing_key.created",
            "workspace.created",
        ]
    );
    let filtered = server
        .admin_json(&["audit", "--action", "user.created", "--target", &user])
        .await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let out = server.admin(&["audit", "--limit", "1"]).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.starts_with("TIME"), "{text}");
    assert!(
        text.contains("client_secret.created") && text.contains("admin_key:adm_"),
        "{text}"
    );
    assert!(stderr(&out).contains("--cursor"), "{}", stderr(&out));
    let bad = server.admin(&["audit", "--since", "yesterday"]).await;
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}
