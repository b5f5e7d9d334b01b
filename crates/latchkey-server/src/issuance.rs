//! Token issuance, independent of how the client authenticated: resolve the
//! tenant, check the scope against the role catalog, choose the audience,
//! build the claims and sign. Everything here reads from the caches; once
//! warm, issuance touches no database.

use latchkey_core::token::{self, TokenGrant};
use latchkey_core::{authorization, rbac};
use latchkey_types::oauth::{Audience, TokenResponse};
use latchkey_types::{JsonObject, Mode};

use crate::cache::Principal;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::keycheck::VerifiedKey;
use crate::state::AppState;

/// The description of the error for a `tenant_id` that names no tenant.
pub const UNKNOWN_TENANT: &str = "tenant_id names no tenant";

/// What the client asked for.
#[derive(Debug, Default)]
pub struct TokenRequest<'a> {
    /// `tenant_id`: the workspace when absent.
    pub tenant_id: Option<&'a str>,
    /// `scope`: space-separated permissions.
    pub scope: Option<&'a str>,
    /// `audience` values (may repeat).
    pub audiences: Vec<&'a str>,
    /// `resource` values (RFC 8707, may repeat).
    pub resources: Vec<&'a str>,
    /// The API key the client authenticated with: it fixes the tenant and
    /// narrows the roles.
    pub key: Option<&'a VerifiedKey>,
    /// Extra claims (custom tokens), added after the user's custom claims.
    pub extra_claims: Option<&'a JsonObject>,
    /// Lifetime chosen by the caller (custom tokens), already capped.
    pub ttl_seconds: Option<i64>,
}

/// Issues an access token for an authenticated principal.
pub async fn issue(
    state: &AppState,
    mode: Mode,
    principal: &Principal,
    request: &TokenRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let tree = state.caches.tree(&state.store, mode).await?;
    let key_tenant = request.key.map(|k| k.key.tenant_id());
    let tenant = match (request.tenant_id, key_tenant) {
        (Some(asked), Some(fixed)) if asked != fixed => {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                "an API key's tokens are scoped to the key's tenant",
            ))
        }
        (_, Some(fixed)) => fixed,
        (Some(asked), None) => asked,
        (None, None) => state.workspace.id.as_str(),
    };
    let allowed = request.key.and_then(VerifiedKey::allowed_roles);
    if !tree.contains(tenant) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidTarget,
            UNKNOWN_TENANT,
        ));
    }
    let scope = match request.scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(requested) => {
            if requested.len() > 4096
                || !requested
                    .split(' ')
                    .filter(|t| !t.is_empty())
                    .all(latchkey_core::ids::is_valid_scope_token)
            {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    "scope is not a list of valid scope tokens",
                ));
            }
            let catalog = state.caches.catalog(&state.store, mode).await?;
            let mut roles = rbac::effective_roles(&tree, &principal.direct, tenant);
            if let Some(allowed) = &allowed {
                roles.retain(|r| allowed.contains(r));
            }
            let granted = catalog.permissions(&roles);
            let accepted = rbac::check_scope(requested, &granted).map_err(|missing| {
                OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!("no role the client holds in this tenant grants {missing:?}"),
                )
            })?;
            Some(accepted.join(" "))
        }
    };
    let audience = audience(state, mode, request)?;
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
    let authorization = authorization::bounded(
        &tree,
        &principal.direct,
        tenant,
        allowed.as_ref(),
        state.config.token_authorization_max_bytes,
    )
    .map_err(|e| {
        OAuthError::new(
            OAuthErrorCode::InvalidTarget,
            format!("tenant_id: {e} (token_authorization_max_bytes)"),
        )
    })?;
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
    })
}

/// The `aud` claim: every `audience` and `resource` given, or the mode's
/// issuer.
fn audience(
    state: &AppState,
    mode: Mode,
    request: &TokenRequest<'_>,
) -> Result<Audience, OAuthError> {
    let mut all: Vec<String> = Vec::new();
    for a in &request.audiences {
        if a.is_empty() || a.len() > 512 || a.contains(char::is_whitespace) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                "audience must be a non-empty identifier without spaces",
            ));
        }
        all.push((*a).to_owned());
    }
    for r in &request.resources {
        // RFC 8707 §2: an absolute URI without a fragment.
        let absolute = r.split_once(':').is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
        });
        if !absolute || r.contains('#') || r.len() > 512 || r.contains(char::is_whitespace) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                "resource must be an absolute URI without a fragment",
            ));
        }
        all.push((*r).to_owned());
    }
    all.sort();
    all.dedup();
    Ok(match all.len() {
        0 => Audience::One(state.config.issuer_of(mode).to_owned()),
        1 => Audience::One(all.remove(0)),
        _ => Audience::Many(all),
    })
}
