//! Change notifications between nodes that share one PostgreSQL: a node
//! that writes something other nodes cache publishes a short message with
//! `pg_notify`, and every node listens on its own connection. SQLite is one
//! process's database, so there both ends do nothing.
//!
//! The listener reconnects by itself; after a reconnect it reports
//! [`ListenEvent::Reconnected`], because messages sent while it was away are
//! lost and the caller must drop whatever they might have invalidated.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::{Backend, Store, StoreError, StoreResult};

/// The channel every node listens on.
pub const NOTIFY_CHANNEL: &str = "latchkey_invalidate";

/// The longest payload PostgreSQL accepts is 8000 bytes; ours are far
/// smaller, and a larger one is refused rather than truncated.
const MAX_PAYLOAD: usize = 7900;

/// What the listener saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// A message another node (or this one) published.
    Message(String),
    /// The connection was lost and is back: messages may have been missed.
    Reconnected,
}

/// A connection listening on [`NOTIFY_CHANNEL`].
#[derive(Debug)]
pub struct StoreListener {
    url: crate::Url,
    listener: Option<PgListener>,
    backoff: Duration,
}

impl Store {
    /// Publishes `payload` to every node's listener (including this node's).
    /// Delivered only to nodes listening now; a no-op on SQLite.
    pub async fn notify(&self, payload: &str) -> StoreResult<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::Internal("notification payload too long".into()));
        }
        let _timer = self.timed("notify");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts listening, on PostgreSQL; `None` on SQLite, where there are no
    /// other nodes. Fails when the first connection cannot be made.
    pub async fn listen(&self) -> StoreResult<Option<StoreListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = StoreListener {
            url: self.url.clone(),
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
                        return ListenEvent::Message(n.payload().to_owned());
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
