//! The audit log writer: handlers hand events to a bounded queue and go on;
//! one task per node writes them to the store in batches.
//!
//! - **Back-pressure, not loss.** [`AuditLog::record`] waits for room in the
//!   queue, so a burst of admin writes slows down to the store's pace instead
//!   of dropping events. Only when the queue stays full for
//!   [`SHED_AFTER`] (the store has been down that long) is an event
//!   shed, counted in `latchkey_audit_events_shed_total` and logged (action
//!   and target, never more).
//! - **Off the hot path.** Failed-authentication bursts come from the
//!   credential endpoints, which never wait: [`AuditLog::try_record`] sheds
//!   (and counts) rather than slow them down.
//! - **Retries.** A batch that fails because the store is unavailable is
//!   retried with backoff until it lands; one that fails for another reason
//!   is retried for a while, and one the store refuses (a conflict) is not:
//!   then it is written event by event, so one bad event cannot hold the
//!   others back. A waiter is told "written" only for a stored event.
//! - **Acknowledged means audited.** `record` returns once its event is
//!   written (concurrent requests share one batch), so a `kill -9` cannot
//!   lose the event of an admin write the client saw succeed.
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

use crate::auth::Admin;
use crate::state::AppState;

/// Events the queue holds before `record` has to wait.
pub const QUEUE_CAPACITY: usize = 4096;

/// How long `record` waits for room before it sheds the event.
pub const SHED_AFTER: Duration = Duration::from_secs(10);

/// Most events written in one transaction.
const BATCH: usize = 256;

/// Longest pause between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Tries of a batch that failed for a reason other than availability or a
/// conflict, before it is written event by event (about 6 s of backoff).
const TRIES_BEFORE_SPLIT: u32 = 8;

enum Message {
    /// An event, and who to tell once it is written.
    Event(Box<AuditEvent>, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
}

/// What the writer has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Events written to the store.
    pub written: AtomicU64,
    /// Events dropped (queue full for too long, or refused by the store).
    pub shed: AtomicU64,
    /// Batch writes that failed (and were retried).
    pub write_failures: AtomicU64,
    /// Events taken from the queue and not yet written.
    pub in_flight: AtomicU64,
}

/// The handle handlers record through.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    shed_after: Duration,
    counters: Arc<AuditCounters>,
}

impl AuditLog {
    /// Starts the writer task for `store`.
    pub fn start(store: Store, capacity: usize, shed_after: Duration) -> AuditLog {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(AuditCounters::default());
        tokio::spawn(write_loop(store, rx, Arc::clone(&counters)));
        AuditLog {
            tx,
            shed_after,
            counters,
        }
    }

    /// Queues `event`, waiting for room (back-pressure), and returns once it
    /// is written, so an admin write is acknowledged with its event stored.
    /// Within `shed_after` in all: the event is shed if it found no room in
    /// that time; if it is queued but not yet written (the store is down),
    /// the caller goes on and the event is written when the store is back.
    pub async fn record(&self, event: AuditEvent) {
        let action = event.action;
        let deadline = tokio::time::Instant::now() + self.shed_after;
        let (done, written) = oneshot::channel();
        let sent = tokio::time::timeout_at(
            deadline,
            self.tx.send(Message::Event(Box::new(event), Some(done))),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            self.shed(action);
            return;
        }
        if tokio::time::timeout_at(deadline, written).await.is_err() {
            tracing::warn!(%action, "an audit event is queued but not written yet");
        }
    }

    /// Queues `event` if there is room now; sheds it otherwise. For the
    /// credential endpoints, which must not wait on the audit log.
    pub fn try_record(&self, event: AuditEvent) {
        let action = event.action;
        if self
            .tx
            .try_send(Message::Event(Box::new(event), None))
            .is_err()
        {
            self.shed(action);
        }
    }

    fn shed(&self, action: AuditAction) {
        self.counters.shed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(%action, "audit queue full: an audit event was shed");
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

    /// The writer's counters.
    pub fn counters(&self) -> &AuditCounters {
        &self.counters
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Message>, counters: Arc<AuditCounters>) {
    let mut batch = Batch::default();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(e, done) => {
                    batch.events.push(*e);
                    batch.acks.push(done);
                }
                Message::Flush(done) => flushes.push(done),
            }
            if batch.events.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        counters
            .in_flight
            .store(batch.events.len() as u64, Ordering::Relaxed);
        batch.write(&store, &counters).await;
        counters.in_flight.store(0, Ordering::Relaxed);
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Events taken from the queue, and who waits for each to be written.
#[derive(Default)]
struct Batch {
    events: Vec<AuditEvent>,
    acks: Vec<Option<oneshot::Sender<()>>>,
}

impl Batch {
    /// Writes the batch (emptying it) and tells the waiters of the events
    /// stored. An outage is waited out; an error that may pass (a lock, a
    /// failover, a full disk) is retried for a while; a refusal of the data
    /// itself (a conflict), or an error that outlasts the retries, has the
    /// events written one by one so only the ones refused are shed.
    async fn write(&mut self, store: &Store, counters: &AuditCounters) {
        if self.events.is_empty() {
            return;
        }
        let mut backoff = Duration::from_millis(50);
        let mut other_failures = 0;
        loop {
            match store.append_audit_events(&self.events).await {
                Ok(()) => {
                    counters
                        .written
                        .fetch_add(self.events.len() as u64, Ordering::Relaxed);
                    self.events.clear();
                    for done in self.acks.drain(..).flatten() {
                        let _ = done.send(());
                    }
                    return;
                }
                Err(e) => {
                    counters.write_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, events = self.events.len(), "could not write audit events; will retry");
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
        for (event, done) in self.events.drain(..).zip(self.acks.drain(..)) {
            match store
                .append_audit_events(std::slice::from_ref(&event))
                .await
            {
                Ok(()) => {
                    counters.written.fetch_add(1, Ordering::Relaxed);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Err(e) => {
                    counters.shed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, action = %event.action, id = %event.id, "the store refused an audit event; it was shed");
                }
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
    AuditEvent {
        id: ids::new_prefixed_id("evt"),
        time: state.clock.now(),
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

    /// Many writers against a tiny queue: every event lands, none is shed;
    /// the writers were slowed down instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_queue_slows_writers_down_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let log = Arc::new(AuditLog::start(store.clone(), 8, SHED_AFTER));
        let mut tasks = Vec::new();
        for t in 0..40 {
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    log.record(sample(t * 100 + i)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(log.flush(Duration::from_secs(30)).await);
        assert_eq!(log.counters().shed.load(Ordering::Relaxed), 0);
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 4000);
        assert_eq!(count(&store).await, 4000);
        assert_eq!(log.queued(), 0);
    }

    /// `record` returns with the event in the store: nothing to flush.
    #[tokio::test]
    async fn a_recorded_event_is_stored_when_record_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let log = AuditLog::start(store.clone(), 64, SHED_AFTER);
        for i in 0..3 {
            log.record(sample(i)).await;
            assert_eq!(count(&store).await, i + 1);
        }
    }

    /// With the store gone, the queue fills; then `record` sheds after its
    /// wait and `try_record` at once, and both are counted.
    #[tokio::test]
    async fn events_are_shed_and_counted_only_when_the_queue_stays_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        store.close().await;
        let log = AuditLog::start(store, 2, Duration::from_millis(100));
        // The writer takes what is queued into a batch it cannot write and
        // holds it; after that the queue fills and `try_record` sheds.
        let mut accepted = 0;
        while log.counters().shed.load(Ordering::Relaxed) == 0 {
            log.try_record(sample(accepted));
            accepted += 1;
            assert!(accepted <= BATCH + 3, "the queue never filled");
            tokio::task::yield_now().await;
        }
        assert!(accepted > 2, "room for the queue's capacity at least");
        let started = std::time::Instant::now();
        log.record(sample(10_000)).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(log.counters().shed.load(Ordering::Relaxed), 2);
        log.try_record(sample(10_001));
        assert_eq!(log.counters().shed.load(Ordering::Relaxed), 3);
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
        let log = AuditLog::start(store.clone(), 64, SHED_AFTER);
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
