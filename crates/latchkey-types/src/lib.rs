//! Wire types of Latchkey's HTTP contract: request and response bodies, token
//! claims and error codes. No I/O lives here, so servers, clients and the
//! receiving-side library can all share the exact same JSON shapes.

pub mod admin;
pub mod audit;
pub mod error;
pub mod keys;
pub mod oauth;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The partition a record or credential belongs to. Test and live data never
/// see each other.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
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
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an identity is a machine or a person. Both are users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
