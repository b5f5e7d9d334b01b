//! The deny-list of revoked access tokens, by `jti`. A revoked token stays
//! listed until it would have expired, then leaves (in memory and in the
//! store), so the list never grows past the tokens still alive.

use std::collections::HashMap;

use latchkey_store::{Store, StoreResult};
use parking_lot::RwLock;
use time::OffsetDateTime;

use crate::state::AppState;

/// Revoked token ids with their expiry (Unix seconds).
#[derive(Debug, Default)]
pub struct DenyList {
    entries: RwLock<HashMap<String, i64>>,
}

impl DenyList {
    /// Loads the live entries of the store.
    pub async fn load(store: &Store, now: OffsetDateTime) -> StoreResult<DenyList> {
        let entries = store
            .revoked_tokens(now)
            .await?
            .into_iter()
            .map(|(jti, at)| (jti, at.unix_timestamp()))
            .collect();
        Ok(DenyList {
            entries: RwLock::new(entries),
        })
    }

    /// Whether the token with this id was revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.entries.read().contains_key(jti)
    }

    /// Lists a token id until `expires_at`.
    pub fn insert(&self, jti: &str, expires_at: i64) {
        self.entries.write().insert(jti.to_owned(), expires_at);
    }

    /// Adds every entry of `other`.
    pub fn merge(&self, other: DenyList) {
        let other = other.entries.into_inner();
        self.entries.write().extend(other);
    }

    /// Drops entries whose tokens have expired.
    pub fn purge(&self, now: i64) {
        self.entries.write().retain(|_, exp| *exp > now);
    }

    /// One sync pass: adds the entries other nodes revoked (read from the
    /// store), and purges expired ones from memory and store. Runs every few
    /// seconds (startup's `AppState::every`).
    pub async fn sync(state: &AppState) {
        let now = state.clock.now();
        match state.store.revoked_tokens(now).await {
            Ok(entries) => {
                for (jti, at) in entries {
                    state.deny_list.insert(&jti, at.unix_timestamp());
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read revoked tokens"),
        }
        state.deny_list.purge(now.unix_timestamp());
        if let Err(e) = state.store.purge_revoked_tokens(now).await {
            tracing::warn!(error = %e, "could not purge expired revoked tokens");
        }
    }
}
