//! The inbox: store each verified webhook durably, answer at once, process
//! it separately with retries, a dead letter queue and back-pressure.
//!
//! A receiver that processes inside the request makes the sender wait: a
//! slow handler makes it time out and retry, and a crash mid-handler loses
//! the event unless the sender retries. [`InboxLayer`], placed after
//! [`VerifyLayer`](crate::VerifyLayer), stores the verified request (its
//! authenticated id, scheme, signed timestamp, event type, the body exactly
//! as verified, the time received) and answers `200 OK` (or `202`) without
//! calling a handler. Workers started with [`Inbox::start`] then call your
//! handler with the typed event, retry a failure or a panic on the sender's
//! [`RetryPolicy`], and park what keeps failing in the dead letter queue,
//! from where [`Inbox::replay`] brings it back.
//!
//! ```
//! use axum::{Router, routing::post};
//! use webhook_guard::inbox::{Inbox, InboxEvent, MemoryInboxStore};
//! use webhook_guard::{Event, SecretSet, VerifyLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `SqliteInboxStore::open("inbox.db")?` in production.
//! let inbox = Inbox::builder(MemoryInboxStore::new()).build().await?;
//! let workers = inbox.start(|event: InboxEvent<Event>| async move {
//!     // `event.id` is stable across retries and redeliveries: key your own
//!     // writes by it to make them idempotent.
//!     println!("{} (attempt {}): {:?}", event.id, event.attempt, event.event);
//!     Ok::<(), std::convert::Infallible>(())
//! });
//! let app: Router = Router::new()
//!     // The route's handler is not called: the inbox answers.
//!     .route("/webhooks", post(|| async {}))
//!     .layer(inbox.layer())
//!     .layer(VerifyLayer::new(SecretSet::single("a-shared-secret-of-24-bytes")?));
//! # drop(workers);
//! # Ok(()) }
//! ```
//!
//! ## What the sender sees
//!
//! | case | answer |
//! |---|---|
//! | stored | `200 OK` (or the [`accepted_status`](InboxBuilder::accepted_status)), `{"accepted":true,"id":..}` |
//! | id already stored | `200 OK`, `X-Webhook-Duplicate: true`; nothing stored again |
//! | more than [`max_pending`](InboxBuilder::max_pending) unprocessed | `503` (or `429`) with `Retry-After` |
//! | the store failed | `503` with `Retry-After`; nothing stored |
//!
//! The id is unique in the store, so deduplication survives restarts (an
//! in-memory cache forgets on restart).
//!
//! ## Processing: at-least-once
//!
//! A worker claims an event under a lease and counts an attempt; `Ok` marks
//! it done; an `Err` or a panic schedules the next attempt on the
//! [`RetryPolicy`] and, once it is exhausted, dead-letters it. A body that
//! does not deserialize as the handler's type is dead-lettered at once.
//! While the handler runs, the worker renews the lease every third of the
//! [`lease`](InboxBuilder::lease), so a slow handler keeps its event. A
//! process that dies mid-handler stops renewing and leaves the lease behind;
//! once it expires the event is processed again (so does one whose store
//! stays unreachable for longer than the lease). So a handler may see an
//! event more than once: make its effects idempotent by keying them on
//! [`InboxEvent::id`], for example `INSERT .. ON CONFLICT (event_id) DO
//! NOTHING` in the same transaction as the work.
//!
//! ## Ordering
//!
//! Webhooks arrive in any order: a sender retries, runs several nodes, or
//! sends two events a millisecond apart that overtake each other, so
//! `ingestion.completed` may be stored before the `ingestion.started` of
//! the same job. With an [`ordering_key`](InboxBuilder::ordering_key),
//! computed from the JSON body when the event is stored (for example
//! tenant plus job id), events with the same key are processed one at a
//! time in signed-timestamp order, events with different keys (or none) in
//! parallel:
//!
//! - the workers hand out an event of a key only when no other event of
//!   that key is being processed and none that is still pending was signed
//!   earlier (events without a signed timestamp go by arrival); so when
//!   `completed` (signed at 20) and `started` (signed at 10) are both
//!   waiting, the handler sees `started` first, then `completed`;
//! - a failing event blocks the later events of its key while it is
//!   retried: head-of-line blocking is the price of order. Once it is done
//!   or dead-lettered, its key moves on (a replayed dead letter takes its
//!   place in the order again);
//! - an event that arrives after a later-signed event of its key was
//!   already processed (the `started` arrives once `completed` is done)
//!   cannot be put back in order. It reaches the handler with
//!   [`InboxEvent::stale`] set (the default [`StalePolicy::Deliver`]), or
//!   with [`StalePolicy::Skip`] is marked done without calling the handler,
//!   its `last_error` saying it was skipped.
//!
//! The store decides what is claimable in one atomic step (the [claim
//! rule](store#the-claim-rule-for-ordered-events)), so this holds across
//! workers and, with a shared store, across processes.
//!
//! ## Back-pressure
//!
//! With [`max_pending`](InboxBuilder::max_pending) set, a delivery that
//! arrives while that many events are unprocessed is answered `503` (or
//! `429`) with `Retry-After` = the time the workers need, at their recent
//! drain rate, to make room (1 s to 300 s). The sender of this crate honours
//! `Retry-After` on any non-2xx answer. Nothing is buffered in memory
//! beyond the requests in flight.
//!
//! ## When the store is down
//!
//! A failed insert is answered `503` with `Retry-After`
//! ([`unavailable_retry_after`](InboxBuilder::unavailable_retry_after)); the
//! insert is one transaction, so nothing is stored half-way.
//!
//! ## Tracing
//!
//! A well-formed `traceparent` header on the verified request
//! ([`Verified::traceparent`](crate::Verified::traceparent)) is stored with
//! the event ([`InboxEntry::traceparent`]) and handed to the handler
//! ([`InboxEvent::traceparent`]). Each attempt runs in an `inbox.process`
//! span with the fields `id`, `attempt`, and `trace_id` and
//! `parent_span_id` from that `traceparent`; with the `opentelemetry`
//! feature and a `tracing-opentelemetry` layer, the span's OpenTelemetry
//! parent is the sender's span, so the handler that really processes the
//! event joins the sender's trace. Retries, replays and attempts after a
//! restart continue the same trace: it is stored. Only `traceparent` is
//! kept; `tracestate` is not carried. See [`trace_context`](crate::trace_context).
//!
//! ## Metrics
//!
//! Through the [`metrics`] facade, named in [`metric_names`]: the depth
//! and the age of the oldest unprocessed event (gauges, sampled by the
//! workers), events processed, failed, dead-lettered, duplicates and
//! deliveries refused by back-pressure (counters), and the time from
//! receipt to the handler's start (a histogram).
//!
//! ## Watching it
//!
//! [`Inbox::counts`] says how many events are in each [`InboxState`]
//! (received, processing, failed and waiting for a retry, done, dead);
//! [`Inbox::events`], [`Inbox::dead_letters`] and [`Inbox::replay`] list
//! and replay them. The operator console (features `console` and `inbox`)
//! shows all of it in an inbox view, with
//! `Console::inbox`.
//!
//! ## Stores
//!
//! [`SqliteInboxStore`] (bundled SQLite, WAL, group commit, on the sender's
//! store thread), `PgInboxStore` (feature `postgres`: several receiver
//! instances share one inbox; claims with `FOR UPDATE SKIP LOCKED`) and
//! [`MemoryInboxStore`] (tests), behind [`InboxStore`].

mod backpressure;
mod builder;
mod layer;
pub mod metric_names;
mod service;
pub mod store;
mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

pub use self::builder::{InboxBuilder, StalePolicy};
pub use self::layer::InboxLayer;
pub use self::service::InboxService;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::store::PgInboxStore;
pub use self::store::{
    InboxCounts, InboxDepth, InboxEntry, InboxQuery, InboxState, InboxStatus, InboxStore,
    InboxStoreError, MemoryInboxStore, ReplaySelection, SqliteInboxStore,
};
pub use self::worker::{InboxEvent, InboxWorkers};
pub use crate::durable::retry::RetryPolicy;
pub use crate::idempotency::DUPLICATE_HEADER;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use crate::postgres::listen::ListenerTls;

use self::backpressure::Backlog;
use self::builder::Config;

/// A durable inbox: the [`InboxLayer`] that fills it, the workers that
/// drain it, and the operations on its history and dead letters. Cheap to
/// clone.
pub struct Inbox<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Inbox<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Inbox<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("store", &self.shared.store)
            .field("config", &self.shared.config)
            .field("unprocessed", &self.shared.backlog.unprocessed())
            .finish()
    }
}

/// What the layer, the workers and the handle share.
pub(crate) struct Shared<S> {
    pub(crate) store: S,
    pub(crate) config: Config,
    pub(crate) backlog: Backlog,
    /// Wakes idle workers when an event is stored or replayed.
    pub(crate) wake: Notify,
}

impl<S: InboxStore> Inbox<S> {
    /// An inbox over `store`, to configure.
    pub fn builder(store: S) -> InboxBuilder<S> {
        InboxBuilder::new(store)
    }

    /// The layer that stores verified requests in this inbox; place it after
    /// [`VerifyLayer`](crate::VerifyLayer) (add it with `.layer` *before*
    /// `VerifyLayer`: the layer added last runs first).
    pub fn layer(&self) -> InboxLayer<S> {
        InboxLayer::new(self.clone())
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// Unprocessed events (pending or being processed), as counted here.
    pub fn unprocessed(&self) -> u64 {
        self.shared.backlog.unprocessed()
    }

    /// The event with this id.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn event(&self, id: &str) -> Result<Option<InboxEntry>, InboxStoreError> {
        self.shared.store.event(id).await
    }

    /// History: the events `query` selects, newest first.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn events(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, InboxStoreError> {
        self.shared.store.events(query).await
    }

    /// How many events are in each [`InboxState`] now.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn counts(&self) -> Result<InboxCounts, InboxStoreError> {
        self.shared.store.counts(self.now_millis()).await
    }

    /// Now, on the inbox's clock, unix ms.
    pub(crate) fn now_millis(&self) -> i64 {
        self.shared.config.clock.now_millis()
    }

    /// The newest `limit` dead letters.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<InboxEntry>, InboxStoreError> {
        let query = InboxQuery::new(Some(InboxStatus::DeadLettered), limit);
        self.shared.store.events(&query).await
    }

    /// Makes the selected dead letters pending again (attempts counted from
    /// one again) and wakes the workers. Returns how many.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn replay(&self, selection: &ReplaySelection) -> Result<u64, InboxStoreError> {
        let n = self
            .shared
            .store
            .replay(selection, self.now_millis())
            .await?;
        self.shared.backlog.added(n);
        self.shared.wake.notify_waiters();
        Ok(n)
    }
}
