//! The login engine's server half: logins read and moved through the store
//! (`engine`), codes and links sent by email, SMS or to the test outbox
//! (`delivery`), sessions and their refresh tokens (`sessions`), and password
//! hashing on a CPU budget (`hashing`). The rules (what is offered, what is
//! enough, what `amr` says, what a policy is) are `latchkey_core::login`'s.

pub mod delivery;
pub mod engine;
pub mod hashing;
pub mod sessions;
