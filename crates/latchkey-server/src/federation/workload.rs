//! Workload identity federation: a trusted issuer's JWT (a Kubernetes
//! service-account token, a CI job's OIDC token) exchanged at
//! `POST /oauth/token` for a Latchkey token of the user a rule maps it to.
//!
//! The trusted issuers of each mode are held in memory, loaded once and
//! dropped when a write invalidates them (on any node); each keeps its keys
//! in a `latchkey_verify::KeyCache` (the JWKS cached by `Cache-Control`,
//! one rate-limited refetch for an unknown `kid`, or a static set), which
//! outlives a reload when its source did not change. Once warm, an
//! exchange for a `userId` rule reads nothing from the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use latchkey_core::federation::workload::{self as rules, TokenRefused};
use latchkey_store::{NewUser, StoreError, StoreResult};
use latchkey_types::audit::{AuditAction, AuditActor, AuditTarget};
use latchkey_types::federation::TrustedIssuer;
use latchkey_types::oauth::Actor;
use latchkey_types::{JsonObject, Mode, UserKind};
use latchkey_verify::jwt::verify_jws;
use latchkey_verify::{jwk_from_json, KeyCache, KeySet, KeySetError, VerifyError};
use parking_lot::RwLock;
use serde_json::Value;

use crate::authn::cache::Principal;
use crate::state::AppState;

/// The largest workload token read, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A trusted issuer with its keys.
#[derive(Debug)]
pub struct Trusted {
    /// Its configuration.
    pub record: TrustedIssuer,
    /// Its public keys.
    pub keys: KeyCache,
}

/// One mode's trusted issuers, by `iss`.
#[derive(Debug, Default)]
struct TrustedSet {
    by_issuer: HashMap<String, Arc<Trusted>>,
}

#[derive(Debug, Default)]
struct Slot {
    /// `None` until loaded, and again after an invalidation.
    set: Option<Arc<TrustedSet>>,
    /// The last set loaded, whose key caches a reload reuses.
    previous: Option<Arc<TrustedSet>>,
    /// Bumped by each invalidation, so a load that raced one is not kept.
    generation: u64,
}

/// The trusted issuers of both modes, in memory.
#[derive(Debug)]
pub struct Federation {
    slots: [RwLock<Slot>; 2],
    http: reqwest::Client,
}

impl Default for Federation {
    fn default() -> Self {
        Federation {
            slots: Default::default(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

fn slot_index(mode: Mode) -> usize {
    match mode {
        Mode::Test => 0,
        Mode::Live => 1,
    }
}

impl Federation {
    /// Drops a mode's trusted issuers: the next exchange reloads them.
    pub fn invalidate(&self, mode: Mode) {
        let mut slot = self.slots[slot_index(mode)].write();
        if let Some(set) = slot.set.take() {
            slot.previous = Some(set);
        }
        slot.generation += 1;
    }

    /// Drops both modes' trusted issuers.
    pub fn invalidate_all(&self) {
        for mode in Mode::ALL {
            self.invalidate(mode);
        }
    }

    /// The mode's trusted issuer for `iss`, loading the mode's set if needed.
    async fn find(
        &self,
        state: &AppState,
        mode: Mode,
        iss: &str,
    ) -> StoreResult<Option<Arc<Trusted>>> {
        let (loaded, generation, previous) = {
            let slot = self.slots[slot_index(mode)].read();
            (slot.set.clone(), slot.generation, slot.previous.clone())
        };
        let set = match loaded {
            Some(set) => set,
            None => {
                let records = state.store.all_trusted_issuers(mode).await?;
                let set = Arc::new(self.build(state, records, previous.as_deref()));
                let mut slot = self.slots[slot_index(mode)].write();
                if slot.generation == generation {
                    slot.set = Some(set.clone());
                }
                set
            }
        };
        Ok(set.by_issuer.get(iss).cloned())
    }

    fn build(
        &self,
        state: &AppState,
        records: Vec<TrustedIssuer>,
        previous: Option<&TrustedSet>,
    ) -> TrustedSet {
        let mut by_issuer = HashMap::new();
        for record in records {
            let reused = previous
                .and_then(|p| p.by_issuer.values().find(|t| t.record.id == record.id))
                .filter(|t| t.record.jwks_uri == record.jwks_uri && t.record.jwks == record.jwks)
                .map(|t| t.keys.clone());
            let keys = match reused {
                Some(keys) => keys,
                None => match key_cache(state, &self.http, &record) {
                    Ok(keys) => keys,
                    Err(e) => {
                        // Checked when it was put; a set that no longer
                        // parses accepts nothing.
                        tracing::warn!(trusted_issuer = %record.id.as_str(), error = %e,
                            "the trusted issuer's static JWKS does not parse");
                        KeyCache::fixed(KeySet::default())
                    }
                },
            };
            by_issuer.insert(record.issuer.clone(), Arc::new(Trusted { record, keys }));
        }
        TrustedSet { by_issuer }
    }
}

/// The key cache of a trusted issuer's configuration.
fn key_cache(
    state: &AppState,
    http: &reqwest::Client,
    record: &TrustedIssuer,
) -> Result<KeyCache, KeySetError> {
    if let Some(jwks) = &record.jwks {
        return static_keys(jwks).map(KeyCache::fixed);
    }
    let clock = state.clock.clone();
    Ok(KeyCache::remote(
        record.jwks_uri.clone().unwrap_or_default(),
        http.clone(),
        Arc::new(move || clock.now().unix_timestamp()),
    ))
}

/// A static JWKS's usable keys. A set with none is refused: it could never
/// accept a token.
pub fn static_keys(jwks: &Value) -> Result<KeySet, KeySetError> {
    let jwks: Vec<_> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().cloned().filter_map(jwk_from_json).collect())
        .unwrap_or_default();
    let keys = KeySet::from_keys(&jwks)?;
    if keys.is_empty() {
        return Err(KeySetError::InvalidKey {
            kid: String::new(),
            reason: "no usable signing key (EdDSA, ES256 or RS256)",
        });
    }
    Ok(keys)
}

/// Why a workload token was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No trusted issuer of either mode has this `iss`.
    #[error("no trusted issuer has this iss")]
    UnknownIssuer,
    /// The token is not acceptable (signature, claims, no rule, no user).
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(why: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Refused(why.to_string())
}

/// An accepted workload token: whom it is issued to and how.
#[derive(Debug)]
pub struct Exchanged {
    /// The mode of the trusted issuer that accepted it.
    pub mode: Mode,
    /// The user the rule maps it to.
    pub principal: Arc<Principal>,
    /// The external issuer and subject (`act`).
    pub actor: Actor,
    /// The rule's tenant, which fixes the token's.
    pub tenant: Option<String>,
    /// The rule's roles, which bound the token's.
    pub roles: Option<BTreeSet<String>>,
    /// The rule's lifetime.
    pub ttl_seconds: Option<i64>,
}

/// Checks a workload token and maps it to a user: the trusted issuer its
/// `iss` names (in either mode; when both modes trust it, the one whose
/// audiences the token names), its signature with that issuer's keys, its
/// claims, and the first rule that matches. A `provision` rule creates its
/// user on first use.
pub async fn exchange(state: &AppState, token: &str) -> Result<Exchanged, ExchangeError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(refused("the token is too large"));
    }
    let iss = rules::unverified_issuer(token).ok_or_else(|| refused("not a JWT with an iss"))?;
    let mut candidates = Vec::new();
    for mode in Mode::ALL {
        if let Some(trusted) = state.federation.find(state, mode, &iss).await? {
            candidates.push((mode, trusted));
        }
    }
    if candidates.is_empty() {
        return Err(ExchangeError::UnknownIssuer);
    }
    let mut accepted = Vec::new();
    let mut last_refusal = None;
    for (mode, trusted) in candidates {
        match check(&trusted, token).await {
            Ok((actor, claims)) => accepted.push((mode, trusted, actor, claims)),
            Err(e) => last_refusal = Some(e),
        }
    }
    let (mode, trusted, actor, claims) = match accepted.len() {
        1 => accepted.remove(0),
        0 => return Err(last_refusal.unwrap_or_else(|| refused("not accepted"))),
        _ => {
            return Err(refused(
                "both modes trust this issuer and audience: give each mode its own audience",
            ))
        }
    };
    let (index, rule) = rules::first_match(&trusted.record.rules, &claims)
        .ok_or_else(|| refused("no rule of the trusted issuer matches the token"))?;
    let principal = match (&rule.user_id, &rule.provision) {
        (Some(user_id), _) => state
            .caches
            .principal(&state.store, mode, user_id.as_str())
            .await?
            .ok_or_else(|| refused(format!("rule {index}: its user does not exist")))?,
        (None, Some(provision)) => {
            let tenant = rule
                .tenant_id
                .as_ref()
                .ok_or_else(|| refused(format!("rule {index}: provision without a tenant")))?;
            let roles: Vec<String> = rule
                .roles
                .iter()
                .flatten()
                .map(|r| r.as_str().to_owned())
                .collect();
            provisioned(
                state,
                mode,
                &trusted.record,
                &actor,
                provision.kind,
                tenant.as_str(),
                &roles,
            )
            .await?
        }
        (None, None) => return Err(refused(format!("rule {index}: names no user"))),
    };
    if principal.user.disabled {
        return Err(refused("the mapped user is disabled"));
    }
    Ok(Exchanged {
        mode,
        principal,
        actor,
        tenant: rule.tenant_id.as_ref().map(|t| t.as_str().to_owned()),
        roles: rule
            .roles
            .as_ref()
            .map(|roles| roles.iter().map(|r| r.as_str().to_owned()).collect()),
        ttl_seconds: rule.ttl_seconds,
    })
}

/// The signature (the key's algorithm, never the header's) and the
/// registered claims.
async fn check(trusted: &Trusted, token: &str) -> Result<(Actor, Value), ExchangeError> {
    let record = &trusted.record;
    let verified = trusted
        .keys
        .verify_with(|keys, now| {
            let (_, claims) = verify_jws(token, keys)?;
            Ok((claims, now))
        })
        .await;
    let (claims, now) = verified.map_err(|e: VerifyError| refused(format!("signature: {e}")))?;
    let actor = rules::check_claims(&claims, &record.issuer, &record.audiences, now)
        .map_err(|TokenRefused(why)| refused(why))?;
    Ok((actor, claims))
}

/// The user a `provision` rule maps `actor` to: found in the cache when it
/// exists and holds the rule's roles; otherwise created (or widened) in one
/// store transaction, audited as the trusted issuer's doing.
async fn provisioned(
    state: &AppState,
    mode: Mode,
    trusted: &TrustedIssuer,
    actor: &Actor,
    kind: Option<UserKind>,
    tenant: &str,
    roles: &[String],
) -> Result<Arc<Principal>, ExchangeError> {
    let user_id = rules::provisioned_user_id(mode, actor);
    if let Some(principal) = state
        .caches
        .principal(&state.store, mode, user_id.as_str())
        .await?
    {
        let held = principal.direct.get(tenant);
        if roles.iter().all(|r| held.is_some_and(|h| h.contains(r))) {
            return Ok(principal);
        }
    }
    let mut metadata = JsonObject::new();
    metadata.insert("federatedIssuer".into(), actor.iss.clone().into());
    metadata.insert("federatedSubject".into(), actor.sub.clone().into());
    metadata.insert("trustedIssuerId".into(), trusted.id.as_str().into());
    let name: String = actor.sub.chars().take(200).collect();
    let user = NewUser {
        id: user_id.as_str().to_owned(),
        external_id: None,
        kind: kind.unwrap_or(UserKind::Machine),
        name,
        email: None,
        username: None,
        phone_number: None,
        email_verified: false,
        phone_verified: false,
        metadata,
        custom_claims: JsonObject::new(),
        disabled: false,
        token_ttl_seconds: None,
    };
    let written = state
        .store
        .provision_workload_user(mode, &user, tenant, roles, state.clock.now(), |done| {
            let action = if done.created.is_some() {
                AuditAction::UserCreated
            } else {
                AuditAction::MembershipSet
            };
            crate::admin::audit::event(
                state,
                Some(mode),
                action,
                AuditActor {
                    kind: "trusted_issuer".into(),
                    id: Some(trusted.id.as_str().to_owned()),
                },
                AuditTarget::new("user", user_id.as_str()),
                None,
            )
            .with_tenant(tenant)
            .with_detail("federatedSubject", actor.sub.clone())
            .with_detail("roles", done.roles.clone().unwrap_or_default())
        })
        .await;
    match written {
        Ok(written) => {
            state.applied(written).await;
        }
        // Another node created it at the same moment: it exists now.
        Err(StoreError::Conflict(_)) => state.caches.invalidate_user(mode, user_id.as_str()),
        Err(e) => return Err(e.into()),
    }
    state
        .caches
        .principal(&state.store, mode, user_id.as_str())
        .await?
        .ok_or_else(|| refused("the provisioned user is gone"))
}
