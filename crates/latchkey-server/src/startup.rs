//! Start-up: open the store, bootstrap it on first start, build the app,
//! bind, and serve (plain HTTP, or native TLS reloaded on SIGHUP) until
//! SIGTERM or Ctrl-C with a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use latchkey_core::clock::{Clock, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, Database};
use crate::http::tls::TlsReloader;
use crate::state::AppState;
use crate::tokens::denylist::DenyList;
use latchkey_store::Store;

/// How long a stopping server waits for queued audit events to be written.
const AUDIT_FLUSH_ON_STOP: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be opened, migrated or bootstrapped.
    #[error("store: {0}")]
    Store(#[from] latchkey_store::StoreError),
    /// Binding or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bootstrap material is unusable (for example a malformed admin key).
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// The TLS certificate or key is missing, malformed or mismatched.
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
}

/// A server running in the background (tests, embedding).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    tls: Option<Arc<TlsReloader>>,
}

impl RunningServer {
    /// Reads the TLS certificate and key files again (what SIGHUP does for
    /// `run`): new handshakes use them, open connections are untouched. On
    /// failure the previous certificate stays in use.
    pub fn reload_tls(&self) -> Result<(), ServerError> {
        match &self.tls {
            Some(tls) => Ok(tls.reload()?),
            None => Err(ServerError::Config(crate::config::ConfigError(
                "TLS is not enabled on this server".into(),
            ))),
        }
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ServerError::Io(std::io::Error::other(e))),
        }
    }
}

/// Starts the server in the background with the given clock, on
/// `config.listen`.
pub async fn spawn(config: Config, clock: Arc<dyn Clock>) -> Result<RunningServer, ServerError> {
    let listener = TcpListener::bind(config.listen).await?;
    spawn_on(listener, config, clock).await
}

/// Starts the server in the background on an already bound listener (so a
/// test can bind port 0 and name the issuer after the real port first).
pub async fn spawn_on(
    listener: TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<RunningServer, ServerError> {
    let tls = crate::http::tls::setup(&config)?;
    let (app, state) = build(&config, clock).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let serving = tls.clone();
    let handle = tokio::spawn(async move {
        let result = serve(&state, listener, app, serving, async move {
            let _ = rx.await;
        })
        .await;
        state.stop_background();
        state.usage.flush(&state.store).await;
        state.audit.flush(AUDIT_FLUSH_ON_STOP).await;
        result
    });
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        handle,
        tls,
    })
}

/// Runs the server in the foreground until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let listen = config.listen;
    let tls = crate::http::tls::setup(&config)?;
    let (app, state) = build(&config, Arc::new(SystemClock)).await?;
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, issuer = %config.issuer, tls = tls.is_some(), "latchkey listening");
    if let Some(tls) = &tls {
        crate::http::tls::reload_on_sighup(tls.clone());
    }
    serve(&state, listener, app, tls, shutdown_signal()).await?;
    state.stop_background();
    state.usage.flush(&state.store).await;
    if !state.audit.flush(AUDIT_FLUSH_ON_STOP).await {
        tracing::error!(
            queued = state.audit.queued(),
            "stopped before every audit event was written"
        );
    }
    tracing::info!("latchkey stopped");
    Ok(())
}

/// Serves with the configured connection limits, counting refused
/// connections.
async fn serve(
    state: &AppState,
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsReloader>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = Arc::clone(&state.metrics);
    crate::http::serve::serve(
        listener,
        app,
        tls,
        state.config.connections,
        move || metrics.connection_refused(),
        shutdown,
    )
    .await
}

async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<(Router, AppState), ServerError> {
    let store = match &config.database {
        Database::Sqlite(dir) => Store::open_sqlite(dir).await?,
        Database::Postgres(url) => Store::connect(url.expose()).await?,
    };
    // Listen before loading, so no change made while loading is missed.
    let listener = store.listen().await?;
    let state = AppState::load(store, config.clone(), clock).await?;
    if let Some(listener) = listener {
        state.on_stop(crate::admin::invalidation::spawn_listener(&state, listener));
    }
    state.every(Duration::from_secs(1), |state| async move {
        state.usage.flush(&state.store).await
    });
    state.every(Duration::from_secs(5), |state| async move {
        DenyList::sync(&state).await
    });
    state.every(Duration::from_secs(30), |state| async move {
        crate::routes::signing_keys::maintain(&state).await
    });
    Ok((crate::app::app(state.clone()), state))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
