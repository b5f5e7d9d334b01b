//! Error shapes: RFC 9457 problem details for `/v1` and the stable machine
//! codes clients match on.

use serde::{Deserialize, Serialize};

/// The stable machine code of an `/v1` error. Clients match on this, never on
/// the human-readable `title` or `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, unknown field, wrong type, bad id.
    InvalidRequest,
    /// No credential, or one that is not valid.
    Unauthenticated,
    /// The credential is valid but may not do this.
    Forbidden,
    /// The resource does not exist (in the caller's mode).
    NotFound,
    /// The request conflicts with the current state (duplicate id, cycle, ...).
    Conflict,
    /// A live credential was presented over a connection that is not TLS.
    TlsRequired,
    /// Too many requests.
    RateLimited,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The request headers are larger than the server accepts.
    HeadersTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// The server could not answer; the cause is in its log.
    Internal,
    /// A dependency (the store) is unavailable.
    Unavailable,
    /// A login factor (password, code, link) was wrong; the same for an
    /// identifier that names nobody.
    InvalidCredentials,
    /// The login failed too often and is dead: start a new one.
    LoginLocked,
    /// The login (or its code or link) has expired: start a new one.
    LoginExpired,
    /// A code or link could not be sent; nothing was consumed.
    DeliveryFailed,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TlsRequired => "tls_required",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::LoginLocked => "login_locked",
            ErrorCode::LoginExpired => "login_expired",
            ErrorCode::DeliveryFailed => "delivery_failed",
        }
    }
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    /// The stable machine code.
    pub code: ErrorCode,
}

/// An RFC 6749 §5.2 error, as the OAuth endpoints answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `invalid_scope`,
    /// `unsupported_grant_type`, `invalid_target`, ...
    pub error: String,
    /// What went wrong, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}
