//! `latchkey login`, `me` and `logout`: a machine-user logs in with a
//! password from standard input and a TOTP secret from a file, the session
//! is kept in a file only its owner can read, `me` shows it and prints a
//! token, `logout` ends it.

use latchkey_core::login::totp;
use serde_json::{json, Value};

use crate::helpers::{assert_not_echoed, assert_success, stdout, TestServer};

const PASSWORD: &str = "plum-kettle-orbit-9";

async fn api(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Value,
) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_machine_logs_in_with_a_password_and_totp_and_calls_an_api() {
    let server = TestServer::spawn().await;
    let admin = server.test_admin.clone();
    let user = api(
        &server,
        reqwest::Method::POST,
        "/v1/users",
        &admin,
        json!({"name": "robot", "email": "robot@example.com"}),
    )
    .await;
    let user = user["id"].as_str().unwrap().to_owned();
    api(
        &server,
        reqwest::Method::PUT,
        &format!("/v1/users/{user}/password"),
        &admin,
        json!({"password": PASSWORD}),
    )
    .await;
    // Enrol TOTP through the API with a first session.
    let login = api(
        &server,
        reqwest::Method::POST,
        "/auth/logins",
        "",
        json!({"identifier": user}),
    )
    .await;
    let (id, secret) = (
        login["id"].as_str().unwrap(),
        login["secret"].as_str().unwrap(),
    );
    let done = api(
        &server,
        reqwest::Method::POST,
        &format!("/auth/logins/{id}/password"),
        secret,
        json!({"password": PASSWORD}),
    )
    .await;
    let access = done["session"]["accessToken"].as_str().unwrap();
    let enrolment = api(
        &server,
        reqwest::Method::POST,
        "/v1/me/totp",
        access,
        json!(null),
    )
    .await;
    let totp_secret = enrolment["secret"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let code = totp::code_at(
        &totp::decode_secret(&totp_secret).unwrap(),
        totp::step_at(now),
    );
    api(
        &server,
        reqwest::Method::POST,
        "/v1/me/totp/confirm",
        access,
        json!({"code": code}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("totp.txt");
    std::fs::write(&secret_file, format!("{totp_secret}\n")).unwrap();
    let session_file = dir.path().join("state").join("session.json");
    let session = session_file.to_str().unwrap();
    let out = server
        .run_with_stdin(
            &[],
            &[
                "login",
                "--identifier",
                "robot@example.com",
                "--password-stdin",
                "--totp-secret-file",
                secret_file.to_str().unwrap(),
                "--session-file",
                session,
            ],
            Some(&format!("{PASSWORD}\n")),
        )
        .await;
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("Logged in as {user}")),
        "{}",
        stdout(&out)
    );
    assert_not_echoed(&out, PASSWORD);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&session_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the session file is its owner's only");
    }
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(&session_file).unwrap()).unwrap();
    assert_not_echoed(&out, kept["refreshToken"].as_str().unwrap());

    let out = server.run(&[], &["me", "--session-file", session]).await;
    assert_success(&out);
    let shown = stdout(&out);
    assert!(
        shown.contains(&user) && shown.contains("password + totp"),
        "{shown}"
    );
    // A token to call an API with: the session's, with sid and MFA.
    let out = server
        .run(&[], &["me", "--access-token", "--session-file", session])
        .await;
    assert_success(&out);
    let token = stdout(&out).trim().to_owned();
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", server.url))
        .bearer_auth(&admin)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let introspected: Value = r.json().await.unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["amr"], json!(["mfa", "otp", "pwd"]));

    let out = server
        .run(&[], &["logout", "--session-file", session])
        .await;
    assert_success(&out);
    assert!(!session_file.exists());
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", server.url))
        .bearer_auth(&admin)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["active"],
        false,
        "logout ends the session"
    );
    let out = server.run(&[], &["me", "--session-file", session]).await;
    assert!(!out.status.success());
}
