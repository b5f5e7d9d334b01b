//! How requests arrive and answers leave: the connection loop and TLS, what
//! a request presents (read once, with the TLS rule), extractors and error
//! shapes that speak the contract, and the metrics layer. Nothing here
//! decides who may do what.

pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod metrics;
pub(crate) mod serve;
pub mod tls;
pub(crate) mod transport;
