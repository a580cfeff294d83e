//! The sender: sign, deliver, retry, dead-letter and replay outgoing
//! webhooks, with nothing lost across restarts.
//!
//! [`Sender::publish`] stores one [`Delivery`] per matching [`Destination`]
//! before it returns (an outbox). Workers started with [`Sender::start`]
//! then sign each delivery with the same [`Scheme`](crate::Scheme) core that
//! [`VerifyLayer`](crate::VerifyLayer) verifies with, POST it (connect
//! timeout 5 s, total 15 s, redirects never followed) and record every
//! attempt. Only a 2xx counts as delivered. Failures are retried on the
//! [`RetryPolicy`] (1, 5 and 15 minutes by default, `Retry-After` honoured);
//! a `410 Gone` disables the destination; what still fails lands in the dead
//! letter queue, from where an operator can replay it.
//!
//! ```
//! use std::time::Duration;
//! use webhook_guard::sender::{
//!     AddressPolicy, DeliveryStatus, MemoryStore, NewDestination, OutgoingEvent, Sender,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sender = Sender::builder(MemoryStore::new())
//!     // Production senders refuse internal addresses; this example has no
//!     // network, so it allows the loopback address it will fail to reach.
//!     .address_policy(AddressPolicy::new().allow("127.0.0.1")?)
//!     .build()?;
//! let dest = sender
//!     .add_destination(NewDestination::new("http://127.0.0.1:9/hooks", "shared-secret-of-24-bytes+"))
//!     .await?;
//!
//! let event = OutgoingEvent::new("kpi.alert", &serde_json::json!({"kpi": "churn"}))?;
//! let deliveries = sender.publish(event).await?;
//! assert_eq!(deliveries.len(), 1);
//! assert_eq!(deliveries[0].destination_id, dest.id);
//! assert_eq!(deliveries[0].status, DeliveryStatus::Pending);
//!
//! // Internal addresses are refused at registration unless allowed.
//! let strict = Sender::builder(MemoryStore::new()).build()?;
//! assert!(strict.add_destination(NewDestination::new("http://10.0.0.1/", "shared-secret-of-24-bytes+")).await.is_err());
//! # Ok(()) }
//! ```
//!
//! ## Storage
//!
//! [`MemoryStore`] keeps everything in memory (tests). With the `sqlite`
//! feature, `SqliteStore` keeps destinations, events, deliveries and attempts
//! in one SQLite file (WAL mode): after a crash or a restart every pending
//! delivery resumes and every scheduled retry keeps its due time. A delivery
//! claimed by a worker that died becomes due again when its lease expires,
//! so a receiver may see an event twice; it deduplicates on the event id,
//! which every attempt and replay carries unchanged.
//!
//! To publish atomically with your own database writes (the order and its
//! `order.created` webhook commit or roll back together), write the event
//! with your transaction: see [`PreparedPublish`].
//!
//! ## Metrics and traces
//!
//! Through the [`metrics`] facade, named in [`metric_names`]: delivery
//! counters and latencies, per-destination success and response time (opt
//! in with [`SenderBuilder::destination_metrics`]), circuit changes,
//! 410-disables, publish latency, and the queue gauges (depth, and the age
//! of the oldest due delivery) sampled from the store. Each delivery runs
//! in a `webhook.delivery` span and each attempt in a `webhook.attempt` span.
//!
//! ## Operational events
//!
//! A destination disabled by 410, a circuit opened or closed and a delivery
//! dead-lettered are [`OperationalEvent`]s: given to a hook
//! ([`SenderBuilder::on_operational_event`]) and, if configured, posted as a
//! signed webhook to an operator URL
//! ([`SenderBuilder::operational_webhook`]). See [`operational`].

mod admin;
mod builder;
mod circuit;
mod clock;
#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub mod console;
mod delivery;
mod destination;
mod error;
mod health;
mod history;
pub mod operational;
mod outbox;
mod publish;
mod ssrf;
mod state;
pub mod store;
mod telemetry;
mod worker;

pub use builder::SenderBuilder;
pub use clock::ManualClock;
#[allow(deprecated)]
pub use clock::{MillisClock, SystemMillisClock};
pub use delivery::{
    DEFAULT_PAGE_SIZE, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, ErrorClass,
    MAX_EVENT_TYPE_LEN, MAX_PAGE_SIZE, OutgoingEvent, Page,
};
pub use destination::{Destination, EventFilter, NewDestination};
pub use error::{DeliveryStoreError, SenderError};
pub use health::{
    DestinationHealth, HealthSlot, LastError, QueueHealth, RESPONSE_TIME_BOUNDS_MS, WindowHealth,
};
pub use history::{DeliveryHistory, ReplaySkipReason, ReplaySummary, SkippedReplay};
pub use operational::OperationalEvent;
pub use outbox::PreparedPublish;
pub use publish::TEST_EVENT_TYPE;
pub use state::{Sender, SenderHandle};

/// The former name of [`DeliveryStoreError`].
#[deprecated(
    note = "renamed to `DeliveryStoreError`, to tell it from `idempotency::IdempotencyStoreError`"
)]
pub type StoreError = DeliveryStoreError;
pub use crate::durable::retry::RetryPolicy;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use crate::postgres::listen::ListenerTls;
pub use ssrf::{AddressPolicy, ForbiddenAddress};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PgStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use store::SecretSeal;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{
    CircuitChange, DeliveryStore, FleetPolicy, MemoryStore, NewDelivery, NextStep, QueueStats,
};

/// Names of the metrics the sender emits, with their type and labels.
/// Every label has a bounded set of values.
///
/// With several sender nodes sharing one store, every node samples the
/// same shared queue: [`QUEUE_PENDING`](self::metric_names::QUEUE_PENDING) and
/// [`QUEUE_OLDEST_DUE_SECONDS`](self::metric_names::QUEUE_OLDEST_DUE_SECONDS)
/// are one figure reported by each node, so aggregate them across nodes
/// with `max`, never `sum`. The counters and histograms count what each
/// node did: `sum` them.
pub mod metric_names {
    /// Counter: deliveries that got a 2xx. No labels.
    pub const DELIVERED: &str = "webhook_guard_sender_delivered_total";
    /// Counter: failed attempts that were scheduled for a retry. No labels.
    pub const RETRIED: &str = "webhook_guard_sender_retried_total";
    /// Counter: deliveries moved to the dead letter queue. No labels.
    pub const DEAD_LETTERED: &str = "webhook_guard_sender_dead_lettered_total";
    /// Histogram: duration of each HTTP attempt (the destination's
    /// response time), seconds. Label `destination` only with
    /// [`destination_metrics`](super::SenderBuilder::destination_metrics):
    /// a destination id for the first `cap` destinations, then `other`.
    pub const ATTEMPT_SECONDS: &str = "webhook_guard_sender_attempt_duration_seconds";
    /// Counter: attempts, by `outcome` (`success` for a 2xx, `failure` for
    /// anything else); the success rate per destination is
    /// `success / (success + failure)`. Label `destination` as for
    /// [`ATTEMPT_SECONDS`].
    pub const ATTEMPTS: &str = "webhook_guard_sender_attempts_total";
    /// Histogram: publish-to-delivered latency of delivered deliveries,
    /// seconds. No labels.
    pub const DELIVERY_SECONDS: &str = "webhook_guard_sender_delivery_latency_seconds";
    /// Histogram: how long [`Sender::publish`](super::Sender::publish)
    /// took to store the event and its deliveries, seconds. No labels.
    pub const PUBLISH_SECONDS: &str = "webhook_guard_sender_publish_duration_seconds";
    /// Gauge: deliveries pending in the whole store (due, waiting for a
    /// retry, or in flight), sampled every
    /// [`queue_metrics_interval`](super::SenderBuilder::queue_metrics_interval).
    /// No labels. Across nodes: `max`.
    pub const QUEUE_PENDING: &str = "webhook_guard_sender_queue_pending";
    /// Gauge: how long the oldest due delivery (pending, not in flight, of
    /// an enabled destination) has been due, seconds; 0 when none is due.
    /// The alert that matters most: it grows when workers fall behind or
    /// stop. Sampled like [`QUEUE_PENDING`]. No labels. Across nodes: `max`.
    pub const QUEUE_OLDEST_DUE_SECONDS: &str = "webhook_guard_sender_queue_oldest_due_seconds";
    /// Counter: circuit changes, by the new `state` (`open` or `closed`).
    /// Counted where the change is decided: per process, or once for the
    /// fleet with a store that coordinates it.
    pub const CIRCUIT_TRANSITIONS: &str = "webhook_guard_sender_circuit_transitions_total";
    /// Counter: destinations disabled because their endpoint answered
    /// `410 Gone` (each counted once, by the node that disabled it). No
    /// labels.
    pub const DESTINATIONS_DISABLED: &str = "webhook_guard_sender_destinations_disabled_total";
    /// Counter: operational webhooks, by `outcome`: `sent` (a 2xx came),
    /// `failed` (its retries ran out), `dropped` (too many in flight).
    pub const OPERATIONAL_WEBHOOKS: &str = "webhook_guard_sender_operational_webhooks_total";
}
