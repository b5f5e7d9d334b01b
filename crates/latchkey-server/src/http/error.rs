//! HTTP errors: RFC 9457 problem documents for `/v1` and RFC 6749 errors for
//! the OAuth endpoints. Every domain error maps to a status in one exhaustive
//! `match`; a 5xx body is generic while its cause goes to the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_core::oauth_form::FormError;
use latchkey_store::StoreError;
use latchkey_types::error::{ErrorCode, OAuthErrorBody, Problem};

/// Why a live credential over plain HTTP was refused, for people.
pub const TLS_REQUIRED_DETAIL: &str = "live-mode credentials are only accepted over TLS (https); \
    this request came over a connection that is not TLS, so its credential was not checked. \
    It crossed the network unencrypted: consider rotating it";

/// An error answered by a `/v1` route (or any non-OAuth route).
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed.
    InvalidRequest(String),
    /// 401: missing or invalid credential.
    Unauthenticated(&'static str),
    /// 403: valid credential, but the action is not allowed.
    Forbidden(String),
    /// 404: no such resource (in this mode) or route.
    NotFound(String),
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: conflicts with the stored state.
    Conflict(String),
    /// 403: a live credential over a connection that is not TLS.
    TlsRequired,
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 431: headers over the limit.
    HeadersTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType(String),
    /// 503: the store is unreachable.
    Unavailable,
    /// 429: too many attempts.
    RateLimited,
    /// 500: a bug or an unexpected failure; already logged.
    Internal,
    /// 401: a login factor was wrong (`invalid_credentials`).
    InvalidCredentials,
    /// 403: a login failed too often (`login_locked`).
    LoginLocked,
    /// 410: a login, code or link expired (`login_expired`).
    LoginExpired(&'static str),
    /// 503: a message could not be sent (`delivery_failed`).
    DeliveryFailed,
    /// 429 with `Retry-After` seconds.
    Throttled(u64),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorCode, &'static str, String) {
        match self {
            ApiError::InvalidRequest(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                "Invalid request",
                d.clone(),
            ),
            ApiError::Unauthenticated(d) => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "Unauthenticated",
                (*d).to_owned(),
            ),
            ApiError::Forbidden(d) => (
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "Forbidden",
                d.clone(),
            ),
            ApiError::NotFound(d) => (
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "Not found",
                d.clone(),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "Method not allowed",
                "this path does not support this method".to_owned(),
            ),
            ApiError::Conflict(d) => (
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "Conflict",
                d.clone(),
            ),
            ApiError::TlsRequired => (
                StatusCode::FORBIDDEN,
                ErrorCode::TlsRequired,
                "TLS required",
                TLS_REQUIRED_DETAIL.to_owned(),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "Payload too large",
                format!(
                    "request bodies are limited to {} bytes",
                    crate::MAX_BODY_BYTES
                ),
            ),
            ApiError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::HeadersTooLarge,
                "Request headers too large",
                format!(
                    "request headers are limited to {} bytes",
                    crate::app::MAX_HEADER_BYTES
                ),
            ),
            ApiError::UnsupportedMediaType(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "Unsupported media type",
                d.clone(),
            ),
            ApiError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "Too many requests",
                "too many failed attempts; retry after the time in Retry-After".to_owned(),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "Service unavailable",
                "the store is unavailable; try again shortly".to_owned(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "Internal error",
                "the server could not complete the request".to_owned(),
            ),
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidCredentials,
                "Invalid credentials",
                "the identifier or the factor is not valid".to_owned(),
            ),
            ApiError::LoginLocked => (
                StatusCode::FORBIDDEN,
                ErrorCode::LoginLocked,
                "Login locked",
                "this login failed too many times; start a new one".to_owned(),
            ),
            ApiError::LoginExpired(what) => (
                StatusCode::GONE,
                ErrorCode::LoginExpired,
                "Expired",
                format!("{what} has expired; start again"),
            ),
            ApiError::DeliveryFailed => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DeliveryFailed,
                "Delivery failed",
                "the message could not be sent; nothing was consumed, try again".to_owned(),
            ),
            ApiError::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "Too many requests",
                "too many failed attempts; retry after the time in Retry-After".to_owned(),
            ),
        }
    }

    /// Shorthand for a 404 naming what was missing.
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::Internal(cause) => {
                tracing::error!(error = %cause, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match self {
            ApiError::Throttled(seconds) => Some(seconds),
            _ => None,
        };
        let (status, code, title, detail) = self.parts();
        let body = Problem {
            type_: format!("https://latchkey.dev/problems/{}", code.as_str()),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"latchkey\""),
            );
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The RFC 6749 error codes the OAuth endpoints answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// Malformed request.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (an assertion) is not valid.
    InvalidGrant,
    /// A requested scope is not granted.
    InvalidScope,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// Unknown tenant or unacceptable audience/resource (RFC 8707).
    InvalidTarget,
    /// The client may not do this (revoke another client's token).
    UnauthorizedClient,
    /// A live credential over a connection that is not TLS.
    TlsRequired,
    /// The store is unreachable.
    TemporarilyUnavailable,
    /// Too many failed attempts from this address or for this client
    /// (429, with `Retry-After`).
    TooManyAttempts,
    /// The form is larger than the server accepts (413, as
    /// `invalid_request`).
    RequestTooLarge,
    /// Unexpected failure.
    ServerError,
    /// RFC 9470: the session's factors do not meet the policy of the
    /// tenant asked for (401, with the Bearer challenge naming it).
    InsufficientUserAuthentication,
}

/// An error answered by an OAuth endpoint.
#[derive(Debug)]
pub struct OAuthError {
    code: OAuthErrorCode,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    /// An error with a description for people.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// The one answer to every failed client authentication: an unknown
    /// client, a wrong, expired or malformed secret and a disabled user all
    /// look exactly the same.
    pub fn invalid_client(used_basic: bool) -> Self {
        OAuthError {
            code: OAuthErrorCode::InvalidClient,
            description: "client authentication failed".into(),
            basic_challenge: used_basic,
        }
    }

    /// The error code.
    pub fn code(&self) -> OAuthErrorCode {
        self.code
    }

    /// The description for people.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl From<FormError> for OAuthError {
    fn from(e: FormError) -> Self {
        match e {
            FormError::InvalidRequest(detail) => {
                OAuthError::new(OAuthErrorCode::InvalidRequest, detail)
            }
            FormError::InvalidClient { basic } => OAuthError::invalid_client(basic),
            FormError::UnsupportedGrantType(detail) => {
                OAuthError::new(OAuthErrorCode::UnsupportedGrantType, detail)
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match ApiError::from(e) {
            ApiError::Unavailable => OAuthError::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "the store is unavailable; try again shortly",
            ),
            _ => OAuthError::new(
                OAuthErrorCode::ServerError,
                "the server could not complete the request",
            ),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error) = match self.code {
            OAuthErrorCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            OAuthErrorCode::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            OAuthErrorCode::InvalidGrant => (StatusCode::BAD_REQUEST, "invalid_grant"),
            OAuthErrorCode::InvalidScope => (StatusCode::BAD_REQUEST, "invalid_scope"),
            OAuthErrorCode::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type")
            }
            OAuthErrorCode::InvalidTarget => (StatusCode::BAD_REQUEST, "invalid_target"),
            OAuthErrorCode::UnauthorizedClient => (StatusCode::BAD_REQUEST, "unauthorized_client"),
            OAuthErrorCode::TlsRequired => (StatusCode::FORBIDDEN, "tls_required"),
            OAuthErrorCode::TemporarilyUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            OAuthErrorCode::TooManyAttempts => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            OAuthErrorCode::RequestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
            OAuthErrorCode::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            OAuthErrorCode::InsufficientUserAuthentication => {
                (StatusCode::UNAUTHORIZED, "insufficient_user_authentication")
            }
        };
        let body = OAuthErrorBody {
            error: error.to_owned(),
            error_description: Some(self.description),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic_challenge {
                "Basic realm=\"latchkey\", charset=\"UTF-8\""
            } else if self.code == OAuthErrorCode::InsufficientUserAuthentication {
                "Bearer realm=\"latchkey\", error=\"insufficient_user_authentication\""
            } else {
                "Bearer realm=\"latchkey\""
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: FormError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = OAuthError::from(e).into_response();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = body_json(response);
        (status, challenge, body)
    }

    fn body_json(response: Response) -> serde_json::Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), 4096))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn form_errors_answer_with_their_oauth_code_and_challenge() {
        let (status, challenge, body) =
            answer(FormError::InvalidRequest("grant_type is required".into()));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(challenge, None);
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], "grant_type is required");

        let (status, challenge, body) = answer(FormError::InvalidClient { basic: true });
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.as_deref(),
            Some("Basic realm=\"latchkey\", charset=\"UTF-8\"")
        );
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], "client authentication failed");

        let (status, challenge, _) = answer(FormError::InvalidClient { basic: false });
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"latchkey\""));

        let (status, _, body) = answer(FormError::UnsupportedGrantType("only x".into()));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "unsupported_grant_type");
        assert_eq!(body["error_description"], "only x");
    }
}
