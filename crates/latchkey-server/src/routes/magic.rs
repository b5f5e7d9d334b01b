//! `/auth/magic`: where a magic link lands. The GET shows a page that asks
//! the person to confirm and never consumes the link (mail scanners and
//! link previews follow links); the page's form POSTs the token, which
//! passes the login's `magic_link` factor. The device that started the
//! login sees it when it next polls.

use axum::extract::{RawForm, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_types::login::Factor;
use latchkey_types::Mode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::transport::Credentials;
use crate::login::engine;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(confirm_page, confirm))
}

/// The confirmation form.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
struct MagicLinkForm {
    /// The link's token (`lk_<mode>_link_…`).
    token: String,
}

/// The link's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct LinkQuery {
    /// The link's token (`lk_<mode>_link_…`).
    token: Option<String>,
}

pub(crate) fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A small page: no script, no external resource, not framable, not
/// cached, and the token never sent on as a referrer.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;\
         margin:3rem auto;padding:0 1rem;line-height:1.5}}button{{font-size:1.1rem;padding:.6rem 1.2rem}}\
         </style></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// A link that names no waiting login (used, expired, mistyped): 404.
fn invalid() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This link does not work",
        "<p>The link was already used, has expired (links work for 10 minutes), or was copied \
         incompletely. Start the sign-in again on your device.</p>",
    )
}

/// The token's mode, when it is a well-formed link token.
fn link_mode(token: &str) -> Option<Mode> {
    credential::parse(token)
        .ok()
        .filter(|i| i.kind == CredentialKind::Link)
        .map(|i| i.mode)
}

/// Asks the person to confirm the sign-in. Never consumes the link.
#[utoipa::path(get, path = "/auth/magic", tag = "logins", params(LinkQuery),
    responses((status = 200, description = "The confirmation page", content_type = "text/html"),
        (status = 404, description = "The link names no waiting login", content_type = "text/html")))]
async fn confirm_page(RawQuery(query): RawQuery) -> Response {
    // Read by hand: a repeated or odd parameter is a link that does not
    // work, never a plain-text 400 from an extractor.
    let token = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let Some(token) = token.filter(|t| link_mode(t).is_some()) else {
        return invalid();
    };
    page(
        StatusCode::OK,
        "Confirm sign-in",
        &format!(
            "<p>Someone (we hope you) asked to sign in with this email address. \
             Confirm to finish signing in on the device that asked.</p>\
             <form method=\"post\" action=\"/auth/magic\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">Confirm sign-in</button></form>\
             <p>If you did not ask to sign in, close this page.</p>",
            escape(&token)
        ),
    )
}

/// Consumes the link: the login's `magic_link` factor is passed.
#[utoipa::path(post, path = "/auth/magic", tag = "logins",
    request_body(content = MagicLinkForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Signed in", content_type = "text/html"),
        (status = 404, description = "The link names no waiting login", content_type = "text/html"),
        (status = 403, description = "A live link over a connection that is not TLS", content_type = "text/html")))]
async fn confirm(
    State(state): State<AppState>,
    Credentials(credentials): Credentials,
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Response {
    let Ok(RawForm(body)) = form else {
        return invalid();
    };
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let Some((token, mode)) = token.and_then(|t| link_mode(&t).map(|m| (t, m))) else {
        return invalid();
    };
    if mode == Mode::Live && !credentials.secure {
        return page(
            StatusCode::FORBIDDEN,
            "Use the https link",
            "<p>This sign-in link only works over https.</p>",
        );
    }
    match consume(&state, mode, &token).await {
        Ok(true) => page(
            StatusCode::OK,
            "You are signed in",
            "<p>Go back to the device where you started: it continues by itself.</p>",
        ),
        Ok(false) => invalid(),
        Err(e) => {
            tracing::warn!(error = ?e, "a magic link could not be consumed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<p>Something went wrong on our side. Try the link again in a moment.</p>",
            )
        }
    }
}

/// Passes the magic-link factor of the login the token belongs to;
/// `false` when no live login waits for this token.
async fn consume(
    state: &AppState,
    mode: Mode,
    token: &str,
) -> Result<bool, crate::http::error::ApiError> {
    let digest = CredentialDigest::of(token).to_hex();
    let Some(record) = state.store.login_by_link(mode, &digest).await? else {
        return Ok(false);
    };
    let now = state.clock.now();
    let fresh = record
        .challenge
        .as_ref()
        .is_some_and(|c| c.expires_at > now)
        && record.expires_at > now
        && record.session_id.is_none();
    if !fresh {
        return Ok(false);
    }
    let login = engine::load(state, mode, record).await?;
    if login.user.is_none() {
        return Ok(false);
    }
    // The session waits for the login's holder; nothing is handed out here.
    let login = engine::passed(state, login, Factor::MagicLink, true).await?;
    engine::address_proven(state, &login, &Factor::MagicLink).await?;
    Ok(true)
}
