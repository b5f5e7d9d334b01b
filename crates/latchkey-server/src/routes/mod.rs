//! The HTTP routes, one module per area, and what they share: pagination and
//! input validation.

pub mod api_keys;
pub mod health;
pub mod introspection;
pub mod oauth;
pub mod roles;
pub mod signing_keys;
pub mod tenants;
pub mod tokens;
pub mod users;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_store::{PageRequest, PageResult};
use latchkey_types::{JsonObject, Page};

use crate::error::ApiError;

/// Default and maximum page sizes of the contract.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Turns `?limit=&cursor=` into a store page request.
pub fn page_request(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                // Keys never hold U+0000, so no cursor the server issued does.
                .filter(|after| !after.contains('\0'))
                .ok_or_else(|| ApiError::InvalidRequest("cursor is not valid".into()))
        })
        .transpose()?;
    Ok(PageRequest { limit, after })
}

/// Turns a store page into the contract's `{data, nextCursor}`.
pub fn to_page<T>(result: PageResult<T>) -> Page<T> {
    Page {
        data: result.items,
        next_cursor: result.next_after.map(|a| URL_SAFE_NO_PAD.encode(a)),
    }
}

/// Checks a display name: 1 to 200 characters, not only whitespace, no
/// U+0000 (which PostgreSQL cannot store; refused on every store alike).
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must be 1 to 200 characters"
        )));
    }
    check_no_nul(field, name)
}

/// Checks an optional short text field (email, username, phone, labels)
/// by the rule of [`check_name`].
pub fn check_optional_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.trim().is_empty() || v.chars().count() > 200 => Err(ApiError::InvalidRequest(
            format!("{field} must be 1 to 200 characters when given"),
        )),
        Some(v) => check_no_nul(field, v),
        None => Ok(()),
    }
}

fn check_no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must not contain U+0000"
        )));
    }
    Ok(())
}

/// Checks a free-form JSON object stays small (8 KiB serialised).
pub fn check_object(field: &str, value: &JsonObject) -> Result<(), ApiError> {
    let size = serde_json::to_string(value)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > 8 * 1024 {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must serialise to at most 8 KiB"
        )));
    }
    Ok(())
}
