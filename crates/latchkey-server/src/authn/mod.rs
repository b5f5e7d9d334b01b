//! Checking credentials, on the hot path and without a database write: admin
//! keys and verify callers, API keys, client secrets and signed assertions,
//! the brute-force guard, the caches that keep these checks in memory, and
//! what nodes share outside the store (rate limits, used assertion ids,
//! failure counts). The rules they apply are `latchkey-core`'s; a new login
//! factor's check goes here, beside them.

pub(crate) mod assertion;
pub(crate) mod auth;
pub(crate) mod bruteforce;
pub(crate) mod cache;
pub(crate) mod coordination;
pub(crate) mod keycheck;
