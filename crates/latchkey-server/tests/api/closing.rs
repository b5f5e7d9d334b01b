//! No response is lost to a connection reset. A request whose body the
//! server never reads (a GET with a body, a request refused before its body
//! was needed, an oversized body) makes the server close the connection
//! after answering; if it closed with those bytes unread, the kernel would
//! send a reset and destroy the part of the answer the client had not read
//! yet. Each case sends the body after the headers (as Python's `requests`
//! does), so the server answers before the body arrives, then reads the
//! answer only after a pause, when a reset would already have arrived, and
//! must get all of it.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// Sends `head`, then `body` after `gap`, waits `pause`, then reads one
/// response: its status code and body length (checked against
/// `Content-Length`). An I/O error (a reset) is returned as such.
async fn exchange(
    app: &TestApp,
    head: &str,
    body: &[u8],
    gap: Duration,
    pause: Duration,
) -> std::io::Result<(u16, usize)> {
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://")).await?;
    let head = format!("{head}Content-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await?;
    tokio::time::sleep(gap).await;
    s.write_all(body).await?;
    tokio::time::sleep(pause).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (status, header_end, length) = loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes of headers", got.len()),
            ));
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status: u16 = head[9..12].parse().expect("a status line");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().expect("a length"))
                .expect("a Content-Length");
            break (status, end + 4, length);
        }
    };
    while got.len() < header_end + length {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed after {} of {length} body bytes",
                    got.len() - header_end
                ),
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok((status, length))
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_to_requests_with_unread_bodies_arrive_whole() {
    // Plain HTTP, no trusted proxy: a live key in a header is refused
    // before the body is read.
    let app = spawn_app_with(Backend::Sqlite, |s| s.trusted_proxies = None)
        .await
        .unwrap();
    let admin = format!("Authorization: Bearer {}\r\n", app.test_admin);
    let live = format!("Authorization: Bearer {}\r\n", app.live_admin);
    let json = |n: usize| format!("{{\"name\": \"{}\"}}", "a".repeat(n)).into_bytes();
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        (
            "a GET with a JSON body, to a large answer",
            "GET /openapi.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".into(),
            b"{}".to_vec(),
            200,
        ),
        (
            "a GET with a body and no content type, to a large answer",
            "GET /openapi.json HTTP/1.1\r\nHost: x\r\n".into(),
            vec![b'x'; 4096],
            200,
        ),
        (
            "a POST refused for its missing credential",
            "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".into(),
            json(32 * 1024),
            401,
        ),
        (
            "a POST refused for a live key over plain HTTP",
            format!(
                "POST /oauth/introspect HTTP/1.1\r\nHost: x\r\n{live}\
                 Content-Type: application/x-www-form-urlencoded\r\n"
            ),
            format!("token={}", "b".repeat(32 * 1024)).into_bytes(),
            403,
        ),
        (
            "a POST refused for its size",
            format!(
                "POST /v1/users HTTP/1.1\r\nHost: x\r\n{admin}Content-Type: application/json\r\n"
            ),
            json(100 * 1024),
            413,
        ),
    ];
    for (what, head, body, expected) in &cases {
        for attempt in 0..12 {
            // The body follows the headers at once or after the answer
            // was sent; the answer is read at once (the usual client) or
            // after the server has answered and closed.
            let gap = Duration::from_millis(if attempt % 2 == 0 { 0 } else { 30 });
            let pause = Duration::from_millis(if attempt % 4 < 2 { 0 } else { 150 });
            match exchange(&app, head, body, gap, pause).await {
                Ok((status, _)) => assert_eq!(status, *expected, "{what}"),
                Err(e) => panic!("{what}: attempt {attempt} lost its answer: {e}"),
            }
        }
    }
}
