//! API tests: each spawns the real server on port 0 with its own fresh store
//! (SQLite, and PostgreSQL when `LATCHKEY_TEST_POSTGRES_URL` is set) and
//! talks HTTP to it, as clients do.

mod api_keys;
mod assertions;
mod attacks;
mod audit;
mod bad_input;
mod bruteforce;
mod closing;
mod custom_tokens;
mod delivery;
mod fleet;
mod flow;
mod helpers;
mod hotpath;
mod interop;
mod introspection;
mod limits;
mod logins;
mod metrics;
mod migration;
mod multinode;
mod oidc_interop;
mod openapi;
mod saml_interop;
mod signing_keys;
mod sso;
mod tls;
mod tokens;
mod workload;
