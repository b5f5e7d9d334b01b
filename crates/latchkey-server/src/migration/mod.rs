//! Migration's server half: `POST /v1/import` reads NDJSON as it arrives
//! and applies each record in the store's import transaction
//! ([`import`]); `GET /v1/export` writes the mode's records back page by
//! page ([`export`]). The rules (what a line is, what a credential made
//! elsewhere becomes) are `latchkey_core::migration`.

pub mod export;
pub mod import;
pub mod lines;
