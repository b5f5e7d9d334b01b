//! The audit log's queue for events that record no write of their own:
//! failed-authentication bursts, from the credential endpoints. Every
//! write's event is appended in the write's own transaction by the store
//! (`latchkey_store::Written`), so an acknowledged write always has its
//! event and a committed one never lacks it; this module only builds those
//! events ([`event`], [`Admin::event`]).
//!
//! - **Off the hot path.** The credential endpoints never wait:
//!   [`AuditLog::try_record`] queues an event if there is room and sheds it
//!   (counted in `latchkey_audit_events_shed_total`, logged by action and
//!   target, never more) otherwise.
//! - **Batches.** One task per node writes what is queued in batches. A
//!   batch that fails because the store is unavailable is retried with
//!   backoff until it lands; one that fails for another reason is retried
//!   for a while, and one the store refuses (a conflict) is not: then it is
//!   written event by event, so one bad event cannot hold the others back.
//! - **Read-your-writes.** [`AuditLog::flush`] waits until everything queued
//!   before it is written; `GET /v1/audit-events` flushes first, and so does
//!   a graceful shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::ids;
use latchkey_store::{Store, StoreError};
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};
use latchkey_types::{JsonObject, Mode};
use tokio::sync::{mpsc, oneshot};

use crate::authn::auth::Admin;
use crate::state::AppState;

/// Events the queue holds; more are shed.
pub const QUEUE_CAPACITY: usize = 4096;

/// Most events written in one transaction.
const BATCH: usize = 256;

/// Longest pause between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Tries of a batch that failed for a reason other than availability or a
/// conflict, before it is written event by event (about 6 s of backoff).
const TRIES_BEFORE_SPLIT: u32 = 8;

enum Message {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// What the writer has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Events written to the store (by the writer, and in writes' own
    /// transactions).
    pub written: AtomicU64,
    /// Events dropped (queue full, or refused by the store).
    pub shed: AtomicU64,
    /// Batch writes that failed (and were retried).
    pub write_failures: AtomicU64,
    /// Events taken from the queue and not yet written.
    pub in_flight: AtomicU64,
}

/// The handle the credential endpoints record through.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    counters: Arc<AuditCounters>,
}

impl AuditLog {
    /// Starts the writer task for `store`.
    pub fn start(store: Store, capacity: usize) -> AuditLog {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(AuditCounters::default());
        tokio::spawn(write_loop(store, rx, Arc::clone(&counters)));
        AuditLog { tx, counters }
    }

    /// Queues `event` if there is room now; sheds it otherwise.
    pub fn try_record(&self, event: AuditEvent) {
        let action = event.action;
        if self.tx.try_send(Message::Event(Box::new(event))).is_err() {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%action, "audit queue full: an audit event was shed");
        }
    }

    /// Waits (at most `within`) until every event queued before this call
    /// is written. `false` when that did not happen in time.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        let sent_and_written =
            async { self.tx.send(Message::Flush(done)).await.is_ok() && wait.await.is_ok() };
        tokio::time::timeout(within, sent_and_written)
            .await
            .unwrap_or(false)
    }

    /// Events not yet written: waiting in the queue, or in the batch being
    /// written.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
            + self.counters.in_flight.load(Ordering::Relaxed) as usize
    }

    /// Counts events stored in writes' own transactions, so
    /// `latchkey_audit_events_written_total` counts every event.
    pub fn counted_written(&self, events: usize) {
        self.counters
            .written
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// The writer's counters.
    pub fn counters(&self) -> &AuditCounters {
        &self.counters
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Message>, counters: Arc<AuditCounters>) {
    let mut batch: Vec<AuditEvent> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(e) => batch.push(*e),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        counters
            .in_flight
            .store(batch.len() as u64, Ordering::Relaxed);
        write(&mut batch, &store, &counters).await;
        counters.in_flight.store(0, Ordering::Relaxed);
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch` (emptying it). An outage is waited out; an error that may
/// pass (a lock, a failover, a full disk) is retried for a while; a refusal
/// of the data itself (a conflict), or an error that outlasts the retries,
/// has the events written one by one so only the ones refused are shed.
async fn write(batch: &mut Vec<AuditEvent>, store: &Store, counters: &AuditCounters) {
    if batch.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(50);
    let mut other_failures = 0;
    loop {
        match store.append_audit_events(batch).await {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) => {
                counters.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, events = batch.len(), "could not write audit events; will retry");
                match e {
                    StoreError::Unavailable(_) => {}
                    StoreError::Conflict(_) => break,
                    _ => {
                        other_failures += 1;
                        if other_failures >= TRIES_BEFORE_SPLIT {
                            break;
                        }
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    for event in batch.drain(..) {
        match store
            .append_audit_events(std::slice::from_ref(&event))
            .await
        {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.shed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, action = %event.action, id = %event.id, "the store refused an audit event; it was shed");
            }
        }
    }
}

/// A new event with a fresh id, at the state's clock.
pub fn event(
    state: &AppState,
    mode: Option<Mode>,
    action: AuditAction,
    actor: AuditActor,
    target: AuditTarget,
    source_address: Option<String>,
) -> AuditEvent {
    event_at(
        state.clock.now(),
        mode,
        action,
        actor,
        target,
        source_address,
    )
}

/// A new event with a fresh id, at `time`.
pub fn event_at(
    time: time::OffsetDateTime,
    mode: Option<Mode>,
    action: AuditAction,
    actor: AuditActor,
    target: AuditTarget,
    source_address: Option<String>,
) -> AuditEvent {
    AuditEvent {
        id: ids::new_prefixed_id("evt"),
        time,
        mode,
        action,
        actor,
        target,
        tenant_id: None,
        source_address,
        details: JsonObject::new(),
    }
}

/// The names of the fields a PATCH body sets or clears (never their values,
/// which may be claims or metadata). PATCH types skip absent fields when
/// serialised, so every key present was sent.
pub fn fields_set(body: &impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(body) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

/// A time as an RFC 3339 JSON string, or `null`.
pub fn rfc3339(at: Option<time::OffsetDateTime>) -> serde_json::Value {
    at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(serde_json::Value::Null, serde_json::Value::String)
}

impl Admin {
    /// An event of this admin's mode, acted by this admin key from its
    /// address, about the `target_type` record `target_id`.
    pub fn event(
        &self,
        state: &AppState,
        action: AuditAction,
        target_type: &str,
        target_id: &str,
    ) -> AuditEvent {
        event(
            state,
            Some(self.mode()),
            action,
            AuditActor::admin_key(self.id()),
            AuditTarget::new(target_type, target_id),
            self.source().map(|ip| ip.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_store::{AuditFilter, PageRequest};

    fn sample(i: usize) -> AuditEvent {
        AuditEvent {
            id: format!("evt_{i:06}"),
            time: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            mode: Some(Mode::Test),
            action: AuditAction::UserCreated,
            actor: AuditActor::admin_key("adm_1"),
            target: AuditTarget::new("user", format!("usr_{i}")),
            tenant_id: None,
            source_address: None,
            details: JsonObject::new(),
        }
    }

    async fn count(store: &Store) -> usize {
        let mut n = 0;
        let mut page = PageRequest {
            limit: 1000,
            after: None,
        };
        loop {
            let got = store
                .list_audit_events(Mode::Test, &AuditFilter::default(), &page)
                .await
                .unwrap();
            n += got.items.len();
            match got.next_after {
                Some(a) => page.after = Some(a),
                None => return n,
            }
        }
    }

    /// Queued events are stored once `flush` returns.
    #[tokio::test]
    async fn queued_events_are_stored_by_the_next_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let log = AuditLog::start(store.clone(), 64);
        for i in 0..3 {
            log.try_record(sample(i));
        }
        assert!(log.flush(Duration::from_secs(30)).await);
        assert_eq!(count(&store).await, 3);
        assert_eq!(log.queued(), 0);
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 3);
    }

    /// With the store gone, the writer holds what it took and the queue
    /// fills; then `try_record` sheds at once, and counts it.
    #[tokio::test]
    async fn events_are_shed_and_counted_only_when_the_queue_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        store.close().await;
        let log = AuditLog::start(store, 2);
        let mut accepted = 0;
        while log.counters().shed.load(Ordering::Relaxed) == 0 {
            log.try_record(sample(accepted));
            accepted += 1;
            assert!(accepted <= BATCH + 3, "the queue never filled");
            tokio::task::yield_now().await;
        }
        assert!(accepted > 2, "room for the queue's capacity at least");
        log.try_record(sample(10_001));
        assert_eq!(log.counters().shed.load(Ordering::Relaxed), 2);
        assert!(log.counters().write_failures.load(Ordering::Relaxed) >= 1);
        assert!(!log.flush(Duration::from_millis(100)).await);
    }

    /// An event the store refuses (a duplicate id) is shed alone; the rest
    /// of its batch is written.
    #[tokio::test]
    async fn one_refused_event_does_not_hold_back_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        store.append_audit_events(&[sample(1)]).await.unwrap();
        let log = AuditLog::start(store.clone(), 64);
        // Queued together, so the writer takes them as one batch.
        for i in 0..5 {
            log.try_record(sample(i));
        }
        assert!(log.flush(Duration::from_secs(30)).await);
        assert_eq!(log.counters().shed.load(Ordering::Relaxed), 1);
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 4);
        assert_eq!(count(&store).await, 5);
    }
}
