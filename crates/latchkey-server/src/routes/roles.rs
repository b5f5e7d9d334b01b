//! `/v1/roles`: the role catalog mapping role names to permissions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_types::admin::{PutRole, Role};
use latchkey_types::error::Problem;
use latchkey_types::ids::RoleName;
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_optional_text, page_request, to_page};
use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, RecordPath};
use crate::state::AppState;
use latchkey_types::audit::AuditAction;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles))
        .routes(routes!(put_role, get_role, delete_role))
}

/// Creates or replaces a role (201 when new, 200 when replaced).
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "roles",
    security(("adminKey" = [])), params(("name" = inline(RoleName), Path)),
    request_body = PutRole,
    responses((status = 200, body = Role), (status = 201, body = Role),
        (status = 400, body = Problem)))]
async fn put_role(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(name): ApiPath<RoleName>,
    ApiJson(body): ApiJson<PutRole>,
) -> Result<impl IntoResponse, ApiError> {
    if body.permissions.len() > 200 {
        return Err(ApiError::InvalidRequest(
            "at most 200 permissions per role".into(),
        ));
    }
    check_optional_text("description", body.description.as_deref())?;
    let mut permissions: Vec<String> = body.permissions.into_iter().map(String::from).collect();
    permissions.sort();
    permissions.dedup();
    let written = state
        .store
        .put_role(
            admin.mode(),
            &name,
            &permissions,
            body.description.as_deref(),
            state.clock.now(),
            |(role, created)| {
                admin
                    .event(&state, AuditAction::RolePut, "role", &name)
                    .with_detail("permissions", role.permissions.clone())
                    .with_detail("created", *created)
            },
        )
        .await?;
    let (role, created) = state.applied(written).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(role)))
}

/// Paging of `GET /v1/roles`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RoleListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// The role catalog, by name.
#[utoipa::path(get, path = "/v1/roles", tag = "roles",
    security(("adminKey" = [])), params(RoleListQuery),
    responses((status = 200, body = Page<Role>)))]
async fn list_roles(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<RoleListQuery>,
) -> Result<axum::Json<Page<Role>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(axum::Json(to_page(
        state.store.list_roles(admin.mode(), &page).await?,
    )))
}

/// One role.
#[utoipa::path(get, path = "/v1/roles/{name}", tag = "roles",
    security(("adminKey" = [])), params(("name" = inline(RoleName), Path)),
    responses((status = 200, body = Role), (status = 404, body = Problem)))]
async fn get_role(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(name): RecordPath<RoleName>,
) -> Result<axum::Json<Role>, ApiError> {
    Ok(axum::Json(state.store.get_role(admin.mode(), &name).await?))
}

/// Removes a role from the catalog; users keep the name, which then grants
/// no permission.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles",
    security(("adminKey" = [])), params(("name" = inline(RoleName), Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_role(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(name): RecordPath<RoleName>,
) -> Result<StatusCode, ApiError> {
    let event = admin.event(&state, AuditAction::RoleDeleted, "role", &name);
    let written = state
        .store
        .delete_role(admin.mode(), &name, |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
