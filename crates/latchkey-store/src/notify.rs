//! Change notifications between nodes that share one PostgreSQL: every
//! write publishes the invalidations it causes with `pg_notify` inside its
//! transaction (`changes.rs`), and every node listens on its own connection.
//! SQLite is one process's database, so there is nothing to listen to.
//!
//! The listener reconnects by itself; after a reconnect it reports
//! [`ListenEvent::Reconnected`], because messages sent while it was away are
//! lost and the caller must drop whatever they might have invalidated.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::changes::{Invalidation, Notice};
use crate::{Backend, Store, StoreResult};

/// The channel every node listens on.
pub const NOTIFY_CHANNEL: &str = "latchkey_invalidate";

/// What the listener saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// The changes of a write another node committed.
    Changes(Vec<Invalidation>),
    /// The connection was lost and is back: messages may have been missed.
    Reconnected,
}

/// A connection listening on [`NOTIFY_CHANNEL`].
#[derive(Debug)]
pub struct StoreListener {
    url: crate::Url,
    /// This node's id: its own notices are skipped.
    node_id: std::sync::Arc<str>,
    listener: Option<PgListener>,
    backoff: Duration,
}

impl Store {
    /// Starts listening, on PostgreSQL; `None` on SQLite, where there are no
    /// other nodes. Fails when the first connection cannot be made.
    pub async fn listen(&self) -> StoreResult<Option<StoreListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = StoreListener {
            url: self.url.clone(),
            node_id: self.node_id.clone(),
            listener: None,
            backoff: Duration::from_millis(100),
        };
        listener.listener = Some(listener.connect().await?);
        Ok(Some(listener))
    }
}

impl StoreListener {
    async fn connect(&self) -> StoreResult<PgListener> {
        let mut l = PgListener::connect(&self.url.0).await?;
        l.listen(NOTIFY_CHANNEL).await?;
        Ok(l)
    }

    /// The next event. Waits for a message; when the connection drops,
    /// reconnects (retrying with a capped backoff) and then returns
    /// [`ListenEvent::Reconnected`].
    pub async fn recv(&mut self) -> ListenEvent {
        loop {
            if let Some(l) = self.listener.as_mut() {
                match l.try_recv().await {
                    Ok(Some(n)) => {
                        self.backoff = Duration::from_millis(100);
                        match serde_json::from_str::<Notice>(n.payload()) {
                            Ok(notice) if *notice.node == *self.node_id => continue,
                            Ok(notice) => return ListenEvent::Changes(notice.changes),
                            Err(e) => {
                                tracing::warn!(error = %e, "ignoring a malformed change notification");
                                continue;
                            }
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("lost the notification connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "notification connection failed; reconnecting");
                    }
                }
                self.listener = None;
            }
            match self.connect().await {
                Ok(l) => {
                    tracing::info!("notification connection re-established");
                    self.listener = Some(l);
                    self.backoff = Duration::from_millis(100);
                    return ListenEvent::Reconnected;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "cannot reconnect the notification listener");
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
