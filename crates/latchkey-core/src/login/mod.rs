//! The login engine's rules, pure and table-tested: the login policy of a
//! tenant and how it cascades (`policy`), what a login offers and when it is
//! complete (`flow`), one-time codes and the messages that carry them
//! (`codes`), passwords (`password`: Argon2id, the rules for new
//! ones), TOTP (`totp`: RFC 6238, otpauth URIs, QR codes) and what an API
//! key made from a session may be (`selfservice`). The server
//! stores logins and sessions and sends codes; what is enough is decided
//! here.

pub mod codes;
pub mod flow;
pub mod password;
pub mod policy;
pub mod selfservice;
pub mod totp;
