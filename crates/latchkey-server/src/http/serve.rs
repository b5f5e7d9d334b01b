//! The connection loop: accepts TCP connections (and, with TLS, runs each
//! handshake in its own task), and serves HTTP/1.1 and HTTP/2 on them with
//! hyper, within limits:
//!
//! - **connections:** at most `max_connections` at once; a connection over
//!   the cap is closed at once (and counted), never queued;
//! - **header read:** a client must send a request's headers within
//!   `header_read_timeout` (also between requests on a kept-alive
//!   connection), so a slow or silent peer cannot hold a slot;
//! - **requests:** a request (reading its body included) must be answered
//!   within `request_timeout`, else 408 (the app's timeout layer);
//! - **TLS handshake:** 10 s;
//! - **lingering close:** when a connection ends, what the client sent and
//!   nobody read (the body of a request answered without reading it: a GET
//!   with a body, a request refused before its body was needed) is read and
//!   discarded, within [`LINGER_BYTES`] and [`LINGER_TIME`], before the
//!   socket closes. Closing a socket with unread bytes makes the kernel
//!   answer with a reset, and a reset destroys the part of the response the
//!   client has not read yet.
//!
//! Handlers see the peer as `ConnectInfo<SocketAddr>`; requests that came
//! over native TLS also carry [`NativeTls`]. On shutdown the loop stops
//! accepting and lets open connections finish their requests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

use crate::http::tls::{NativeTls, TlsReloader, HANDSHAKE_TIMEOUT};

/// The connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Longest wait for a request's headers.
    pub header_read_timeout: Duration,
    /// Longest time to answer one request, body included.
    pub request_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// How long open connections get to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Most unread bytes a closing connection reads and discards (four times
/// the body limit: an oversized body refused with 413 is drained too).
pub const LINGER_BYTES: usize = 4 * crate::app::MAX_BODY_BYTES;

/// Longest a closing connection waits for the client's unread bytes and
/// its close.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish: over TLS when `tls` is given, else plain HTTP.
pub(crate) async fn serve<F>(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsReloader>>,
    limits: ConnLimits,
    refused: impl Fn() + Send + Sync + 'static,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    let app = match tls {
        Some(_) => app.layer(axum::Extension(NativeTls)),
        None => app,
    };
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            refused();
            tracing::debug!(%peer, "connection refused: at the connection cap");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tcp = Lingering::new(tcp, permit);
        let app = app.clone();
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        match &tls {
            None => {
                tokio::spawn(async move {
                    run_connection(&builder, tcp, peer, app, watcher).await;
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    run_connection(&builder, stream, peer, app, watcher).await;
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// Serves one connection with `app`, putting the peer's address on each
/// request, until it closes or the graceful shutdown ends it.
async fn run_connection<S>(
    builder: &Builder<TokioExecutor>,
    stream: S,
    peer: SocketAddr,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A connection's socket that closes gracefully. It holds the connection's
/// slot; when hyper drops it (after its shutdown has sent FIN), a task reads
/// and discards whatever the client still sends, until the client closes
/// its side, [`LINGER_BYTES`] were read or [`LINGER_TIME`] passed, and only
/// then closes the socket and frees the slot (as Apache's and nginx's
/// lingering close do).
#[derive(Debug)]
struct Lingering {
    /// `None` only once dropped.
    stream: Option<TcpStream>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lingering {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit) -> Self {
        Lingering {
            stream: Some(stream),
            permit: Some(permit),
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(stream), permit) = (self.stream.take(), self.permit.take()) else {
            return;
        };
        // Outside a runtime (never, in the server) the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, permit));
        }
    }
}

/// Sends FIN (if hyper has not), then reads and discards until the client
/// closes, within [`LINGER_BYTES`] and [`LINGER_TIME`].
async fn linger(mut stream: TcpStream, permit: Option<OwnedSemaphorePermit>) {
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut buf = [0u8; 8192];
    let mut drained = 0usize;
    while drained <= LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
    drop(stream);
    drop(permit);
}

/// As axum does: a connection that died before it was accepted is ignored;
/// anything else (such as running out of file descriptors) is logged and
/// retried after a pause instead of spinning.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
