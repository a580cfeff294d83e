//! What the sender and the inbox share: the retry schedule, the back-off
//! while a store is down, the gauge sampler, and the SQLite store thread. The sender's outbox
//! and the receiver's inbox are the same machine turned around, so they run
//! on the same parts.

#[cfg(any(feature = "sender", feature = "inbox"))]
pub(crate) mod backoff;
#[cfg(any(feature = "sender", feature = "inbox"))]
pub(crate) mod periodic;
#[cfg(any(feature = "sender", feature = "inbox"))]
pub(crate) mod retry;
#[cfg(any(feature = "sqlite", feature = "inbox"))]
pub(crate) mod sqlite_engine;
