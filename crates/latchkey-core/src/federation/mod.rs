//! Federation's rules: which workload tokens a trusted issuer's
//! configuration accepts and whom they map to (`workload`), and the glob
//! patterns its rules are written in (`glob`), and SSO with OpenID Connect
//! and OAuth 2.0 (`oidc`) and SAML 2.0 (`saml`) providers.

pub mod glob;
pub mod oidc;
pub mod saml;
pub mod workload;
