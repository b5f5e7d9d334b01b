//! The HTTP routes, one module per area, and what they share: pagination and
//! input validation.

pub mod api_keys;
pub mod audit;
pub mod factors;
pub mod forms;
pub mod health;
pub mod identity_providers;
pub mod introspection;
pub mod login_policy;
pub mod logins;
pub mod magic;
pub mod me;
pub mod migration;
pub mod oauth;
pub mod outbox;
pub mod roles;
pub mod saml;
pub mod secrets;
pub mod sessions;
pub mod signing_keys;
pub mod sso;
pub mod tenants;
pub mod tokens;
pub mod trusted_issuers;
pub mod user_keys;
pub mod users;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_store::{PageRequest, PageResult};
use latchkey_types::schema::MAX_TEXT_CHARS;
use latchkey_types::{JsonObject, Page};

use crate::http::error::ApiError;

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
/// The OpenAPI document states this rule as `ShortText`.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > MAX_TEXT_CHARS {
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
        Some(v) if v.trim().is_empty() || v.chars().count() > MAX_TEXT_CHARS => Err(
            ApiError::InvalidRequest(format!("{field} must be 1 to 200 characters when given")),
        ),
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

#[cfg(test)]
mod tests {
    //! The OpenAPI document's text rules (`latchkey_types::schema`) are the
    //! server's: each pattern and length bound, read from the schema, agrees
    //! with the check the server runs, on awkward strings.

    use latchkey_types::ids::{ApiKeyId, Identifier, RoleName, ScopeToken, TenantId, UserId};
    use latchkey_types::schema::{EmailAddress, ShortText};
    use utoipa::openapi::{RefOr, Schema};
    use utoipa::PartialSchema;

    /// Whether the schema admits `value` (pattern, minLength, maxLength).
    fn admits<S: PartialSchema>(value: &str) -> bool {
        let RefOr::T(Schema::Object(o)) = S::schema() else {
            panic!("not an inline object schema");
        };
        let chars = value.chars().count();
        let pattern = regex::Regex::new(o.pattern.as_deref().unwrap()).unwrap();
        pattern.is_match(value)
            && o.min_length.is_none_or(|m| chars >= m)
            && o.max_length.is_none_or(|m| chars <= m)
    }

    fn samples() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "a",
            "A",
            "0",
            " ",
            "  a  ",
            "a b",
            "\t",
            "\n",
            "a\n",
            "\u{85}",
            "\u{a0}x",
            "\u{feff}",
            "\u{200b}",
            "\u{3000}",
            "\u{1c}",
            "a\u{0}",
            "\u{0}",
            "é",
            "a@b",
            "@",
            "a@",
            "@b",
            "a @b",
            "a@b\n",
            "a@@b",
            "x:y",
            "a_b-c",
            "-a",
            "a:b:c",
            "!",
            "\"",
            "\\",
            "~",
            "a~",
            "\u{7f}",
            "ab\u{1F600}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [62, 63, 64, 65, 127, 128, 129, 199, 200, 201] {
            out.push("a".repeat(n));
            out.push(format!("{}é", "é".repeat(n - 1)));
            out.push(format!("{} ", "a".repeat(n - 1)));
        }
        out
    }

    #[test]
    fn display_names_labels_and_emails_follow_the_documented_rules() {
        for s in samples() {
            assert_eq!(
                super::check_name("name", &s).is_ok(),
                admits::<ShortText>(&s),
                "{s:?}"
            );
            assert_eq!(
                super::check_optional_text("label", Some(&s)).is_ok(),
                admits::<ShortText>(&s),
                "{s:?}"
            );
            assert_eq!(
                crate::routes::users::check_email(Some(&s)).is_ok(),
                admits::<EmailAddress>(&s),
                "{s:?}"
            );
        }
    }

    /// An identifier's check and its documented schema agree on `s`.
    fn agree<T: Identifier + PartialSchema>(s: &str) {
        assert_eq!(T::is_valid(s), admits::<T>(s), "{} {s:?}", T::WHAT);
    }

    #[test]
    fn ids_role_names_and_scope_tokens_follow_the_documented_rules() {
        let mut samples = samples();
        samples
            .extend(["usr_abc", "usr_", "usr_a_b", "key_Z9", "Usr_a", "usr_é"].map(String::from));
        samples.push(format!("usr_{}", "a".repeat(60)));
        samples.push(format!("usr_{}", "a".repeat(61)));
        for s in samples {
            agree::<TenantId>(&s);
            agree::<RoleName>(&s);
            agree::<ScopeToken>(&s);
            agree::<UserId>(&s);
            agree::<ApiKeyId>(&s);
        }
    }
}
