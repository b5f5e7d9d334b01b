//! Issuing access tokens: what a request gets (core's decision, fed from
//! the caches), the signing-key ring that signs them, and the deny-list of
//! revoked ones.

pub(crate) mod denylist;
pub(crate) mod issuance;
pub(crate) mod keyring;
