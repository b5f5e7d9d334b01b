//! `/v1/tenants/{id}/login-policy`: a tenant's login policy. A tenant
//! without one takes its nearest ancestor's while the chain cascades; a
//! `cascade: false` boundary without one takes the built-in default. The
//! rule is `latchkey_core::login::policy::effective`.

use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::login::policy::{Policy, PolicySource};
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::ids::TenantId;
use latchkey_types::login::{EffectiveLoginPolicy, PutLoginPolicy};
use latchkey_types::Mode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, RecordPath};
use crate::login::engine;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy, delete_policy))
}

async fn effective(
    state: &AppState,
    mode: Mode,
    tenant: &TenantId,
) -> Result<EffectiveLoginPolicy, ApiError> {
    let tree = state.caches.tree(&state.store, mode).await?;
    if !tree.contains(tenant.as_str()) {
        return Err(ApiError::not_found("tenant"));
    }
    let (policy, source) = engine::effective_policy(state, mode, tenant.as_str()).await?;
    let (source, source_tenant_id) = match source {
        PolicySource::Tenant(t) => ("tenant".to_owned(), Some(t)),
        PolicySource::Default => ("default".to_owned(), None),
    };
    Ok(EffectiveLoginPolicy {
        tenant_id: tenant.as_str().to_owned(),
        source_tenant_id,
        source,
        policy: policy.to_wire(),
    })
}

/// The policy in force in a tenant, and the tenant it comes from.
#[utoipa::path(get, path = "/v1/tenants/{id}/login-policy", tag = "tenants",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EffectiveLoginPolicy), (status = 404, body = Problem)))]
async fn get_policy(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TenantId>,
) -> Result<axum::Json<EffectiveLoginPolicy>, ApiError> {
    Ok(axum::Json(effective(&state, admin.mode(), &id).await?))
}

/// Sets a tenant's own policy; fields left out take the workspace default
/// of the contract. Answers the effective policy.
#[utoipa::path(put, path = "/v1/tenants/{id}/login-policy", tag = "tenants",
    security(("adminKey" = [])), params(("id" = String, Path)), request_body = PutLoginPolicy,
    responses((status = 200, body = EffectiveLoginPolicy), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
async fn put_policy(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TenantId>,
    ApiJson(body): ApiJson<PutLoginPolicy>,
) -> Result<axum::Json<EffectiveLoginPolicy>, ApiError> {
    let policy = Policy::from_put(&body).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let wire = policy.to_wire();
    let event = admin
        .event(&state, AuditAction::LoginPolicySet, "tenant", id.as_str())
        .with_tenant(id.as_str())
        .with_detail("policy", serde_json::to_value(&wire).unwrap_or_default());
    let written = state
        .store
        .put_login_policy(admin.mode(), id.as_str(), &wire, state.clock.now(), |_| {
            event
        })
        .await?;
    state.applied(written).await;
    Ok(axum::Json(effective(&state, admin.mode(), &id).await?))
}

/// Removes a tenant's own policy: it takes the one above again. A tenant
/// without one of its own is left as it is (204 all the same).
#[utoipa::path(delete, path = "/v1/tenants/{id}/login-policy", tag = "tenants",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_policy(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TenantId>,
) -> Result<StatusCode, ApiError> {
    let event = admin
        .event(
            &state,
            AuditAction::LoginPolicyDeleted,
            "tenant",
            id.as_str(),
        )
        .with_tenant(id.as_str());
    let written = state
        .store
        .delete_login_policy(admin.mode(), id.as_str(), |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
