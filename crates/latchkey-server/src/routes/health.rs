//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// A probe answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Status)))]
async fn healthz() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

/// The store is reachable.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Status), (status = 503, body = Status)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Status>) {
    if state.store.ping().await {
        (StatusCode::OK, axum::Json(Status { status: "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Status {
                status: "unavailable",
            }),
        )
    }
}
