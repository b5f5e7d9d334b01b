//! Codes and links: email and SMS codes and magic links complete logins;
//! test mode without a channel writes to the test outbox; a real SMTP
//! server (Python's aiosmtpd) receives the codes; the SMS webhook's
//! requests are signed; a failed delivery consumes nothing.

use std::sync::{Arc, Mutex};

use latchkey_core::login::codes::webhook_signature;
use latchkey_types::Mode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{decode_claims, spawn_app_with, Backend, Reply, TestApp};

async fn user_with(app: &TestApp, email: &str, phone: Option<&str>) -> String {
    let mut body = json!({"name": "courier", "email": email});
    if let Some(p) = phone {
        body["phoneNumber"] = p.into();
    }
    app.post("/v1/users", body).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn start(app: &TestApp, identifier: &str) -> (String, String) {
    let r = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"identifier": identifier})),
        )
        .await;
    let login = r.expect(201);
    (
        login["id"].as_str().unwrap().to_owned(),
        login["secret"].as_str().unwrap().to_owned(),
    )
}

async fn step(app: &TestApp, id: &str, secret: &str, factor: &str, body: Value) -> Reply {
    app.send(
        Method::POST,
        &format!("/auth/logins/{id}/{factor}"),
        Some(secret),
        Some(body),
    )
    .await
}

async fn outbox(app: &TestApp, to: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/test-outbox?to={}", urlencode(to)))
        .await;
    r.expect(200)["data"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The 6-digit code in a message's text.
fn code_in(text: &str) -> String {
    let at = text.find("code is ").expect("a code") + "code is ".len();
    text[at..at + 6].to_owned()
}

async fn email_codes_and_magic_links_complete_logins_through_the_outbox(app: TestApp) {
    let email = "courier@example.com";
    user_with(&app, email, None).await;
    let (id, secret) = start(&app, email).await;
    let sent = step(&app, &id, &secret, "email-code", json!({})).await;
    assert_eq!(sent.expect(200)["complete"], false);
    let messages = outbox(&app, email).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["channel"], "email");
    let code = code_in(messages[0]["text"].as_str().unwrap());
    // No second message within 30 s.
    let again = step(&app, &id, &secret, "email-code", json!({})).await;
    again.expect_problem(429, "rate_limited");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    step(&app, &id, &secret, "email-code", json!({"code": wrong}))
        .await
        .expect_problem(401, "invalid_credentials");
    let done = step(
        &app,
        &id,
        &secret,
        "email-code",
        json!({"code": code.clone()}),
    )
    .await;
    let done = done.expect(200);
    assert_eq!(done["complete"], true);
    assert_eq!(
        decode_claims(done["session"]["accessToken"].as_str().unwrap())["amr"],
        json!(["otp"])
    );
    // The code proved the address; a new address is unproven.
    let users = app.get("/v1/users").await;
    let me = users.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .cloned()
        .unwrap();
    assert_eq!(me["emailVerified"], true);
    let id_of = me["id"].as_str().unwrap().to_owned();
    let changed = app
        .patch(
            &format!("/v1/users/{id_of}"),
            json!({"email": "courier2@example.com"}),
        )
        .await;
    assert_eq!(changed.expect(200)["emailVerified"], false);
    let back = app
        .patch(
            &format!("/v1/users/{id_of}"),
            json!({"email": email, "emailVerified": true}),
        )
        .await;
    assert_eq!(back.expect(200)["emailVerified"], true);

    // A code dies after five wrong tries, even the right one after them.
    let (id, secret) = start(&app, email).await;
    step(&app, &id, &secret, "email-code", json!({}))
        .await
        .expect(200);
    let code = code_in(
        outbox(&app, email).await.last().unwrap()["text"]
            .as_str()
            .unwrap(),
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        step(&app, &id, &secret, "email-code", json!({"code": wrong}))
            .await
            .expect_problem(401, "invalid_credentials");
    }
    step(&app, &id, &secret, "email-code", json!({"code": code}))
        .await
        .expect_problem(410, "login_expired");

    // A magic link: the GET shows a page and consumes nothing; the POST
    // does, and the polling device gets the session.
    app.clock.advance(61);
    let (id, secret) = start(&app, email).await;
    step(&app, &id, &secret, "magic-link", json!({}))
        .await
        .expect(200);
    let text = outbox(&app, email).await.last().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = text
        .lines()
        .find(|l| l.contains("/auth/magic?token="))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/auth/magic?token=lk_test_link_", app.base)),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();
    for _ in 0..2 {
        let page = app.client.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        assert!(page.text().await.unwrap().contains("method=\"post\""));
    }
    let poll = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(
        poll.expect(200)["complete"],
        false,
        "a GET never consumes the link"
    );
    let confirm = app
        .client
        .post(app.url("/auth/magic"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    let poll = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id}"),
            Some(&secret),
            None,
        )
        .await;
    let poll = poll.expect(200);
    assert_eq!(poll["complete"], true);
    assert!(poll["session"]["refreshToken"]
        .as_str()
        .unwrap()
        .starts_with("lk_test_refresh_"));
    let twice = app
        .client
        .post(app.url("/auth/magic"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 404, "a link works once");

    // An unknown identifier gets the same answer and no message.
    let (id, secret) = start(&app, "ghost@example.com").await;
    let r = step(&app, &id, &secret, "email-code", json!({})).await;
    assert_eq!(r.expect(200)["complete"], false);
    assert!(outbox(&app, "ghost@example.com").await.is_empty());
    step(&app, &id, &secret, "email-code", json!({"code": "123456"}))
        .await
        .expect_problem(401, "invalid_credentials");
    // The outbox is test mode's only.
    let live = app
        .send(
            Method::GET,
            "/v1/test-outbox",
            Some(app.admin(Mode::Live)),
            None,
        )
        .await;
    live.expect_problem(404, "not_found");
}

/// `python3` with aiosmtpd, or `None` (refused under CI, which installs it).
fn aiosmtpd() -> Option<()> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output();
    if matches!(&probe, Ok(o) if o.status.success()) {
        return Some(());
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must have aiosmtpd installed"
    );
    eprintln!("skipped: python3 with aiosmtpd is not available");
    None
}

#[tokio::test]
async fn a_real_smtp_server_receives_the_code_and_a_dead_one_consumes_nothing() {
    if aiosmtpd().is_none() {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut smtp = tokio::process::Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Debugging",
            "stdout",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.smtp_url = Some(url);
        s.mail_from = Some("Latchkey <login@example.com>".into());
    })
    .await
    .unwrap();
    let email = "mailbox@example.com";
    user_with(&app, email, None).await;
    let (id, secret) = start(&app, email).await;
    step(&app, &id, &secret, "email-code", json!({}))
        .await
        .expect(200);
    assert!(
        outbox(&app, email).await.is_empty(),
        "a configured channel, not the outbox"
    );
    // Read what the SMTP server printed until the code shows.
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(smtp.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let code = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("code is ") {
                return code_in(&line);
            }
        }
        panic!("the SMTP server ended without the message:\n{seen}");
    })
    .await
    .expect("the message reached the SMTP server");
    assert!(
        seen.contains("login@example.com") || seen.contains("mailbox@example.com"),
        "{seen}"
    );
    let done = step(&app, &id, &secret, "email-code", json!({"code": code})).await;
    assert_eq!(done.expect(200)["complete"], true);

    // With the SMTP server gone: 503, and no code is waiting to be checked.
    smtp.kill().await.unwrap();
    let _ = smtp.wait().await;
    let (id, secret) = start(&app, email).await;
    step(&app, &id, &secret, "email-code", json!({}))
        .await
        .expect_problem(503, "delivery_failed");
    step(&app, &id, &secret, "email-code", json!({"code": "123456"}))
        .await
        .expect_problem(400, "invalid_request");
}

#[tokio::test]
async fn sms_codes_go_through_a_signed_webhook() {
    // A webhook receiver that keeps what it gets.
    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Received = Arc::default();
    let kept = Arc::clone(&received);
    let hook = axum::Router::new().route(
        "/sms",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let signature = headers["latchkey-signature"].to_str().unwrap().to_owned();
                    kept.lock().unwrap().push((signature, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!(
        "http://127.0.0.1:{}/sms",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.sms_webhook_url = Some(hook_url);
        s.sms_webhook_secret = Some("whsec_test".into());
    })
    .await
    .unwrap();
    let phone = "+15550100";
    let user = user_with(&app, "sms@example.com", Some(phone)).await;
    app.put(
        "/v1/tenants/acme-ws/login-policy",
        json!({"require": [["sms_code"]]}),
    )
    .await
    .expect(200);
    let (id, secret) = start(&app, &user).await;
    step(&app, &id, &secret, "sms-code", json!({}))
        .await
        .expect(200);
    let (signature, body) = received
        .lock()
        .unwrap()
        .pop()
        .expect("the webhook was called");
    let t: i64 = signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        webhook_signature("whsec_test", t, &body),
        "signed with the secret"
    );
    let sms: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sms["to"], phone);
    let code = code_in(sms["text"].as_str().unwrap());
    let done = step(&app, &id, &secret, "sms-code", json!({"code": code})).await;
    let done = done.expect(200);
    assert_eq!(done["complete"], true);
    assert_eq!(
        decode_claims(done["session"]["accessToken"].as_str().unwrap())["amr"],
        json!(["sms"])
    );
}

crate::on_both_stores!(email_codes_and_magic_links_complete_logins_through_the_outbox);
