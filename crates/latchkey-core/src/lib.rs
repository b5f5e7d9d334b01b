//! Latchkey's domain: identifiers, credential formats, the tenant tree and
//! RBAC resolution, signing keys and token minting, and the reading of the
//! OAuth endpoints' forms. It does no I/O; time comes through the
//! [`clock::Clock`] trait so every rule can be tested with a fixed clock.

pub mod assertion;
pub mod authorization;
pub mod clock;
pub mod credential;
pub mod federation;
pub mod ids;
pub mod issuance;
pub mod keyplan;
pub mod login;
pub mod migration;
pub mod oauth_form;
pub mod rbac;
pub mod sealing;
pub mod signing;
pub mod token;

pub use latchkey_types::{Mode, UserKind};

/// A string that must never be logged: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The plain value, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}
