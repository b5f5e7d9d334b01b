//! OpenAPI schemas of the string shapes the server checks (display names
//! and labels, emails, scope lists, cursors), so the published document
//! states the same rules as the code. A field uses one with
//! `#[schema(value_type = …)]`; the Rust field stays a `String`. The
//! identifiers carry their own schemas ([`crate::ids`]).

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::ids::{Identifier as _, ScopeToken};

/// The characters Rust's `char::is_whitespace` (Unicode `White_Space`)
/// matches, as the body of a regular-expression class. Spelled out rather
/// than `\s`, whose meaning differs between ECMA-262, Python and Rust.
macro_rules! white_space {
    () => {
        r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// Longest display name or label, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// A string schema with a pattern and length bounds.
fn string(pattern: &str, min: Option<usize>, max: Option<usize>, description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(min)
        .max_length(max)
        .description(Some(description))
        .into()
}

/// A display name or label: 1 to 200 characters, not all whitespace.
#[derive(Debug)]
pub struct ShortText;

impl PartialSchema for ShortText {
    fn schema() -> RefOr<Schema> {
        string(
            concat!(r"^[^\u0000]*[^", white_space!(), r"\u0000][^\u0000]*$"),
            Some(1),
            Some(MAX_TEXT_CHARS),
            "1 to 200 characters, not all whitespace, without U+0000",
        )
        .into()
    }
}
impl ToSchema for ShortText {}

/// A string with a character that is not whitespace, of any length.
#[derive(Debug)]
pub struct NonBlank;

impl PartialSchema for NonBlank {
    fn schema() -> RefOr<Schema> {
        string(
            concat!("[^", white_space!(), "]"),
            Some(1),
            None,
            "Not empty, not all whitespace",
        )
        .into()
    }
}
impl ToSchema for NonBlank {}

/// An email address as the server checks it: an `@`, no whitespace.
#[derive(Debug)]
pub struct EmailAddress;

impl PartialSchema for EmailAddress {
    fn schema() -> RefOr<Schema> {
        string(
            concat!(
                "^[^",
                white_space!(),
                r"@\u0000]*@[^",
                white_space!(),
                r"\u0000]*$"
            ),
            Some(1),
            Some(MAX_TEXT_CHARS),
            "An email address: at most 200 characters, with an `@`, no whitespace, no U+0000",
        )
        .into()
    }
}
impl ToSchema for EmailAddress {}

/// A `scope`: space-separated scope tokens, at most 4096 characters
/// (surrounding whitespace is ignored).
#[derive(Debug)]
pub struct ScopeList;

impl PartialSchema for ScopeList {
    fn schema() -> RefOr<Schema> {
        let token = format!(
            "{}{{1,{}}}",
            ScopeToken::SHAPE.class(),
            ScopeToken::SHAPE.max_len()
        );
        string(
            &format!(
                concat!(
                    "^[",
                    white_space!(),
                    "]*(?:{token}(?: +{token})*)?[",
                    white_space!(),
                    "]*$"
                ),
                token = token
            ),
            None,
            Some(4096),
            "Space-separated OAuth scope tokens",
        )
        .into()
    }
}
impl ToSchema for ScopeList {}

/// A signing algorithm: `EdDSA`, `ES256` or `RS256`.
#[derive(Debug)]
pub struct SigningAlgorithm;

impl PartialSchema for SigningAlgorithm {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["EdDSA", "ES256", "RS256"]))
            .description(Some("A signing algorithm"))
            .into()
    }
}
impl ToSchema for SigningAlgorithm {}

/// The `grant_type` of `POST /oauth/token`.
#[derive(Debug)]
pub struct GrantType;

impl PartialSchema for GrantType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::oauth::GRANT_TYPES))
            .description(Some("An OAuth grant type"))
            .into()
    }
}
impl ToSchema for GrantType {}

/// A page cursor: the `nextCursor` of the previous page, opaque, in the
/// URL-safe base64 alphabet.
#[derive(Debug)]
pub struct Cursor;

impl PartialSchema for Cursor {
    fn schema() -> RefOr<Schema> {
        string(
            "^[A-Za-z0-9_-]*$",
            None,
            None,
            "The `nextCursor` of the previous page (opaque)",
        )
        .into()
    }
}
impl ToSchema for Cursor {}

#[cfg(test)]
mod tests {
    //! The server's tests check each pattern against the check it states;
    //! here, that the whitespace class is exactly Rust's, char by char.

    #[test]
    fn the_whitespace_class_is_exactly_rusts_white_space() {
        // Expand the class body (ranges and \uXXXX escapes) into chars.
        let body = white_space!();
        let mut chars = Vec::new();
        let mut it = body.chars().peekable();
        let read = |it: &mut std::iter::Peekable<std::str::Chars>| -> char {
            match it.next().unwrap() {
                '\\' => match it.next().unwrap() {
                    't' => '\t',
                    'r' => '\r',
                    'u' => {
                        let hex: String = (0..4).map(|_| it.next().unwrap()).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                    }
                    other => panic!("unexpected escape {other}"),
                },
                c => c,
            }
        };
        while it.peek().is_some() {
            let first = read(&mut it);
            if it.peek() == Some(&'-') {
                it.next();
                let last = read(&mut it);
                chars.extend(first..=last);
            } else {
                chars.push(first);
            }
        }
        let expected: Vec<char> = (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        chars.sort();
        assert_eq!(chars, expected);
    }
}
