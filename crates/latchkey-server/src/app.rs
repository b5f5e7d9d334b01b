//! The axum application: every route module merged under one OpenAPI
//! document, with the cross-cutting layers (body limit, tracing, panics as
//! generic 500s) and problem-document fallbacks for unknown paths and methods.

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Machine-to-machine authentication: tenants, machines, RBAC, \
                       client secrets and JWT access tokens."
    ),
    modifiers(&AdminKeyScheme),
    tags(
        (name = "health", description = "Probes and the API description"),
        (name = "tenants", description = "The workspace, tenants and memberships"),
        (name = "roles", description = "The role catalog"),
        (name = "users", description = "Machines, people and client secrets"),
        (name = "oauth", description = "OAuth 2.0 token endpoint, metadata and JWKS"),
    )
)]
struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_<mode>_admin_…")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, serialised once.
#[derive(Debug, Clone)]
struct OpenApiJson(Arc<String>);

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// The router and its OpenAPI document, before state is attached.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .merge(routes::health::router())
        .merge(routes::oauth::router())
        .merge(routes::tenants::router())
        .merge(routes::roles::router())
        .merge(routes::users::router())
        .split_for_parts()
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// The complete application.
pub fn app(state: AppState) -> Router {
    let (router, api) = routes();
    let json = api.to_json().unwrap_or_else(|_| "{}".to_owned());
    router
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(Extension(OpenApiJson(Arc::new(json))))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message may hold request data; it is not echoed. The panic
    // hook has already printed it to the log.
    tracing::error!("a request handler panicked");
    ApiError::Internal.into_response()
}
