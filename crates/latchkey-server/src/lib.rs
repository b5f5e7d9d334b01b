//! Latchkey's HTTP server: configuration, start-up and bootstrap, the axum
//! routes, the admin and client authentication, the in-memory caches that
//! keep token issuance off the database, and the error mapping.

mod app;
mod assertion;
mod audit;
mod auth;
mod bruteforce;
mod cache;
pub mod config;
mod coordination;
mod denylist;
mod error;
mod extract;
mod invalidation;
mod issuance;
mod keycheck;
mod keyring;
mod metrics;
mod routes;
mod serve;
mod startup;
mod state;
pub mod tls;
mod transport;

pub use app::{openapi, MAX_BODY_BYTES};
pub use config::{
    BootstrapKeys, Config, ConfigError, Database, MasterKeySource, Settings, TlsSource,
};
pub use routes::oauth::JWKS_MAX_AGE_SECONDS;
pub use startup::{run, spawn, spawn_on, RunningServer, ServerError};
