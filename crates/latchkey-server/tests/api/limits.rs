//! Connection and request limits: a slow client cannot hold a connection
//! (header-read and request timeouts), open connections are capped, and
//! bodies and headers have size caps.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, Backend, TestApp};

async fn app_with_limits() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.max_connections = Some(3);
        s.header_read_timeout_seconds = Some(1);
        s.request_timeout_seconds = Some(1);
    })
    .await
    .unwrap()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what was read and when the close came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    Some(start.elapsed()),
                )
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = app_with_limits().await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let closed = closed.expect("the server kept a half-sent request open");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let app = app_with_limits().await;
    let mut s = connect(&app).await;
    s.write_all(
        b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type",
    )
    .await
    .unwrap();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?} {closed:?}");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let app = app_with_limits().await;
    // Three open connections, each having completed a request.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&app).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // A fourth is closed without an answer.
    let mut extra = connect(&app).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (text, closed) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(closed.is_some() && text.is_empty(), "{text:?} {closed:?}");
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let start = Instant::now();
    loop {
        let r = reqwest::get(app.url("/healthz")).await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no slot came free"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    // The closed connections' slots come free once the server has seen
    // them close (and drained them), a moment after the client drops them.
    let start = Instant::now();
    let metrics = loop {
        if let Ok(r) = reqwest::get(app.url("/metrics")).await {
            break r.text().await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no slot came free"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("latchkey_connections_refused_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.unwrap();
    let big = "a".repeat(70 * 1024);
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&client_secret={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(&app.test_admin)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "b".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
}
