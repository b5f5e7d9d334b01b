//! Wire types of Latchkey's HTTP contract: request and response bodies, token
//! claims and error codes. No I/O lives here, so servers, clients and the
//! receiving-side library can all share the exact same JSON shapes.

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod credential;
pub mod error;
pub mod federation;
pub mod ids;
pub mod login;
pub mod migration;
pub mod oauth;
#[cfg(feature = "openapi")]
pub mod schema;

use serde::{Deserialize, Serialize};

/// The partition a record or credential belongs to. Test and live data never
/// see each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Test mode: works over plain HTTP, for development and CI.
    Test,
    /// Live mode: production data.
    Live,
}

impl Mode {
    /// Both modes, in a stable order.
    pub const ALL: [Mode; 2] = [Mode::Test, Mode::Live];

    /// The lowercase name used in credentials, JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }

    /// This mode's issuer on the Latchkey server whose configured issuer
    /// URL is `server` (no trailing slash): `server` itself for live,
    /// `{server}/test` for test. Each mode is its own issuer, with its own
    /// metadata and JWKS, so a standard JWT library configured for one
    /// never accepts the other's tokens.
    pub fn issuer(self, server: &str) -> String {
        match self {
            Mode::Live => server.to_owned(),
            Mode::Test => format!("{server}{TEST_ISSUER_PATH}"),
        }
    }
}

/// The path test mode's issuer adds to the server's issuer URL.
pub const TEST_ISSUER_PATH: &str = "/test";

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an identity is a machine or a person. Both are users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    /// A server, service, device or job (the default).
    #[default]
    Machine,
    /// A person.
    Human,
}

impl UserKind {
    /// The lowercase name used in JSON, claims and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Machine => "machine",
            UserKind::Human => "human",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<UserKind> {
        match s {
            "machine" => Some(UserKind::Machine),
            "human" => Some(UserKind::Human),
            _ => None,
        }
    }
}

/// A page of a list: `{"data": [...], "nextCursor": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Pass as `?cursor=` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A JSON object (`metadata`, `customClaims`).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Serde helper for PATCH bodies: tells an absent field (`None`) from an
/// explicit `null` (`Some(None)`).
pub mod nullable {
    use serde::{Deserialize, Deserializer};

    /// Deserializes a present field, `null` included, as `Some`.
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Serde helpers for integer fields: JSON has one number type, and JSON
/// Schema's `integer` is any number without a fractional part, so `3600.0`
/// is the integer 3600 as much as `3600` is (clients in languages with
/// one float type send it so). serde alone refuses it; these take it.
/// A fraction, or a value out of range, is still an error.
pub mod whole {
    use serde::de::{self, Deserializer, Visitor};
    use serde::Deserialize;

    /// An `i64` read from any whole JSON number.
    struct WholeI64(i64);

    impl<'de> Deserialize<'de> for WholeI64 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = WholeI64;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an integer")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<WholeI64, E> {
                    Ok(WholeI64(v))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<WholeI64, E> {
                    i64::try_from(v)
                        .map(WholeI64)
                        .map_err(|_| E::custom("integer out of range"))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<WholeI64, E> {
                    // -2^63 and 2^63 are exact as f64; the range is half-open.
                    if v.fract() != 0.0
                        || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v)
                    {
                        return Err(E::invalid_type(de::Unexpected::Float(v), &self));
                    }
                    Ok(WholeI64(v as i64))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// For an `i64` field.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        WholeI64::deserialize(d).map(|w| w.0)
    }

    /// For an `Option<i64>` field (with `#[serde(default)]`).
    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<WholeI64>::deserialize(d).map(|o| o.map(|w| w.0))
    }

    /// For an `Option<Option<i64>>` PATCH field, as [`crate::nullable`].
    pub fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        option(d).map(Some)
    }

    #[cfg(test)]
    mod tests {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "super::deserialize")]
            n: i64,
            #[serde(default, deserialize_with = "super::option")]
            o: Option<i64>,
        }

        #[test]
        fn whole_numbers_are_integers_in_any_spelling() {
            for (text, n) in [
                ("3600", 3600),
                ("3600.0", 3600),
                ("-5.0", -5),
                ("1e3", 1000),
                ("-0.0", 0),
            ] {
                let t: T =
                    serde_json::from_str(&format!(r#"{{"n": {text}, "o": {text}}}"#)).unwrap();
                assert_eq!((t.n, t.o), (n, Some(n)), "{text}");
            }
            let t: T = serde_json::from_str(r#"{"n": 1, "o": null}"#).unwrap();
            assert_eq!(t.o, None);
            let t: T = serde_json::from_str(r#"{"n": 1}"#).unwrap();
            assert_eq!(t.o, None);
        }

        #[test]
        fn fractions_out_of_range_values_and_other_types_are_refused() {
            for text in [
                "1.5",
                "1e19",
                "-1e19",
                "9223372036854775808",
                "\"1\"",
                "true",
                "[]",
            ] {
                let r = serde_json::from_str::<T>(&format!(r#"{{"n": {text}}}"#));
                assert!(r.is_err(), "{text} was accepted");
            }
            let t: T = serde_json::from_str(r#"{"n": 9223372036854775807}"#).unwrap();
            assert_eq!(t.n, i64::MAX);
        }
    }
}
