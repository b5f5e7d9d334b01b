//! Start-up: open the store, bootstrap it on first start, build the app,
//! bind, and serve until SIGTERM or Ctrl-C with a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use latchkey_core::clock::{Clock, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, Database};
use crate::denylist::DenyList;
use crate::keycheck::UsageRecorder;
use crate::state::AppState;
use latchkey_store::Store;

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
}

/// A server running in the background (tests, embedding).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

impl RunningServer {
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
    let (app, state) = build(&config, clock).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await;
        state.usage.flush(&state.store).await;
        result
    });
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        handle,
    })
}

/// Runs the server in the foreground until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let listen = config.listen;
    let (app, state) = build(&config, Arc::new(SystemClock)).await?;
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, issuer = %config.issuer, "latchkey listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    state.usage.flush(&state.store).await;
    tracing::info!("latchkey stopped");
    Ok(())
}

async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<(Router, AppState), ServerError> {
    let store = match &config.database {
        Database::Sqlite(dir) => Store::open_sqlite(dir).await?,
        Database::Postgres(url) => Store::connect(url).await?,
    };
    let state = AppState::load(store, config.clone(), clock).await?;
    UsageRecorder::spawn_flusher(&state, Duration::from_secs(1));
    DenyList::spawn_purger(&state, Duration::from_secs(60));
    crate::routes::signing_keys::spawn_maintenance(&state, Duration::from_secs(30));
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
