//! Latchkey's HTTP server, in rooms: `http` (connections, TLS, what a
//! request presents, extractors, errors, metrics), `authn` (credential
//! checks, the caches that keep them off the database, brute-force limits),
//! `tokens` (issuance, signing keys, the deny-list), `admin` (the write
//! path around the store), `login` (the login engine's server half:
//! logins, factors, sessions, password hashing on a budget), `routes` (one thin module per API area); at the
//! top, the router (`app`), configuration, start-up and bootstrap. The rules
//! are `latchkey-core`'s. ARCHITECTURE.md has a "where does X go" table.

mod admin;
mod app;
mod authn;
pub mod config;
mod federation;
mod http;
mod login;
mod migration;
mod routes;
mod startup;
mod state;
mod tokens;

pub use http::tls;

pub use app::{openapi, MAX_BODY_BYTES};
pub use config::{
    BootstrapKeys, Config, ConfigError, Database, MasterKeySource, Settings, TlsSource,
};
pub use routes::oauth::JWKS_MAX_AGE_SECONDS;
pub use startup::{run, spawn, spawn_on, RunningServer, ServerError};
