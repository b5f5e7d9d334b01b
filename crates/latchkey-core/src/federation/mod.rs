//! Federation's rules: which workload tokens a trusted issuer's
//! configuration accepts and whom they map to (`workload`), and the glob
//! patterns its rules are written in (`glob`).

pub mod glob;
pub mod oidc;
pub mod workload;
