//! Integration tests of latchkey-verify: against mock issuers whose keys
//! and answers a test controls, and against a real spawned Latchkey server.
//! One binary, so the server is compiled and linked once.

mod api_keys;
mod jwks;
mod layer;
mod mutual;
mod server;
mod support;
