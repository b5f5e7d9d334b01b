//! Token issuance, independent of how the client authenticated: fetch the
//! inputs from the caches, let `latchkey_core::issuance::decide` decide the
//! tenant, scope, audience and `authorization` claim, then build the claims
//! and sign. Once warm, issuance touches no database.

use latchkey_core::issuance::{self, Asked, Decision, Inputs, Refusal};
use latchkey_core::token::{self, SessionClaims, TokenGrant};
use std::collections::BTreeSet;

use latchkey_types::oauth::{Actor, TokenResponse};
use latchkey_types::{JsonObject, Mode};

use crate::authn::cache::Principal;
use crate::authn::keycheck::VerifiedKey;
use crate::http::error::{OAuthError, OAuthErrorCode};
use crate::state::AppState;

/// The description of the error for a `tenant_id` that names no tenant.
pub use latchkey_core::issuance::UNKNOWN_TENANT;

/// What the client asked for.
#[derive(Debug, Default)]
pub struct TokenRequest<'a> {
    /// The tenant, scope, audiences and resources asked for (core fills
    /// the key's part from `key`).
    pub asked: Asked<'a>,
    /// The API key the client authenticated with: it fixes the tenant and
    /// narrows the roles.
    pub key: Option<&'a VerifiedKey>,
    /// Extra claims (custom tokens), added after the user's custom claims.
    pub extra_claims: Option<&'a JsonObject>,
    /// Lifetime chosen by the caller (custom tokens), already capped.
    pub ttl_seconds: Option<i64>,
    /// The login session the token belongs to (`sid`, `amr`, `auth_time`).
    pub session: Option<SessionClaims>,
    /// The external identity the token was exchanged for (`act`).
    pub actor: Option<Actor>,
    /// A tenant that fixes the token's, like an API key's (a workload
    /// rule's), when the client did not use a key.
    pub bound_tenant: Option<&'a str>,
    /// Roles that bound the token's, like an API key's (a workload rule's).
    pub bound_roles: Option<&'a BTreeSet<String>>,
}

/// Issues an access token for an authenticated principal.
pub async fn issue(
    state: &AppState,
    mode: Mode,
    principal: &Principal,
    request: &TokenRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let tree = state.caches.tree(&state.store, mode).await?;
    // The catalog is read only to grant a scope.
    let catalog = match request.asked.scope.map(str::trim).filter(|s| !s.is_empty()) {
        Some(_) => Some(state.caches.catalog(&state.store, mode).await?),
        None => None,
    };
    let key_roles = request.key.and_then(VerifiedKey::allowed_roles);
    let asked = Asked {
        key_tenant: request
            .key
            .map(|k| k.key.tenant_id())
            .or(request.bound_tenant),
        key_roles: key_roles.as_ref().or(request.bound_roles),
        ..request.asked.clone()
    };
    let inputs = Inputs {
        tree: &tree,
        direct: &principal.direct,
        catalog: catalog.as_deref(),
        workspace: &state.workspace.id,
        issuer: state.config.issuer_of(mode),
        budget: state.config.token_authorization_max_bytes,
    };
    let Decision {
        tenant,
        scope,
        audience,
        authorization,
    } = issuance::decide(&asked, &inputs).map_err(|refusal| match refusal {
        Refusal::InvalidTarget(why) => OAuthError::new(OAuthErrorCode::InvalidTarget, why),
        Refusal::InvalidScope(why) => OAuthError::new(OAuthErrorCode::InvalidScope, why),
    })?;
    let ttl = request.ttl_seconds.unwrap_or(
        principal
            .user
            .token_ttl_seconds
            .unwrap_or(state.config.token_ttl_seconds),
    );
    let merged;
    let custom_claims = match request.extra_claims {
        Some(extra) => {
            let mut all = principal.user.custom_claims.clone();
            all.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            merged = all;
            &merged
        }
        None => &principal.user.custom_claims,
    };
    if authorization.truncated {
        state.metrics.authorization_truncated(mode);
    }
    let claims = token::build_claims(TokenGrant {
        issuer: state.config.issuer_of(mode),
        user_id: &principal.user.id,
        kind: principal.user.kind,
        mode,
        tenant_id: tenant,
        audience,
        scope: scope.clone(),
        authorization: authorization.claim,
        authorization_truncated: authorization.truncated,
        custom_claims,
        ttl_seconds: ttl,
        now: state.clock.now(),
        session: request.session.clone(),
        actor: request.actor.clone(),
    });
    let key = state.keys.signing(mode, state.clock.now()).ok_or_else(|| {
        tracing::error!(%mode, "no signing key");
        OAuthError::new(OAuthErrorCode::ServerError, "the token could not be signed")
    })?;
    let access_token = token::sign(&key.key, &key.header, &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::new(OAuthErrorCode::ServerError, "the token could not be signed")
    })?;
    state.metrics.token_issued(mode);
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        scope,
        refresh_token: None,
        issued_token_type: None,
    })
}
