//! The SSO factor's routes: `POST /auth/logins/{id}/sso/{providerId}`
//! starts it (answers where to send the browser), and the provider sends
//! the browser back to the callback under the login's mode's issuer
//! (`{issuer}/auth/sso/{providerId}/callback` for live,
//! `{issuer}/test/auth/sso/{providerId}/callback` for test), which records
//! the factor and sends the browser on to the login's `redirectUri` with
//! `login_id` and the application's `state`: never a secret in a URL.

use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_types::error::Problem;
use latchkey_types::federation::{SsoRedirect, StartSso};
use latchkey_types::ids::{LoginId, ProviderId};
use latchkey_types::login::Factor;
use latchkey_types::Mode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::magic::{escape, page};
use crate::federation::sso::{self, CallbackQuery, Landing, SsoError};
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, RecordPath};
use crate::http::transport::Credentials;
use crate::login::engine;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sso_step))
        .routes(routes!(live_callback))
        .routes(routes!(test_callback))
}

/// An SSO failure as the API answers it.
pub fn api_error(e: SsoError) -> ApiError {
    match e {
        SsoError::UnknownProvider => ApiError::not_found("identity provider"),
        SsoError::Provider(why) => {
            tracing::warn!(reason = %why, "identity provider failed");
            ApiError::Unavailable
        }
        SsoError::Refused(why) => ApiError::InvalidRequest(why),
        SsoError::Store(e) => e.into(),
    }
}

/// Starts the `sso:<providerId>` factor: answers the provider's
/// authorization URL (with `state`, `nonce` and a PKCE S256 challenge) for
/// the browser. The factor is recorded when the provider sends the browser
/// back; poll the login to see it.
#[utoipa::path(post, path = "/auth/logins/{id}/sso/{providerId}", tag = "logins",
    security(("loginSecret" = [])),
    params(("id" = LoginId, Path), ("providerId" = inline(ProviderId), Path)),
    request_body = StartSso,
    responses((status = 200, body = SsoRedirect), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem),
        (status = 503, body = Problem)))]
async fn sso_step(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    RecordPath((id, provider)): RecordPath<(LoginId, ProviderId)>,
    ApiJson(body): ApiJson<StartSso>,
) -> Result<axum::Json<SsoRedirect>, ApiError> {
    if body
        .state
        .as_ref()
        .is_some_and(|s| s.len() > 512 || s.contains('\0'))
    {
        return Err(ApiError::InvalidRequest(
            "state has at most 512 bytes".into(),
        ));
    }
    let login = engine::authorize(&state, &id, &credentials).await?;
    login.require_offered(&Factor::Sso(provider.as_str().to_owned()))?;
    let url = sso::start(&state, &login, provider.as_str(), body.state)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(SsoRedirect {
        authorization_url: url,
    }))
}

/// Where the browser goes from the callback: the login's `redirectUri`
/// with `login_id`, the application's `state`, and `error` when the factor
/// failed; or, for a login without one, a page that says what happened.
pub(crate) fn land(landing: Option<Landing>, error: Option<&SsoError>) -> Response {
    if let Some(e) = error {
        tracing::info!(reason = %e, "SSO callback refused");
    }
    let Some(landing) = landing else {
        return page(
            StatusCode::BAD_REQUEST,
            "This sign-in cannot continue",
            "<p>The sign-in was already completed, has expired, or did not start here. \
             Start it again from your application.</p>",
        );
    };
    if let Some(uri) = &landing.redirect_uri {
        let Ok(mut url) = reqwest::Url::parse(uri) else {
            return page(StatusCode::BAD_REQUEST, "This sign-in cannot continue", "");
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("login_id", &landing.login_id);
            if let Some(s) = &landing.client_state {
                q.append_pair("state", s);
            }
            match (error, &landing.browser_code) {
                (Some(_), _) => {
                    q.append_pair("error", "access_denied");
                }
                (None, Some(code)) => {
                    q.append_pair("code", code);
                }
                (None, None) => {}
            }
        }
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(location) = HeaderValue::from_str(url.as_str()) {
            response.headers_mut().insert(LOCATION, location);
        }
        return response;
    }
    match error {
        None => page(
            StatusCode::OK,
            "Signed in",
            "<p>You are signed in. You can close this window and return to your application.</p>",
        ),
        Some(e) => page(
            StatusCode::BAD_REQUEST,
            "The sign-in failed",
            &format!("<p>{}</p>", escape(&public_reason(e))),
        ),
    }
}

/// What a person may be told.
fn public_reason(e: &SsoError) -> String {
    match e {
        SsoError::Refused(why) => format!("The identity provider's answer was refused: {why}."),
        SsoError::Provider(_) => "The identity provider could not be reached.".into(),
        SsoError::UnknownProvider => "This identity provider is not configured.".into(),
        SsoError::Store(_) => "The sign-in could not be recorded; try again.".into(),
    }
}

async fn callback(state: &AppState, mode: Mode, provider: &str, query: CallbackQuery) -> Response {
    match sso::callback(state, mode, provider, sso::Returned::Oauth(&query)).await {
        Ok(landing) => land(Some(landing), None),
        Err((landing, e)) => land(landing, Some(&e)),
    }
}

/// The live mode's callback: the provider sends the browser here with
/// `code`, `state` and (RFC 9207) `iss`.
#[utoipa::path(get, path = "/auth/sso/{providerId}/callback", tag = "logins",
    params(("providerId" = inline(ProviderId), Path),
        ("code" = Option<String>, Query), ("state" = Option<String>, Query),
        ("iss" = Option<String>, Query), ("error" = Option<String>, Query)),
    responses((status = 303, description = "On to the login's redirectUri"),
        (status = 200, description = "Signed in (a login without redirectUri)", content_type = "text/html"),
        (status = 400, description = "The sign-in failed", content_type = "text/html"),
        (status = 404, body = Problem, description = "A malformed provider id names no provider")))]
async fn live_callback(
    State(state): State<AppState>,
    RecordPath(provider): RecordPath<ProviderId>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    callback(&state, Mode::Live, provider.as_str(), query).await
}

/// The test mode's callback (under the test issuer, `{issuer}/test`).
#[utoipa::path(get, path = "/test/auth/sso/{providerId}/callback", tag = "logins",
    params(("providerId" = inline(ProviderId), Path),
        ("code" = Option<String>, Query), ("state" = Option<String>, Query),
        ("iss" = Option<String>, Query), ("error" = Option<String>, Query)),
    responses((status = 303, description = "On to the login's redirectUri"),
        (status = 200, description = "Signed in (a login without redirectUri)", content_type = "text/html"),
        (status = 400, description = "The sign-in failed", content_type = "text/html"),
        (status = 404, body = Problem, description = "A malformed provider id names no provider")))]
async fn test_callback(
    State(state): State<AppState>,
    RecordPath(provider): RecordPath<ProviderId>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    callback(&state, Mode::Test, provider.as_str(), query).await
}
