//! API-key checking, shared by the verify endpoint, the token endpoint (a key
//! used as a client secret) and introspection: format and checksum first (no
//! lookup for a bad key), then the cached key record and principal, the
//! per-key rate limit, and the `remaining` budget (the one store write, and
//! only for keys that have a budget). Last-used times are batched.
//!
//! A check is either a use ([`Check::Use`]: the verify endpoint, a key as a
//! client secret or as a verify caller), which counts against the rate
//! limit, spends one of `remaining` and updates `lastUsedAt`; or a look
//! ([`Check::Inspect`]: introspection, RFC 7662), which reports the key as
//! it stands and changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::{authorization, issuance, migration};
use latchkey_store::{Store, StoreError};
use latchkey_types::api_keys::{KeyInvalidCode, ValidApiKey};
use latchkey_types::Mode;
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::authn::cache::{CachedKey, Principal};
use crate::state::AppState;

/// A key that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    /// The key record.
    pub key: Arc<CachedKey>,
    /// Its user.
    pub principal: Arc<Principal>,
    /// Uses left after this one, for keys with a budget.
    pub remaining: Option<i64>,
}

impl VerifiedKey {
    /// The key's narrowing roles, as a set.
    pub fn allowed_roles(&self) -> Option<BTreeSet<String>> {
        self.key
            .roles
            .as_ref()
            .map(|r| r.iter().map(|role| role.to_string()).collect())
    }
}

/// Whether a check uses the key or only looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A use: rate limit, `remaining` and `lastUsedAt` all count it.
    Use,
    /// A look (introspection): nothing is counted or spent. A key with no
    /// use left is reported as `usage_exceeded`; the rate limit is not
    /// consulted, since a window's count says nothing about the key.
    Inspect,
}

/// Checks `value` as an API key. `expected_mode` is the caller's mode, when
/// there is a caller; a key of the other mode is `WrongMode`.
pub async fn check(
    state: &AppState,
    value: &str,
    expected_mode: Option<Mode>,
    how: Check,
) -> Result<Result<VerifiedKey, KeyInvalidCode>, StoreError> {
    let result = check_uncounted(state, value, expected_mode, how).await?;
    state
        .metrics
        .key_checked(result.as_ref().map(|_| ()).map_err(|c| *c));
    Ok(result)
}

async fn check_uncounted(
    state: &AppState,
    value: &str,
    expected_mode: Option<Mode>,
    how: Check,
) -> Result<Result<VerifiedKey, KeyInvalidCode>, StoreError> {
    let mode = match credential::parse(value) {
        Ok(info) if info.kind == CredentialKind::ApiKey => info.mode,
        Err(_) if legacy_shaped(value) => match legacy_mode(state, value, expected_mode).await? {
            Some(mode) => mode,
            None => return Ok(Err(KeyInvalidCode::NotFound)),
        },
        _ => return Ok(Err(KeyInvalidCode::Malformed)),
    };
    if expected_mode.is_some_and(|m| m != mode) {
        return Ok(Err(KeyInvalidCode::WrongMode));
    }
    let digest = CredentialDigest::of(value);
    let Some(found) = state.caches.api_key(&state.store, mode, &digest).await? else {
        return Ok(Err(KeyInvalidCode::NotFound));
    };
    let now = state.clock.now();
    if found.revoked || found.value_expired(now) {
        return Ok(Err(KeyInvalidCode::Revoked));
    }
    if found.expired(now) {
        return Ok(Err(KeyInvalidCode::Expired));
    }
    let Some(principal) = state
        .caches
        .principal(&state.store, mode, found.user_id())
        .await?
    else {
        return Ok(Err(KeyInvalidCode::NotFound));
    };
    if principal.user.disabled {
        return Ok(Err(KeyInvalidCode::Disabled));
    }
    if how == Check::Inspect {
        // What is left is read, not spent: one store read, for keys with a
        // budget only.
        let remaining = match found.has_budget {
            false => None,
            true => match state.store.get_api_key(mode, found.id()).await?.remaining {
                Some(left) if left <= 0 => return Ok(Err(KeyInvalidCode::UsageExceeded)),
                left => left,
            },
        };
        return Ok(Ok(VerifiedKey {
            key: found,
            principal,
            remaining,
        }));
    }
    if let Some(limit) = found.ratelimit() {
        if !state
            .limiter
            .allow(mode, found.id(), limit.limit, limit.window_seconds, now)
            .await
        {
            return Ok(Err(KeyInvalidCode::RateLimited));
        }
    }
    let remaining = match found.has_budget {
        false => None,
        true => match state.store.spend_api_key_use(mode, found.id()).await? {
            Some(left) => Some(left),
            None => return Ok(Err(KeyInvalidCode::UsageExceeded)),
        },
    };
    state.usage.record(mode, found.id(), now);
    Ok(Ok(VerifiedKey {
        key: found,
        principal,
        remaining,
    }))
}

/// Whether `value` could be an imported key: not Latchkey-shaped (a
/// malformed Latchkey key stays malformed), and of an importable length.
fn legacy_shaped(value: &str) -> bool {
    !value.starts_with("lk_")
        && (migration::MIN_VALUE_CHARS..=migration::MAX_VALUE_CHARS)
            .contains(&value.chars().count())
}

/// The mode of the imported key `value` is, if it is one: its SHA-256 in
/// either mode's cache (the caller's mode first), else, when a mode has
/// keys only a slow hash (SHA-512, bcrypt) finds, those whose prefix fits;
/// a match adds the SHA-256, so the next check is a cache hit like any
/// key's.
async fn legacy_mode(
    state: &AppState,
    value: &str,
    expected: Option<Mode>,
) -> Result<Option<Mode>, StoreError> {
    let digest = CredentialDigest::of(value);
    let order = match expected {
        Some(Mode::Test) | None => [Mode::Test, Mode::Live],
        Some(Mode::Live) => [Mode::Live, Mode::Test],
    };
    for mode in order {
        if state
            .caches
            .api_key(&state.store, mode, &digest)
            .await?
            .is_some()
        {
            return Ok(Some(mode));
        }
    }
    for mode in order {
        if !state
            .legacy_keys
            .present(&state.store, mode, state.clock.now())
            .await?
        {
            continue;
        }
        let candidates = state
            .store
            .legacy_key_candidates(mode, value, MAX_SLOW_CANDIDATES, state.clock.now())
            .await?;
        if candidates.is_empty() {
            continue;
        }
        let presented = latchkey_core::Secret::new(value.to_owned());
        let matched = state
            .passwords
            .run_blocking(move || {
                candidates
                    .into_iter()
                    .find(|c| c.stored.matches(presented.expose()))
            })
            .await
            .flatten();
        if let Some(candidate) = matched {
            let written = state
                .store
                .add_legacy_key_digest(mode, &candidate, &digest)
                .await?;
            state.applied(written).await;
            state.legacy_keys.forget();
            return Ok(Some(mode));
        }
    }
    Ok(None)
}

/// The most slow hashes one check tries (keys sharing a prefix).
pub const MAX_SLOW_CANDIDATES: usize = 4;

/// Whether each mode has imported keys that only a slow hash finds,
/// re-read at most every few seconds (and at once after an import).
#[derive(Debug, Default)]
pub struct SlowLegacyKeys {
    known: Mutex<HashMap<Mode, (bool, std::time::Instant)>>,
}

impl SlowLegacyKeys {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(10);

    async fn present(
        &self,
        store: &Store,
        mode: Mode,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if let Some((present, at)) = self.known.lock().get(&mode) {
            if at.elapsed() < Self::FRESH {
                return Ok(*present);
            }
        }
        let present = store.has_slow_legacy_keys(mode, now).await?;
        self.known
            .lock()
            .insert(mode, (present, std::time::Instant::now()));
        Ok(present)
    }

    /// Re-read on the next check.
    pub fn forget(&self) {
        self.known.lock().clear();
    }
}

/// The verify endpoint's description of a valid key.
pub async fn describe(state: &AppState, verified: &VerifiedKey) -> Result<ValidApiKey, StoreError> {
    let key = &verified.key;
    let tree = state.caches.tree(&state.store, key.mode).await?;
    let direct = &verified.principal.direct;
    let allowed = verified.allowed_roles();
    let roles = issuance::roles(&tree, direct, key.tenant_id(), allowed.as_ref());
    // The token tenant's entry is `roles`; a budget too small for it alone
    // shows what fits of the rest: none.
    let authorization = authorization::bounded(
        &tree,
        direct,
        key.tenant_id(),
        allowed.as_ref(),
        state.config.token_authorization_max_bytes,
    )
    .unwrap_or_else(|_| authorization::BoundedAuthorization {
        claim: [(
            key.tenant_id().to_owned(),
            latchkey_types::admin::TenantRoles {
                roles: roles.iter().cloned().collect(),
            },
        )]
        .into(),
        truncated: true,
    });
    Ok(ValidApiKey {
        valid: true,
        key_id: key.id().to_owned(),
        user_id: key.user_id().to_owned(),
        tenant_id: key.tenant_id().to_owned(),
        mode: key.mode,
        roles: roles.into_iter().collect(),
        authorization: authorization.claim,
        authorization_truncated: authorization.truncated,
        expires_at: key.expires_at(),
        remaining: verified.remaining,
    })
}

/// Last-used times, coalesced in memory and written in batches.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<(Mode, String), OffsetDateTime>>,
}

impl UsageRecorder {
    /// Notes a use (no store access).
    pub fn record(&self, mode: Mode, key_id: &str, at: OffsetDateTime) {
        self.pending.lock().insert((mode, key_id.to_owned()), at);
    }

    /// Writes what is pending; on failure it is kept for the next try.
    pub async fn flush(&self, store: &Store) {
        let batch: Vec<(Mode, String, OffsetDateTime)> = {
            let mut pending = self.pending.lock();
            std::mem::take(&mut *pending)
                .into_iter()
                .map(|((mode, id), at)| (mode, id, at))
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.touch_api_keys(&batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not record API-key last-used times; will retry");
            let mut pending = self.pending.lock();
            for (mode, id, at) in batch {
                pending.entry((mode, id)).or_insert(at);
            }
        }
    }
}
