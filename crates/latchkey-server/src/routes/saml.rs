//! SAML's browser-facing routes, under each mode's issuer (live at
//! `{issuer}/auth/saml/…`, test at `{issuer}/test/auth/saml/…`): the SP
//! metadata an IdP is given, and the assertion consumer service where the
//! IdP's page posts the response (HTTP-POST binding). The ACS records the
//! factor and sends the browser on as the OIDC callback does.

use axum::extract::rejection::RawFormRejection;
use axum::extract::RawForm;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use latchkey_core::federation::saml::{self as saml_rules, Sp};
use latchkey_types::error::Problem;
use latchkey_types::federation::ProviderType;
use latchkey_types::ids::ProviderId;
use latchkey_types::Mode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sso::land;
use crate::federation::saml::sp_urls;
use crate::federation::sso::{self, Returned};
use crate::http::error::ApiError;
use crate::http::extract::RecordPath;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live_metadata))
        .routes(routes!(test_metadata))
        .routes(routes!(live_acs))
        .routes(routes!(test_acs))
}

async fn metadata(state: &AppState, mode: Mode, provider: &str) -> Result<Response, ApiError> {
    let record = state.store.identity_provider(mode, provider).await?;
    if record.as_ref().and_then(|r| r.config.kind) != Some(ProviderType::Saml) {
        return Err(ApiError::not_found("SAML identity provider"));
    }
    let (entity_id, acs_url) = sp_urls(state, mode, provider);
    let xml = saml_rules::sp_metadata(Sp {
        entity_id: &entity_id,
        acs_url: &acs_url,
    });
    let mut response = xml.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    Ok(response)
}

/// The live mode's SP metadata for a SAML provider: its URL is also the
/// SP's entity id.
#[utoipa::path(get, path = "/auth/saml/{providerId}/metadata", tag = "logins",
    params(("providerId" = inline(ProviderId), Path)),
    responses((status = 200, description = "SP metadata", content_type = "application/samlmetadata+xml"),
        (status = 404, body = Problem)))]
async fn live_metadata(
    State(state): State<AppState>,
    RecordPath(provider): RecordPath<ProviderId>,
) -> Result<Response, ApiError> {
    metadata(&state, Mode::Live, provider.as_str()).await
}

/// The test mode's SP metadata (under the test issuer).
#[utoipa::path(get, path = "/test/auth/saml/{providerId}/metadata", tag = "logins",
    params(("providerId" = inline(ProviderId), Path)),
    responses((status = 200, description = "SP metadata", content_type = "application/samlmetadata+xml"),
        (status = 404, body = Problem)))]
async fn test_metadata(
    State(state): State<AppState>,
    RecordPath(provider): RecordPath<ProviderId>,
) -> Result<Response, ApiError> {
    metadata(&state, Mode::Test, provider.as_str()).await
}

/// What the IdP's page posts (HTTP-POST binding).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The schema of the form, read field by field.
pub struct AcsForm {
    /// The response, base64.
    #[serde(rename = "SAMLResponse")]
    #[schema(max_length = 65536)]
    saml_response: Option<String>,
    /// The handle Latchkey sent with the request.
    #[serde(rename = "RelayState")]
    #[schema(max_length = 512)]
    relay_state: Option<String>,
}

async fn acs(
    state: &AppState,
    mode: Mode,
    provider: &str,
    form: Result<RawForm, RawFormRejection>,
) -> Response {
    let Ok(RawForm(body)) = form else {
        return land(
            None,
            Some(&sso::refused(
                "the post is not a form, or larger than the 64 KiB body limit",
            )),
        );
    };
    let (mut response, mut relay_state) = (None, None);
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "SAMLResponse" => response = Some(value.into_owned()),
            "RelayState" => relay_state = Some(value.into_owned()),
            _ => {}
        }
    }
    let Some(response) = response else {
        return land(None, Some(&sso::refused("the post has no SAMLResponse")));
    };
    let returned = Returned::Saml {
        response: &response,
        relay_state: relay_state.as_deref(),
    };
    match sso::callback(state, mode, provider, returned).await {
        Ok(landing) => land(Some(landing), None),
        Err((landing, e)) => land(landing, Some(&e)),
    }
}

/// The live mode's assertion consumer service.
#[utoipa::path(post, path = "/auth/saml/{providerId}/acs", tag = "logins",
    params(("providerId" = inline(ProviderId), Path)),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "On to the login's redirectUri"),
        (status = 200, description = "Signed in (a login without redirectUri)", content_type = "text/html"),
        (status = 400, description = "The sign-in failed", content_type = "text/html"),
        (status = 404, body = Problem, description = "A malformed provider id names no provider")))]
async fn live_acs(
    State(state): State<AppState>,
    RecordPath(provider): RecordPath<ProviderId>,
    form: Result<RawForm, RawFormRejection>,
) -> Response {
    acs(&state, Mode::Live, provider.as_str(), form).await
}

/// The test mode's assertion consumer service (under the test issuer).
#[utoipa::path(post, path = "/test/auth/saml/{providerId}/acs", tag = "logins",
    params(("providerId" = inline(ProviderId), Path)),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "On to the login's redirectUri"),
        (status = 200, description = "Signed in (a login without redirectUri)", content_type = "text/html"),
        (status = 400, description = "The sign-in failed", content_type = "text/html"),
        (status = 404, body = Problem, description = "A malformed provider id names no provider")))]
async fn test_acs(
    State(state): State<AppState>,
    RecordPath(provider): RecordPath<ProviderId>,
    form: Result<RawForm, RawFormRejection>,
) -> Response {
    acs(&state, Mode::Test, provider.as_str(), form).await
}
