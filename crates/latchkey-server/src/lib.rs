//! Latchkey's HTTP server: configuration, start-up and bootstrap, the axum
//! routes, the admin and client authentication, the in-memory caches that
//! keep token issuance off the database, and the error mapping.

pub mod config;
mod startup;

pub use config::{BootstrapKeys, Config, ConfigError, Database, Settings};
pub use startup::{run, spawn, RunningServer, ServerError};
