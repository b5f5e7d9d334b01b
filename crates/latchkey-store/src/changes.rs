//! What a write changes for the caches of every node, and the audit event
//! that records it, both committed with the write.
//!
//! Every write method of the store takes the audit event that records it
//! (made from the write's result, inside its transaction) and decides
//! itself which cached entries it makes stale ([`Invalidation`]). As the
//! last statements of its transaction it appends the event and publishes
//! the invalidations with `pg_notify`; PostgreSQL delivers a notification at
//! commit and only at commit. So a committed write always has its event and
//! always reaches the other nodes' listeners, and a write that rolls back
//! (or a process killed before the commit) records and sends nothing. The
//! write returns [`Written`]: its value and the invalidations, which the
//! writing node applies to its own caches.

use latchkey_core::credential::CredentialDigest;
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use crate::{Backend, Store, StoreResult};

/// One change every node must apply to its caches.
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
    /// A trusted issuer was put or deleted.
    TrustedIssuers {
        /// Its mode.
        mode: Mode,
    },
    /// Anything of a mode may have changed (an import).
    Everything {
        /// Its mode.
        mode: Mode,
    },
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
            Invalidation::TrustedIssuers { .. } => "trusted_issuers",
            Invalidation::Everything { .. } => "everything",
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
pub(crate) struct Notice {
    pub(crate) node: String,
    pub(crate) changes: Vec<Invalidation>,
}

/// A committed write: its value, and the invalidations it caused (already
/// sent to the other nodes with the commit) for this node to apply.
#[derive(Debug)]
#[must_use = "a write's invalidations must be applied to this node's caches"]
pub struct Written<T> {
    value: T,
    changes: Vec<Invalidation>,
    /// Audit events appended with it (0 or 1).
    events: usize,
}

impl<T> Written<T> {
    /// The value and the invalidations.
    pub fn into_parts(self) -> (T, Vec<Invalidation>) {
        (self.value, self.changes)
    }

    /// The invalidations.
    pub fn changes(&self) -> &[Invalidation] {
        &self.changes
    }

    /// How many audit events were stored with the write.
    pub fn events(&self) -> usize {
        self.events
    }
}

/// The longest payload PostgreSQL accepts is 8000 bytes; ours stay under
/// this (a long list of digests is replaced by a scan, see [`Store::commit_write`]).
pub(crate) const MAX_PAYLOAD: usize = 7900;

impl Store {
    /// Ends a write: appends `event` (when there is one) and publishes
    /// `changes`, both inside `tx` as its last statements, then commits.
    pub(crate) async fn commit_write<T>(
        &self,
        mut tx: Transaction<'static, Any>,
        value: T,
        event: Option<AuditEvent>,
        changes: Vec<Invalidation>,
    ) -> StoreResult<Written<T>> {
        let events = event.as_slice();
        crate::audit::append(&mut tx, self.backend, events).await?;
        let changes = self.publish(&mut tx, changes).await?;
        tx.commit().await?;
        Ok(Written {
            value,
            changes,
            events: events.len(),
        })
    }

    /// Sends `changes` to every node's listener when `tx` commits (a no-op
    /// on SQLite, which has one node). Returns them as sent.
    pub(crate) async fn publish(
        &self,
        tx: &mut Transaction<'static, Any>,
        mut changes: Vec<Invalidation>,
    ) -> StoreResult<Vec<Invalidation>> {
        if self.backend != Backend::Postgres || changes.is_empty() {
            return Ok(changes);
        }
        let mut payload = self.notice(&changes)?;
        if payload.len() > MAX_PAYLOAD {
            // A key rotated many times has many digests: the other nodes
            // then drop its entries by scanning for its id instead.
            for change in &mut changes {
                if let Invalidation::ApiKey { digests, .. } = change {
                    digests.clear();
                }
            }
            payload = self.notice(&changes)?;
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(crate::StoreError::Internal(
                "notification payload too long".into(),
            ));
        }
        let _timer = self.timed("notify");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::NOTIFY_CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
        Ok(changes)
    }

    fn notice(&self, changes: &[Invalidation]) -> StoreResult<String> {
        Ok(serde_json::to_string(&Notice {
            node: self.node_id.to_string(),
            changes: changes.to_vec(),
        })?)
    }
}
