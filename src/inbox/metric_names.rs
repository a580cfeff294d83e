//! The names of the inbox's metrics, emitted through the [`metrics`]
//! facade (install any recorder, for example
//! `metrics-exporter-prometheus`). No metric carries a label.
//!
//! | name | type | what |
//! |---|---|---|
//! | [`DEPTH`] | gauge | events pending (waiting or being processed) |
//! | [`OLDEST_AGE_SECONDS`] | gauge | how long the oldest pending event has waited |
//! | [`PROCESSED`] | counter | events done |
//! | [`FAILED`] | counter | failed attempts scheduled for a retry |
//! | [`DEAD_LETTERED`] | counter | events moved to the dead letter queue |
//! | [`DUPLICATES`] | counter | deliveries of an id already stored |
//! | [`REFUSED`] | counter | deliveries refused because the inbox was full |
//! | [`HANDLER_START_SECONDS`] | histogram | time from receipt to the handler's start |
//!
//! The two gauges are sampled by the workers (one cheap store query,
//! [`InboxStore::depth`](super::InboxStore::depth)) every
//! [`depth_sample_interval`](super::InboxBuilder::depth_sample_interval),
//! so an instance that runs workers reports them, for the whole store when
//! it is shared.

/// Gauge, no labels: events pending in the store (waiting for an attempt
/// or being processed), as last sampled.
pub const DEPTH: &str = "webhook_guard_inbox_depth_events";
/// Gauge, no labels: seconds since the oldest pending event was received
/// (0 when none is pending), as last sampled. A growing value means the
/// workers are not keeping up, or an event keeps failing.
pub const OLDEST_AGE_SECONDS: &str = "webhook_guard_inbox_oldest_age_seconds";
/// Counter, no labels: events marked done: the handler returned `Ok`, or a
/// stale event was skipped under
/// [`StalePolicy::Skip`](super::StalePolicy::Skip).
pub const PROCESSED: &str = "webhook_guard_inbox_processed_total";
/// Counter, no labels: attempts that failed (an `Err` or a panic) and were
/// scheduled for a retry.
pub const FAILED: &str = "webhook_guard_inbox_failed_total";
/// Counter, no labels: events moved to the dead letter queue (retries
/// exhausted, or a body that does not deserialize as the handler's type).
pub const DEAD_LETTERED: &str = "webhook_guard_inbox_dead_lettered_total";
/// Counter, no labels: deliveries answered as duplicates (the id was
/// stored already; nothing was stored again).
pub const DUPLICATES: &str = "webhook_guard_inbox_duplicates_total";
/// Counter, no labels: deliveries refused with `503`/`429` and
/// `Retry-After` because [`max_pending`](super::InboxBuilder::max_pending)
/// events were unprocessed.
pub const REFUSED: &str = "webhook_guard_inbox_refused_total";
/// Histogram, no labels: seconds from an event's receipt (the insert) to
/// the start of its handler, on its first attempt (retries and replays
/// wait on purpose and are not recorded). Millisecond resolution.
pub const HANDLER_START_SECONDS: &str = "webhook_guard_inbox_accept_to_handler_seconds";
