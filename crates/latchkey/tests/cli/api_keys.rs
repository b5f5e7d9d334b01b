//! `latchkey api-keys`: the whole lifecycle against the real server, with
//! `latchkey verify` as the receiving side.

use serde_json::Value;

use crate::helpers::*;

/// The value printed on its own indented line by `create` and `rotate`.
fn shown_key(text: &str) -> String {
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("    "))
        .unwrap_or_else(|| panic!("no key line in: {text}"));
    assert!(key.starts_with("lk_test_key_"), "{text}");
    key.to_owned()
}

/// `latchkey verify <key>` with the admin key as caller: (exit, stdout).
async fn verify_key(server: &TestServer, key: &str) -> (i32, String) {
    let out = server.admin(&["verify", key]).await;
    assert_not_echoed(&out, key);
    (out.status.code().unwrap(), stdout(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_lives_through_create_get_list_rotate_and_revoke() {
    let server = TestServer::spawn().await;
    assert_success(
        &server
            .admin(&["tenants", "create", "--id", "eu", "--name", "EU"])
            .await,
    );
    assert_success(
        &server
            .admin(&["roles", "set", "operator", "--permission", "t:write"])
            .await,
    );
    let (user, _) = server.machine_with_secret("sensor").await;
    assert_success(
        &server
            .admin(&["members", "set", "eu", &user, "--role", "operator"])
            .await,
    );

    // Create: the value set apart, with the warning, then the record.
    let out = server
        .admin(&[
            "api-keys",
            "create",
            "--user",
            &user,
            "--tenant",
            "eu",
            "--name",
            "gateway",
            "--role",
            "operator",
            "--expires-at",
            "2099-01-01T00:00:00Z",
            "--metadata",
            r#"{"site":"berlin"}"#,
            "--rate-limit",
            "100/60",
            "--remaining",
            "10",
        ])
        .await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with("New API key. Copy it now: it is shown only this once"),
        "{text}"
    );
    let first = shown_key(&text);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(id.starts_with("key_"), "{text}");
    for line in [
        "tenantId:   eu",
        "name:       gateway",
        "roles:      operator",
        "ratelimit:  100/60s",
        "remaining:  10",
        "metadata:   {\"site\":\"berlin\"}",
        "expiresAt:  2099-01-01T00:00:00Z",
        "revokedAt:  -",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in {text}");
    }

    // Get and list: the record, never the value.
    let out = server.admin(&["api-keys", "get", &id]).await;
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("userId:     {user}\n")),
        "{}",
        stdout(&out)
    );
    assert_not_echoed(&out, &first);
    let out = server.admin(&["api-keys", "list", "--user", &user]).await;
    assert_success(&out);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(stdout(&out).contains(&id));
    assert_not_echoed(&out, &first);
    let listed = server
        .admin_json(&["api-keys", "list", "--tenant", "eu"])
        .await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&first));

    let (code, text) = verify_key(&server, &first).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("remaining:     9\n"), "one use spent: {text}");

    // Rotate with a grace period: both values work.
    let out = server
        .admin(&["api-keys", "rotate", &id, "--grace-period", "300"])
        .await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("New value of API key {id}.")),
        "{text}"
    );
    assert!(
        text.contains("keeps working for 300 more seconds"),
        "{text}"
    );
    let second = shown_key(&text);
    assert_ne!(first, second);
    assert_eq!(verify_key(&server, &first).await.0, 0);
    assert_eq!(verify_key(&server, &second).await.0, 0);

    // Rotate without one: the value before stops at once.
    let rotated = server.admin_json(&["api-keys", "rotate", &id]).await;
    let third = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["id"], id.as_str());
    let (code, text) = verify_key(&server, &second).await;
    assert_eq!((code, text.as_str()), (1, "invalid: revoked\n"));
    assert_eq!(verify_key(&server, &third).await.0, 0);

    // Revoke: every value stops.
    let out = server.admin(&["api-keys", "revoke", &id]).await;
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        format!("Revoked API key {id}: every value of it stops working now.\n")
    );
    for key in [&first, &third] {
        let (code, text) = verify_key(&server, key).await;
        assert_eq!((code, text.as_str()), (1, "invalid: revoked\n"));
    }
    let record = server.admin_json(&["api-keys", "get", &id]).await;
    assert!(record["revokedAt"].is_string(), "{record}");
    assert_eq!(
        record["remaining"], 6,
        "four successful verifications: {record}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_roles_carries_all_of_the_users_roles() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let out = server.admin(&["api-keys", "create", "--user", &user]).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("\nroles:      - (all of the user's roles there)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\ntenantId:   {WORKSPACE}\n")),
        "{text}"
    );
    assert!(text.contains("\nremaining:  - (unlimited)\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_list_all_follows_the_cursor() {
    let server = TestServer::spawn().await;
    let (user, _) = server.machine_with_secret("m").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(server.api_key(&user, &[]).await.0);
    }
    let out = server
        .admin(&["api-keys", "list", "--user", &user, "--limit", "1", "--all"])
        .await;
    assert_success(&out);
    for id in &ids {
        assert!(stdout(&out).contains(id.as_str()), "{}", stdout(&out));
    }
    let merged = server
        .admin_json(&["api-keys", "list", "--limit", "2", "--all"])
        .await;
    assert_eq!(merged["data"].as_array().unwrap().len(), 3);
    assert_eq!(merged["nextCursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_errors_show_the_problem_code_and_exit_with_1() {
    let server = TestServer::spawn().await;
    let out = server
        .admin(&["api-keys", "create", "--user", "usr_doesnotexist"])
        .await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with("error: not_found"),
        "{}",
        stderr(&out)
    );
    let out = server.admin(&["api-keys", "revoke", "key_nope"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with("error: not_found"),
        "{}",
        stderr(&out)
    );

    let (user, _) = server.machine_with_secret("m").await;
    let out = server
        .admin(&[
            "api-keys",
            "create",
            "--user",
            &user,
            "--expires-at",
            "2001-01-01T00:00:00Z",
        ])
        .await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with("error: invalid_request"),
        "{}",
        stderr(&out)
    );
    let (id, _) = server.api_key(&user, &[]).await;
    let out = server
        .admin(&["api-keys", "rotate", &id, "--grace-period", "99999999"])
        .await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with("error: invalid_request"),
        "{}",
        stderr(&out)
    );
}
