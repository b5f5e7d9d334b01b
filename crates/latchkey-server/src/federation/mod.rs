//! Federation's server half: trusted issuers whose JWTs the token endpoint
//! exchanges for Latchkey tokens (`workload`), and identity providers whose
//! logins are the `sso:<id>` factor (`sso`, with SAML's request and
//! response in `saml`). The rules (what a
//! configuration must say, which tokens are accepted, which rule maps a
//! token) are `latchkey_core::federation`; here they are fed from the
//! store, the keys fetched and cached, and users provisioned.

pub mod saml;
pub mod sso;
pub mod workload;
