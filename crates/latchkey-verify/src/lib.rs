//! `latchkey-verify`: what a machine that RECEIVES Latchkey access tokens
//! and API keys embeds to decide, fast and without a database, whether a
//! request's credential is genuine and what it may do.
//!
//! The pure core ([`jwks`], [`jwt`], [`claims`]) has no I/O and builds with
//! `default-features = false`:
//!
//! ```
//! use latchkey_verify::{verify_jwt, Expectations, KeySet, Mode, VerifyError};
//! use latchkey_verify::JwkSet;
//!
//! # fn demo(jwks: &JwkSet, token: &str, now_unix: i64) -> Result<(), VerifyError> {
//! let keys = KeySet::from_jwks(jwks).expect("a valid JWKS");
//! let expect = Expectations::new("https://auth.example.com")
//!     .audience("https://telemetry.example.com")
//!     .mode(Mode::Live);
//! let claims = verify_jwt(token, &keys, &expect, now_unix)?;
//! if claims.has_role(claims.tenant_id(), "operator") { /* ... */ }
//! # Ok(()) }
//! ```
//!
//! Security rules that hold everywhere in this crate: the algorithm is the
//! key's (never the token header's); `none`, HMAC and `crit` are refused;
//! `jku`, `x5u` and `jwk` headers are never followed.

#![warn(missing_docs)]

pub mod apikey;
pub mod claims;
pub mod clock;
pub mod error;
pub mod jwks;
pub mod jwt;
#[cfg(feature = "axum")]
pub mod middleware;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(feature = "remote")]
pub mod remote_keys;

#[cfg(test)]
mod testing;

pub use apikey::{
    parse_credential, CredentialError, CredentialInfo, CredentialKind, InvalidDigest, KeyDigest,
    LocalKeyList,
};
pub use claims::Claims;
pub use clock::{Clock, SystemClock};
pub use error::VerifyError;
pub use jwks::{jwk_from_json, Algorithm, KeySet, KeySetError};
pub use jwt::{verify_jwt, Expectations};
pub use latchkey_types::oauth::{AccessTokenClaims, Audience, Jwk, JwkSet};
pub use latchkey_types::{Mode, UserKind};
#[cfg(feature = "remote")]
pub use remote::{DiscoveryError, KeyCache, Verifier, VerifierBuilder};
#[cfg(feature = "remote")]
pub use remote_keys::{
    ApiKeyError, ApiKeyInfo, RefusalCode, RemoteKeyVerifier, RemoteKeyVerifierBuilder,
};
