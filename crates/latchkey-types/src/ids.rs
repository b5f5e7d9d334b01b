//! Identifiers that carry their rule: tenant ids, user ids, API-key ids,
//! role names and OAuth scope tokens. Each is a newtype that only holds a
//! valid value, checked when it is made (`parse`, `FromStr`, serde), and each
//! rule is written once, as a [`Shape`], from which both the check and the
//! OpenAPI pattern are derived: the document and the code cannot disagree.
//!
//! Request fields that *create* a name (a tenant id, a role, a permission)
//! use these types, so a bad value is refused while the body is read (400).
//! Fields and path segments that *refer* to a record may hold any text; the
//! server answers one no record can have like an unknown one (404).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An inclusive range of ASCII bytes.
type Span = (u8, u8);

/// `[a-z0-9]`.
const LOWER_ALNUM: &[Span] = &[(b'a', b'z'), (b'0', b'9')];
/// `[0-9A-Za-z]`.
const ALNUM: &[Span] = &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')];
/// `[a-z0-9_-]`.
const TENANT_REST: &[Span] = &[(b'a', b'z'), (b'0', b'9'), (b'_', b'_'), (b'-', b'-')];
/// `[a-z0-9:_-]`.
const ROLE_REST: &[Span] = &[
    (b'a', b'z'),
    (b'0', b'9'),
    (b':', b':'),
    (b'_', b'_'),
    (b'-', b'-'),
];
/// RFC 6749 §3.3 `NQCHAR`: printable ASCII but space, `"` and `\`.
const NQCHAR: &[Span] = &[(0x21, 0x21), (0x23, 0x5B), (0x5D, 0x7E)];

/// The shape of an identifier: a literal prefix, then one character of
/// `first` and up to `max_len - prefix.len() - 1` characters of `rest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    prefix: &'static str,
    first: &'static [Span],
    rest: &'static [Span],
    max_len: usize,
}

impl Shape {
    /// Whether `value` has this shape.
    pub fn admits(&self, value: &str) -> bool {
        let Some(body) = value.strip_prefix(self.prefix) else {
            return false;
        };
        let within = |spans: &[Span], c: &u8| spans.iter().any(|(lo, hi)| (*lo..=*hi).contains(c));
        let bytes = body.as_bytes();
        value.len() <= self.max_len
            && bytes.first().is_some_and(|c| within(self.first, c))
            && bytes[1..].iter().all(|c| within(self.rest, c))
    }

    /// The longest value, in bytes (every character is ASCII).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The regular expression of the shape, anchored (ECMA-262 and Rust's
    /// `regex` read it alike).
    pub fn pattern(&self) -> String {
        let body = self.max_len - self.prefix.len();
        let prefix: String = self.prefix.chars().flat_map(escape).collect();
        if self.first == self.rest {
            format!("^{prefix}{}{{1,{body}}}$", class(self.rest))
        } else {
            format!(
                "^{prefix}{}{}{{0,{}}}$",
                class(self.first),
                class(self.rest),
                body - 1
            )
        }
    }

    /// The character class of every character after the prefix, when they
    /// all share one (scope tokens), for patterns built from it.
    pub fn class(&self) -> String {
        class(self.rest)
    }
}

/// A bracketed character class of these spans (a lone `-` goes last,
/// where it needs no escape: `[a-z0-9_-]`).
fn class(spans: &[Span]) -> String {
    let mut out = String::from("[");
    let mut dash = false;
    for (lo, hi) in spans {
        if (*lo, *hi) == (b'-', b'-') {
            dash = true;
            continue;
        }
        out.extend(escape(char::from(*lo)));
        if lo != hi {
            out.push('-');
            out.extend(escape(char::from(*hi)));
        }
    }
    if dash {
        out.push('-');
    }
    out.push(']');
    out
}

/// `c`, escaped where a regular expression (in or out of a class) gives it
/// a meaning.
fn escape(c: char) -> impl Iterator<Item = char> {
    let special = "\\^$.|?*+()[]{}-".contains(c);
    special.then_some('\\').into_iter().chain([c])
}

/// A value that does not have an identifier's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} must match {pattern}")]
pub struct InvalidId {
    /// What was expected, such as `role name`.
    pub what: &'static str,
    /// The refused value, cut to 64 characters.
    pub value: String,
    /// The shape's pattern.
    pub pattern: String,
}

/// An identifier type: its shape and what it names.
pub trait Identifier: Sized {
    /// The rule.
    const SHAPE: Shape;
    /// What a value names, for messages: `tenant`, `user`, `role`.
    const RECORD: &'static str;
    /// How a value is called in messages: `tenant id`, `role name`.
    const WHAT: &'static str;
    /// Wraps a value known to have the shape.
    fn from_valid(value: String) -> Self;

    /// Whether `value` is one.
    fn is_valid(value: &str) -> bool {
        Self::SHAPE.admits(value)
    }

    /// `value` as one, or why not.
    fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        if Self::SHAPE.admits(&value) {
            Ok(Self::from_valid(value))
        } else {
            Err(InvalidId {
                what: Self::WHAT,
                value: value.chars().take(64).collect(),
                pattern: Self::SHAPE.pattern(),
            })
        }
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident {
        shape: $shape:expr,
        record: $record:literal,
        what: $what:literal,
        description: $description:literal $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl Identifier for $name {
            const SHAPE: Shape = $shape;
            const RECORD: &'static str = $record;
            const WHAT: &'static str = $what;
            fn from_valid(value: String) -> Self {
                $name(value)
            }
        }

        impl $name {
            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                <$name as Identifier>::parse(value)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                <$name as Identifier>::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        impl From<$name> for serde_json::Value {
            fn from(id: $name) -> serde_json::Value {
                serde_json::Value::String(id.0)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                let shape = <$name as Identifier>::SHAPE;
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(shape.pattern()))
                    .min_length(Some(1))
                    .max_length(Some(shape.max_len()))
                    .description(Some($description))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

identifier! {
    /// A tenant id: `[a-z0-9][a-z0-9_-]{0,62}`.
    TenantId {
        shape: Shape { prefix: "", first: LOWER_ALNUM, rest: TENANT_REST, max_len: 63 },
        record: "tenant",
        what: "tenant id",
        description: "A tenant id",
    }
}

identifier! {
    /// A user id: `usr_` and up to 60 letters and digits.
    UserId {
        shape: Shape { prefix: "usr_", first: ALNUM, rest: ALNUM, max_len: 64 },
        record: "user",
        what: "user id",
        description: "A user id",
    }
}

identifier! {
    /// An API key's id: `key_` and up to 60 letters and digits.
    ApiKeyId {
        shape: Shape { prefix: "key_", first: ALNUM, rest: ALNUM, max_len: 64 },
        record: "API key",
        what: "API key id",
        description: "An API key's id",
    }
}

identifier! {
    /// A login's id: `lgn_` and up to 60 letters and digits.
    LoginId {
        shape: Shape { prefix: "lgn_", first: ALNUM, rest: ALNUM, max_len: 64 },
        record: "login",
        what: "login id",
        description: "A login's id",
    }
}

identifier! {
    /// A session's id: `ses_` and up to 60 letters and digits.
    SessionId {
        shape: Shape { prefix: "ses_", first: ALNUM, rest: ALNUM, max_len: 64 },
        record: "session",
        what: "session id",
        description: "A session's id",
    }
}

identifier! {
    /// A role name: `[a-z0-9][a-z0-9:_-]{0,63}`.
    RoleName {
        shape: Shape { prefix: "", first: LOWER_ALNUM, rest: ROLE_REST, max_len: 64 },
        record: "role",
        what: "role name",
        description: "A role name",
    }
}

identifier! {
    /// An identity provider's id (Federation): `[a-z0-9][a-z0-9_-]{0,62}`,
    /// named by the `sso:<providerId>` factor.
    ProviderId {
        shape: Shape { prefix: "", first: LOWER_ALNUM, rest: TENANT_REST, max_len: 63 },
        record: "identity provider",
        what: "identity provider id",
        description: "An identity provider's id",
    }
}

identifier! {
    /// A trusted issuer's id (workload identity federation):
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    TrustedIssuerId {
        shape: Shape { prefix: "", first: LOWER_ALNUM, rest: TENANT_REST, max_len: 63 },
        record: "trusted issuer",
        what: "trusted issuer id",
        description: "A trusted issuer's id",
    }
}

identifier! {
    /// An OAuth scope token (RFC 6749 §3.3): printable ASCII but space, `"`
    /// and `\`, at most 128 characters.
    ScopeToken {
        shape: Shape { prefix: "", first: NQCHAR, rest: NQCHAR, max_len: 128 },
        record: "permission",
        what: "scope token",
        description: "An OAuth scope token such as `telemetry:write`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_contract_pattern() {
        for ok in ["a", "acme", "0-x_y", &"a".repeat(63)] {
            assert!(TenantId::is_valid(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "Acme", "a b", "a.b", &"a".repeat(64), "é"] {
            assert!(!TenantId::is_valid(bad), "{bad}");
        }
        assert_eq!(TenantId::SHAPE.pattern(), "^[a-z0-9][a-z0-9_-]{0,62}$");
    }

    #[test]
    fn role_names_follow_the_contract_pattern() {
        for ok in [
            "admin",
            "iot-remote",
            "telemetry:write",
            "a",
            &"r".repeat(64),
        ] {
            assert!(RoleName::is_valid(ok), "{ok}");
        }
        for bad in ["", ":a", "Admin", "a b", &"r".repeat(65)] {
            assert!(!RoleName::is_valid(bad), "{bad}");
        }
        assert_eq!(RoleName::SHAPE.pattern(), "^[a-z0-9][a-z0-9:_-]{0,63}$");
    }

    #[test]
    fn scope_tokens_exclude_space_quote_and_backslash() {
        assert!(ScopeToken::is_valid("telemetry:write"));
        assert!(ScopeToken::is_valid("https://api.example/read"));
        assert!(ScopeToken::is_valid(&"s".repeat(128)));
        for bad in ["", "a b", "a\"b", "a\\b", "é", &"s".repeat(129)] {
            assert!(!ScopeToken::is_valid(bad), "{bad}");
        }
        assert_eq!(ScopeToken::SHAPE.pattern(), "^[!#-\\[\\]-~]{1,128}$");
    }

    #[test]
    fn user_and_key_ids_have_their_prefix() {
        type Row<'a> = (&'a str, bool, bool);
        let long = format!("usr_{}", "a".repeat(60));
        let too_long = format!("usr_{}", "a".repeat(61));
        let rows: [Row; 8] = [
            ("usr_abc123", true, false),
            ("key_abc123", false, true),
            ("usr_", false, false),
            ("usr_a/b", false, false),
            ("usr_a_b", false, false),
            ("USR_abc", false, false),
            (&long, true, false),
            (&too_long, false, false),
        ];
        for (id, user, key) in rows {
            assert_eq!(UserId::is_valid(id), user, "{id}");
            assert_eq!(ApiKeyId::is_valid(id), key, "{id}");
        }
        assert_eq!(UserId::SHAPE.pattern(), "^usr_[0-9A-Za-z]{1,60}$");
    }

    #[test]
    fn values_are_checked_wherever_they_are_made() {
        let role: RoleName = serde_json::from_str("\"iot-remote\"").unwrap();
        assert_eq!(role, "iot-remote");
        assert_eq!(serde_json::to_string(&role).unwrap(), "\"iot-remote\"");
        let err = serde_json::from_str::<RoleName>("\"Admin\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("role name \"Admin\" must match ^[a-z0-9][a-z0-9:_-]{0,63}$"),
            "{err}"
        );
        assert!("a b".parse::<ScopeToken>().is_err());
        assert_eq!(
            TenantId::try_from("acme".to_owned()).unwrap().into_string(),
            "acme"
        );
        let long = "A".repeat(500);
        let err = RoleName::parse(long).unwrap_err();
        assert_eq!(err.value.len(), 64);
    }
}
