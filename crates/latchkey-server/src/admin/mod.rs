//! The write path around the store: a handler builds the write's audit
//! event here (`Admin::event`), the store commits it with the write and its
//! cross-node notification (`latchkey_store::Written`), and the committed
//! write is applied to this node's caches here (`AppState::applied`; other
//! nodes' writes as they arrive). Failed-authentication bursts, which record
//! no write, go through the audit log's bounded queue.

pub(crate) mod audit;
pub(crate) mod invalidation;
