//! Request extractors whose rejections speak the contract's error shape:
//! bad JSON, unknown fields, wrong types, a missing content type or an
//! oversized body each become a clear 4xx problem document.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;

use latchkey_types::ids::{
    ApiKeyId, Identifier, LoginId, ProviderId, RoleName, SessionId, TenantId, TrustedIssuerId,
    UserId,
};

use crate::http::error::ApiError;

/// `axum::Json` with problem-document rejections, for a body that must be a
/// JSON object (serde would otherwise also read a struct from an array such
/// as `[null, null]`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| {
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::InvalidRequest(
                "the body must be a JSON object".into(),
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// `axum::extract::Path` with problem-document rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Path segments that name records which must exist, such as
/// `/v1/users/{id}`: a segment whose shape no record can have is answered
/// like an unknown one (404, `user not found`), before any lookup. (A
/// segment that names something new, such as the role of `PUT
/// /v1/roles/{name}`, is an [`ApiPath`] of the identifier: a bad one is 400.)
#[derive(Debug)]
pub struct RecordPath<T>(pub T);

impl<T: Segments, S: Send + Sync> FromRequestParts<S> for RecordPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let ApiPath(segments) = ApiPath::<Vec<String>>::from_request_parts(parts, state).await?;
        T::from_segments(segments).map(RecordPath)
    }
}

/// What a [`RecordPath`] holds: one [`Segment`], or a pair.
pub trait Segments: Sized {
    /// Reads the path's segments, in order.
    fn from_segments(segments: Vec<String>) -> Result<Self, ApiError>;
}

/// One segment of a [`RecordPath`]: any text, or an identifier.
pub trait Segment: Sized {
    /// Reads one segment.
    fn from_segment(segment: String) -> Result<Self, ApiError>;
}

impl Segment for String {
    fn from_segment(segment: String) -> Result<Self, ApiError> {
        Ok(segment)
    }
}

macro_rules! identifier_segments {
    ($($id:ty),*) => {$(
        impl Segment for $id {
            fn from_segment(segment: String) -> Result<Self, ApiError> {
                reference(segment)
            }
        }
    )*};
}
identifier_segments!(
    TenantId,
    UserId,
    ApiKeyId,
    RoleName,
    LoginId,
    SessionId,
    TrustedIssuerId,
    ProviderId
);

impl<A: Segment> Segments for A {
    fn from_segments(segments: Vec<String>) -> Result<Self, ApiError> {
        let [a]: [String; 1] = segments.try_into().map_err(|_| wrong_segments())?;
        A::from_segment(a)
    }
}

impl<A: Segment, B: Segment> Segments for (A, B) {
    fn from_segments(segments: Vec<String>) -> Result<Self, ApiError> {
        let [a, b]: [String; 2] = segments.try_into().map_err(|_| wrong_segments())?;
        Ok((A::from_segment(a)?, B::from_segment(b)?))
    }
}

/// A route whose path has another number of parameters than its handler
/// reads: a programming error (every route is walked by the API tests).
fn wrong_segments() -> ApiError {
    tracing::error!("a route's path parameters do not match its handler");
    ApiError::Internal
}

/// A value that refers to a record by its id: one whose shape no record can
/// have names no record (404), as an unknown one does.
pub fn reference<T: Identifier>(value: impl Into<String>) -> Result<T, ApiError> {
    T::parse(value).map_err(|_| ApiError::not_found(T::RECORD))
}

/// `axum::extract::Query` with problem-document rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ),
            // Syntax errors (400) and data errors such as unknown fields or
            // wrong types (422 in axum) are all a 400 in our contract.
            _ => ApiError::InvalidRequest(clean_detail(&r.body_text())),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::InvalidRequest(clean_detail(&r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidRequest(clean_detail(&r.body_text()))
    }
}

/// Keeps rejection texts short and single-line.
fn clean_detail(text: &str) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() > 300 {
        one_line.chars().take(300).collect::<String>() + "…"
    } else {
        one_line
    }
}

/// A raw body, with the body limit answered as a problem document.
#[derive(Debug)]
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(ApiBytes(bytes)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(r) => Err(ApiError::InvalidRequest(clean_detail(&r.body_text()))),
        }
    }
}
