//! Cache invalidation across nodes.
//!
//! Every write that changes what a cache holds (a key revoked or rotated, a
//! secret deleted, roles or the catalog changed, a user disabled or deleted,
//! a tenant moved, a token revoked, a signing key rotated) calls
//! [`AppState::invalidate`] after its transaction commits. That applies the
//! change to this node's caches at once and publishes it through the store
//! (PostgreSQL `NOTIFY`); every other node's listener applies it within
//! milliseconds. When a listener loses its connection it reconnects by
//! itself and then drops every cache, since it may have missed messages.
//!
//! The notification is sent after the commit, so a node that dies between
//! the two leaves other nodes stale until their cache TTL refreshes the
//! entry; the deny-list and signing keys are also re-read periodically.

use latchkey_core::credential::CredentialDigest;
use latchkey_store::{ListenEvent, StoreListener};
use latchkey_types::Mode;
use serde::{Deserialize, Serialize};

use crate::denylist::DenyList;
use crate::state::AppState;

/// One change another node must apply to its caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// An API key was created, revoked or rotated.
    ApiKey {
        /// Its mode.
        mode: Mode,
        /// Its id.
        key_id: String,
        /// The digests (hex) of its values: the cached entries (and
        /// remembered misses) to drop. Empty: find them by scanning.
        #[serde(default)]
        digests: Vec<String>,
    },
    /// Every API key of a user (the user was deleted).
    UserApiKeys {
        /// Its mode.
        mode: Mode,
        /// The user.
        user_id: String,
    },
    /// A user, its secrets, roles or public keys changed.
    User {
        /// Its mode.
        mode: Mode,
        /// The user.
        user_id: String,
    },
    /// The tenant tree changed.
    Tree {
        /// Its mode.
        mode: Mode,
    },
    /// The role catalog changed.
    Catalog {
        /// Its mode.
        mode: Mode,
    },
    /// An access token was revoked.
    TokenRevoked {
        /// Its `jti`.
        jti: String,
        /// Unix time until which it stays listed.
        until: i64,
    },
    /// A signing key was added (rotation).
    SigningKeys,
}

impl Invalidation {
    /// The metric label of this kind of change.
    pub fn label(&self) -> &'static str {
        match self {
            Invalidation::ApiKey { .. } => "api_key",
            Invalidation::UserApiKeys { .. } => "user_api_keys",
            Invalidation::User { .. } => "user",
            Invalidation::Tree { .. } => "tree",
            Invalidation::Catalog { .. } => "catalog",
            Invalidation::TokenRevoked { .. } => "token_revoked",
            Invalidation::SigningKeys => "signing_keys",
        }
    }

    /// An API key change touching the values with these digests.
    pub fn api_key(mode: Mode, key_id: &str, digests: &[CredentialDigest]) -> Self {
        Invalidation::ApiKey {
            mode,
            key_id: key_id.to_owned(),
            digests: digests.iter().map(CredentialDigest::to_hex).collect(),
        }
    }

    /// A user change.
    pub fn user(mode: Mode, user_id: &str) -> Self {
        Invalidation::User {
            mode,
            user_id: user_id.to_owned(),
        }
    }
}

/// What goes over the wire: the sending node and its changes.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    node: String,
    changes: Vec<Invalidation>,
}

impl AppState {
    /// Applies `changes` to this node's caches and tells every other node.
    /// Call after the write committed. Publishing failures are logged, not
    /// returned: the write happened, and the other nodes' TTL bounds the
    /// staleness.
    pub async fn invalidate(&self, changes: &[Invalidation]) {
        for change in changes {
            self.apply(change).await;
        }
        let message = Message {
            node: self.node_id.clone(),
            changes: changes.to_vec(),
        };
        let payload = match serde_json::to_string(&message) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an invalidation");
                return;
            }
        };
        if let Err(e) = self.store.notify(&payload).await {
            tracing::warn!(error = %e, "could not notify other nodes of a change");
        }
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
        }
    }

    /// Invalidates an existing API key after a write: every value it has
    /// had, looked up in the store (all entries of the key, by a scan of the
    /// cache, if that lookup fails).
    pub async fn invalidate_api_key(&self, mode: Mode, key_id: &str) {
        let digests = match self.store.api_key_digests(mode, key_id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a key's digests; dropping by scan");
                Vec::new()
            }
        };
        self.invalidate(&[Invalidation::api_key(mode, key_id, &digests)])
            .await;
    }

    /// Drops everything a missed message could have invalidated: the
    /// caches, and re-reads the deny-list and signing keys.
    async fn resync(&self) {
        self.caches.clear();
        match DenyList::load(&self.store, self.clock.now()).await {
            Ok(fresh) => self.deny_list.merge(fresh),
            Err(e) => tracing::warn!(error = %e, "could not re-read revoked tokens"),
        }
        if let Err(e) = self.keys.reload(&self.store, self.clock.now()).await {
            tracing::warn!(error = %e, "could not reload signing keys");
        }
    }

    /// Handles one message from the listener.
    async fn receive(&self, payload: &str) {
        let message: Message = match serde_json::from_str(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed invalidation message");
                return;
            }
        };
        if message.node == self.node_id {
            return;
        }
        for change in &message.changes {
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
                ListenEvent::Message(payload) => state.receive(&payload).await,
                ListenEvent::Reconnected => {
                    state.metrics.invalidation_received("resync");
                    state.resync().await;
                }
            }
        }
    })
    .abort_handle()
}
