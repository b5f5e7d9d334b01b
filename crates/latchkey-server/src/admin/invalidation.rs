//! Cache invalidation across nodes.
//!
//! Every store write decides which cached entries it makes stale
//! ([`Invalidation`], in `latchkey-store`) and publishes them with
//! `pg_notify` inside its own transaction, so they reach every other node's
//! listener exactly when the write commits, and never for a write that did
//! not. The write returns them ([`Written`]); [`AppState::applied`] applies
//! them to this node's caches and hands back the write's value. Every other
//! node's listener applies them within milliseconds. When a listener loses
//! its connection it reconnects by itself and then drops every cache, since
//! it may have missed messages.

use latchkey_core::credential::CredentialDigest;
pub use latchkey_store::Invalidation;
use latchkey_store::{ListenEvent, StoreListener, Written};

use crate::state::AppState;
use crate::tokens::denylist::DenyList;

impl AppState {
    /// Applies a committed write's invalidations to this node's caches
    /// (the other nodes were sent them by the commit) and returns its value.
    pub async fn applied<T>(&self, written: Written<T>) -> T {
        self.audit.counted_written(written.events());
        let (value, changes) = written.into_parts();
        for change in &changes {
            self.apply(change).await;
        }
        value
    }

    /// Applies one change to this node's caches.
    async fn apply(&self, change: &Invalidation) {
        match change {
            Invalidation::ApiKey {
                mode,
                key_id,
                digests,
            } => {
                let parsed: Option<Vec<CredentialDigest>> = digests
                    .iter()
                    .map(|d| CredentialDigest::from_hex(d))
                    .collect();
                match parsed {
                    Some(d) if !d.is_empty() => self.caches.invalidate_api_key_values(*mode, &d),
                    _ => self.caches.invalidate_api_key(*mode, key_id),
                }
            }
            Invalidation::UserApiKeys { mode, user_id } => {
                self.caches.invalidate_user_api_keys(*mode, user_id)
            }
            Invalidation::User { mode, user_id } => self.caches.invalidate_user(*mode, user_id),
            Invalidation::Tree { mode } => self.caches.invalidate_tree(*mode),
            Invalidation::Catalog { mode } => self.caches.invalidate_catalog(*mode),
            Invalidation::TokenRevoked { jti, until } => self.deny_list.insert(jti, *until),
            Invalidation::SigningKeys => {
                if let Err(e) = self.keys.reload(&self.store, self.clock.now()).await {
                    tracing::warn!(error = %e, "could not reload signing keys");
                }
            }
            Invalidation::TrustedIssuers { mode } => self.federation.invalidate(*mode),
            Invalidation::Everything { mode } => {
                // Both modes' caches go; they refill from the store.
                self.caches.clear();
                self.federation.invalidate(*mode);
                self.legacy_keys.forget();
            }
        }
    }

    /// Drops everything a missed message could have invalidated: the
    /// caches, and re-reads the deny-list and signing keys.
    async fn resync(&self) {
        self.caches.clear();
        self.federation.invalidate_all();
        match DenyList::load(&self.store, self.clock.now()).await {
            Ok(fresh) => self.deny_list.merge(fresh),
            Err(e) => tracing::warn!(error = %e, "could not re-read revoked tokens"),
        }
        if let Err(e) = self.keys.reload(&self.store, self.clock.now()).await {
            tracing::warn!(error = %e, "could not reload signing keys");
        }
    }

    /// Applies another node's committed changes.
    async fn receive(&self, changes: &[Invalidation]) {
        for change in changes {
            self.metrics.invalidation_received(change.label());
            self.apply(change).await;
        }
    }
}

/// Applies other nodes' changes as they arrive, until the state is dropped
/// or the task is aborted.
pub fn spawn_listener(state: &AppState, mut listener: StoreListener) -> tokio::task::AbortHandle {
    let weak = state.downgrade();
    tokio::spawn(async move {
        loop {
            let event = listener.recv().await;
            let Some(state) = weak.upgrade() else { break };
            match event {
                ListenEvent::Changes(changes) => state.receive(&changes).await,
                ListenEvent::Reconnected => {
                    state.metrics.invalidation_received("resync");
                    state.resync().await;
                }
            }
        }
    })
    .abort_handle()
}
