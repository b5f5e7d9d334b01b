//! `GET /v1/test-outbox`: the messages test mode sent without a delivery
//! channel (codes, links), for tests and local development. Test mode
//! only: a live admin key finds nothing here.

use axum::extract::State;
use latchkey_store::OutboxMessage;
use latchkey_types::error::Problem;
use latchkey_types::schema::Cursor;
use latchkey_types::{Mode, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_request, to_page};
use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_outbox))
}

/// A message test mode sent to the outbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// `msg_…`, in sending order.
    pub id: String,
    /// `email` or `sms`.
    pub channel: String,
    /// The address or phone number.
    pub to: String,
    /// The subject (email).
    pub subject: Option<String>,
    /// The text, with its code or link.
    pub text: String,
    /// When it was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

impl From<OutboxMessage> for OutboxEntry {
    fn from(m: OutboxMessage) -> Self {
        OutboxEntry {
            id: m.id,
            channel: m.channel,
            to: m.recipient,
            subject: m.subject,
            text: m.body,
            created_at: m.created_at,
        }
    }
}

/// Filter and paging of the outbox.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OutboxQuery {
    /// Only messages to this address or number.
    to: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// The test outbox, oldest first.
#[utoipa::path(get, path = "/v1/test-outbox", tag = "logins",
    security(("adminKey" = [])), params(OutboxQuery),
    responses((status = 200, body = Page<OutboxEntry>), (status = 404, body = Problem)))]
async fn list_outbox(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<axum::Json<Page<OutboxEntry>>, ApiError> {
    if admin.mode() != Mode::Test {
        return Err(ApiError::NotFound(
            "the test outbox exists in test mode only".into(),
        ));
    }
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = state.store.outbox(q.to.as_deref(), &page).await?;
    Ok(axum::Json(to_page(found.map(OutboxEntry::from))))
}
