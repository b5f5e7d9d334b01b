//! `/v1/workspace`, `/v1/tenants` and tenant memberships.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::ids;
use latchkey_store::NewTenant;
use latchkey_types::admin::{CreateTenant, Membership, SetRoles, Tenant, UpdateTenant, Workspace};
use latchkey_types::error::Problem;
use latchkey_types::ids::{TenantId, UserId};
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_name, check_object, page_request, to_page};
use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, RecordPath};
use crate::state::AppState;
use latchkey_types::audit::AuditAction;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_workspace))
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(set_roles))
        .routes(routes!(list_members))
}

/// The workspace (root tenant) as the caller's mode sees it.
#[utoipa::path(get, path = "/v1/workspace", tag = "tenants",
    security(("adminKey" = [])),
    responses((status = 200, body = Workspace), (status = 401, body = Problem)))]
async fn get_workspace(State(state): State<AppState>, admin: Admin) -> axum::Json<Workspace> {
    axum::Json(Workspace {
        id: state.workspace.id.clone(),
        name: state.workspace.name.clone(),
        mode: admin.mode(),
        issuer: state.config.issuer_of(admin.mode()).to_owned(),
        token_ttl_seconds: state.config.token_ttl_seconds,
    })
}

/// Creates a tenant (under the workspace unless `parentId` is given).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    security(("adminKey" = [])),
    request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn create_tenant(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<impl IntoResponse, ApiError> {
    check_name("name", &body.name)?;
    let id = body
        .id
        .map(TenantId::into_string)
        .unwrap_or_else(ids::new_tenant_id);
    let metadata = body.metadata.unwrap_or_default();
    check_object("metadata", &metadata)?;
    let parent_id = body.parent_id.unwrap_or_else(|| state.workspace.id.clone());
    let new = NewTenant {
        id,
        name: body.name,
        parent_id,
        cascade: body.cascade.unwrap_or(true),
        metadata,
    };
    let written = state
        .store
        .create_tenant(admin.mode(), &new, state.clock.now(), |tenant| {
            admin
                .event(&state, AuditAction::TenantCreated, "tenant", &tenant.id)
                .with_tenant(&tenant.id)
                .with_detail("parentId", tenant.parent_id.clone())
                .with_detail("cascade", tenant.cascade)
        })
        .await?;
    let tenant = state.applied(written).await;
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

/// Filters and paging of `GET /v1/tenants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TenantListQuery {
    /// Only the direct children of this tenant.
    parent_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// Lists tenants below the workspace, by id.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    security(("adminKey" = [])), params(TenantListQuery),
    responses((status = 200, body = Page<Tenant>), (status = 400, body = Problem)))]
async fn list_tenants(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<TenantListQuery>,
) -> Result<axum::Json<Page<Tenant>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let result = state
        .store
        .list_tenants(admin.mode(), q.parent_id.as_deref(), &page)
        .await?;
    Ok(axum::Json(to_page(result)))
}

/// One tenant (the workspace's id gives the root, with `parentId: null`).
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = Problem)))]
async fn get_tenant(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TenantId>,
) -> Result<axum::Json<Tenant>, ApiError> {
    Ok(axum::Json(state.store.get_tenant(admin.mode(), &id).await?))
}

/// Renames, re-flags or moves a tenant. A move under itself or one of its
/// descendants is 409.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants",
    security(("adminKey" = [])), params(("id" = String, Path)),
    request_body = UpdateTenant,
    responses((status = 200, body = Tenant), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn update_tenant(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TenantId>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<axum::Json<Tenant>, ApiError> {
    if let Some(name) = &body.name {
        check_name("name", name)?;
    }
    if let Some(m) = &body.metadata {
        check_object("metadata", m)?;
    }
    let event = admin
        .event(&state, AuditAction::TenantUpdated, "tenant", &id)
        .with_tenant(&id)
        .with_detail("fields", crate::admin::audit::fields_set(&body));
    let written = state
        .store
        .update_tenant(admin.mode(), &id, &body, |_| event)
        .await?;
    let tenant = state.applied(written).await;
    Ok(axum::Json(tenant))
}

/// Deletes a tenant without children or members (409 otherwise).
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "tenants",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_tenant(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<TenantId>,
) -> Result<StatusCode, ApiError> {
    let event = admin
        .event(&state, AuditAction::TenantDeleted, "tenant", &id)
        .with_tenant(&id);
    let written = state
        .store
        .delete_tenant(admin.mode(), &id, |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the roles a user holds directly in a tenant (in the workspace: its
/// global roles). An empty list ends the membership (the answer then lists
/// no roles).
#[utoipa::path(put, path = "/v1/tenants/{tenantId}/users/{userId}/roles", tag = "tenants",
    security(("adminKey" = [])),
    params(("tenantId" = String, Path), ("userId" = String, Path)),
    request_body = SetRoles,
    responses((status = 200, body = Membership),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn set_roles(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath((tenant_id, user_id)): RecordPath<(TenantId, UserId)>,
    ApiJson(body): ApiJson<SetRoles>,
) -> Result<axum::Json<Membership>, ApiError> {
    if body.roles.len() > 100 {
        return Err(ApiError::InvalidRequest(
            "at most 100 roles per membership".into(),
        ));
    }
    let mut roles: Vec<String> = body.roles.into_iter().map(String::from).collect();
    roles.sort();
    roles.dedup();
    let now = state.clock.now();
    let event = admin
        .event(&state, AuditAction::MembershipSet, "user", &user_id)
        .with_tenant(&tenant_id)
        .with_detail("roles", roles.clone());
    let written = state
        .store
        .set_roles(admin.mode(), &tenant_id, &user_id, &roles, now, |_| event)
        .await?;
    let result = state.applied(written).await;
    Ok(axum::Json(result.unwrap_or(Membership {
        tenant_id: tenant_id.into_string(),
        user_id: user_id.into_string(),
        roles: Vec::new(),
        updated_at: now,
    })))
}

/// Paging of `GET /v1/tenants/{tenantId}/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MemberListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// The members of a tenant and the roles they hold there directly.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/users", tag = "tenants",
    security(("adminKey" = [])), params(("tenantId" = String, Path), MemberListQuery),
    responses((status = 200, body = Page<Membership>), (status = 404, body = Problem)))]
async fn list_members(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(tenant_id): RecordPath<TenantId>,
    ApiQuery(q): ApiQuery<MemberListQuery>,
) -> Result<axum::Json<Page<Membership>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let result = state
        .store
        .list_members(admin.mode(), &tenant_id, &page)
        .await?;
    Ok(axum::Json(to_page(result)))
}
