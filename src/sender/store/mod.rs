//! Where destinations, deliveries and attempts live: the [`DeliveryStore`]
//! trait, [`MemoryStore`] for tests and, with the `sqlite` feature,
//! `SqliteStore` for a sender that must survive restarts; with the
//! `postgres` feature, `PgStore` for one queue shared by several sender
//! nodes.
//!
//! The trait is shaped for a shared queue: workers [`claim_due`] a batch
//! under a lease (with PostgreSQL, `SELECT .. FOR UPDATE SKIP LOCKED`), and
//! each attempt ends with one [`record_attempt`] that appends the attempt
//! and moves the delivery on, atomically. A claimed delivery whose worker
//! dies is claimed again once its lease has expired.
//!
//! A store shared by several nodes can also keep the limits that must hold
//! for the whole fleet rather than per process: the per-destination
//! concurrency limit, the circuit breaker and 410-disabling (see
//! [`coordinates_fleet`] and [`FleetPolicy`]). `PgStore` does; memory and
//! SQLite leave them to each sender process.
//!
//! [`claim_due`]: DeliveryStore::claim_due
//! [`record_attempt`]: DeliveryStore::record_attempt
//! [`coordinates_fleet`]: DeliveryStore::coordinates_fleet

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod seal;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;
use std::time::Duration;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use seal::SecretSeal;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

use super::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, OutgoingEvent, Page,
};
use super::destination::Destination;
use super::error::{DeliveryStoreError, SenderError};
use super::health::DestinationHealth;

/// A delivery to create: for an event already stored (or stored in the same
/// call by [`DeliveryStore::enqueue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewDelivery {
    /// `dlv_...`.
    pub id: String,
    /// The event's id.
    pub event_id: String,
    /// The destination's id.
    pub destination_id: String,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// First attempt due, unix ms.
    pub next_attempt_at_ms: i64,
    /// The delivery this one replays or resends.
    pub replay_of: Option<String>,
    /// Created already leased until this time, unix ms: the sender hands it
    /// to its own workers at once instead of waiting for a claim.
    pub lease_until_ms: Option<i64>,
}

impl NewDelivery {
    /// A delivery of `event_id` to `destination_id`, due at `now_ms`.
    pub fn new(event_id: &str, destination_id: &str, now_ms: i64) -> Self {
        Self {
            id: format!("dlv_{}", uuid::Uuid::now_v7().simple()),
            event_id: event_id.to_owned(),
            destination_id: destination_id.to_owned(),
            created_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            replay_of: None,
            lease_until_ms: None,
        }
    }

    /// The record of this delivery once a store has given it sequence
    /// number `seq`: pending, no attempts yet.
    pub(crate) fn pending(&self, seq: i64, event: &EventContent) -> Delivery {
        Delivery {
            id: self.id.clone(),
            seq,
            event_id: self.event_id.clone(),
            event_type: event.event_type.clone(),
            destination_id: self.destination_id.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at_ms: Some(self.next_attempt_at_ms),
            lease_until_ms: self.lease_until_ms,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.created_at_ms,
            delivered_at_ms: None,
            dead_lettered_at_ms: None,
            last_error: None,
            replay_of: self.replay_of.clone(),
            replayed_as: None,
            body: event.body.clone(),
            traceparent: event.traceparent.clone(),
        }
    }
}

/// What every delivery of one event carries, as stored with the event.
#[derive(Clone)]
pub(crate) struct EventContent {
    pub(crate) event_type: String,
    pub(crate) body: bytes::Bytes,
    pub(crate) traceparent: Option<crate::trace_context::TraceParent>,
}

impl EventContent {
    pub(crate) fn of(event: &OutgoingEvent) -> Self {
        Self {
            event_type: event.event_type().to_owned(),
            body: event.body_bytes(),
            traceparent: event.traceparent().cloned(),
        }
    }

    /// A stored `traceparent` column; one that no longer parses is dropped
    /// (`TraceParent::from_stored`).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn stored_traceparent(
        text: Option<String>,
    ) -> Option<crate::trace_context::TraceParent> {
        crate::trace_context::TraceParent::from_stored(text.as_deref())
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextStep {
    /// A 2xx came: done.
    Delivered,
    /// Try again at this time, unix ms.
    RetryAt(i64),
    /// Give up: into the dead letter queue with this reason.
    DeadLetter(String),
}

impl NextStep {
    /// Where `attempt` leaves a delivery that was still pending under the
    /// attempt's lease: the rule every store applies in
    /// [`DeliveryStore::record_attempt`].
    fn outcome(&self, attempt: &DeliveryAttempt) -> Outcome {
        let at_ms = attempt
            .started_at_ms
            .saturating_add(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX));
        let error = || attempt.error.clone();
        let (status, next_attempt_at_ms, delivered_at_ms, dead_lettered_at_ms, last_error) =
            match self {
                Self::Delivered => (DeliveryStatus::Delivered, None, Some(at_ms), None, error()),
                Self::RetryAt(at) => (DeliveryStatus::Pending, Some(*at), None, None, error()),
                Self::DeadLetter(reason) => (
                    DeliveryStatus::DeadLettered,
                    None,
                    None,
                    Some(at_ms),
                    Some(reason.clone()),
                ),
            };
        Outcome {
            at_ms,
            status,
            next_attempt_at_ms,
            delivered_at_ms,
            dead_lettered_at_ms,
            last_error,
        }
    }
}

/// A delivery's new state after an attempt (see [`NextStep::outcome`]); its
/// lease is released and its attempt count raised to the attempt's.
struct Outcome {
    /// When the attempt ended, unix ms: the delivery's update time.
    at_ms: i64,
    status: DeliveryStatus,
    next_attempt_at_ms: Option<i64>,
    /// Set when delivered; `None` keeps the stored value.
    delivered_at_ms: Option<i64>,
    /// Set when dead-lettered; `None` keeps the stored value.
    dead_lettered_at_ms: Option<i64>,
    last_error: Option<String>,
}

/// The error for a delivery id a store does not hold.
fn not_stored(delivery_id: &str) -> DeliveryStoreError {
    DeliveryStoreError::new(format!("delivery `{delivery_id}` is not stored"))
}

/// One page from up to `size + 1` deliveries, newest first: an item past
/// `size` is dropped and says that there is a next page.
fn page_of(mut items: Vec<Delivery>, size: usize) -> Page<Delivery> {
    let next_cursor = if items.len() > size {
        items.truncate(size);
        items.last().map(|d| d.seq)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// The limits a store that [coordinates the fleet](DeliveryStore::coordinates_fleet)
/// enforces for every sender node sharing it, taken from the sender's
/// settings ([`per_destination_concurrency`] and [`circuit_breaker`]) when
/// the sender is built.
///
/// [`per_destination_concurrency`]: crate::sender::SenderBuilder::per_destination_concurrency
/// [`circuit_breaker`]: crate::sender::SenderBuilder::circuit_breaker
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetPolicy {
    /// Most deliveries of one destination under a live lease, fleet-wide.
    pub per_destination: usize,
    /// Failed attempts in a row (fleet-wide) that open a circuit.
    pub failure_threshold: u32,
    /// How long an open circuit stays open before one probe, ms.
    pub cooldown_ms: i64,
}

impl FleetPolicy {
    /// A policy with these limits.
    pub fn new(per_destination: usize, failure_threshold: u32, cooldown_ms: i64) -> Self {
        Self {
            per_destination,
            failure_threshold,
            cooldown_ms,
        }
    }
}

/// How many deliveries wait, and since when the longest-waiting due one has
/// been due: what [`DeliveryStore::queue_stats`] answers, for the whole
/// store (every destination, every node sharing it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Deliveries still pending: due, scheduled for a retry, or in flight.
    pub pending: u64,
    /// The earliest due time, unix ms, of the pending deliveries a claim
    /// could take: not under a live lease, of an enabled destination.
    /// `None` when there are none. A time in the future means nothing is
    /// due yet.
    pub oldest_due_at_ms: Option<i64>,
}

impl QueueStats {
    /// Stats with these figures.
    pub fn new(pending: u64, oldest_due_at_ms: Option<i64>) -> Self {
        Self {
            pending,
            oldest_due_at_ms,
        }
    }

    /// How long the oldest due delivery has waited at `now_ms`, ms: zero
    /// when none is due.
    pub fn oldest_due_age_ms(&self, now_ms: i64) -> i64 {
        self.oldest_due_at_ms
            .map_or(0, |due| now_ms.saturating_sub(due).max(0))
    }
}

/// A change of a destination's circuit that recording an attempt made,
/// reported by a store that [coordinates the fleet](DeliveryStore::coordinates_fleet)
/// from [`DeliveryStore::record_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitChange {
    /// The circuit was closed and is now open: deliveries pause.
    Opened,
    /// The circuit was open (or half open) and a success closed it.
    Closed,
}

/// Storage for the sender. Every method is one atomic step.
///
/// # Per process or fleet-wide
///
/// By default the sender keeps the per-destination concurrency limit and
/// the circuit breaker in its own process, and hands deliveries it
/// publishes straight to its own workers. A store whose
/// [`coordinates_fleet`](Self::coordinates_fleet) is `true` takes these
/// over for every node that shares it: the builder hands it a
/// [`FleetPolicy`] once ([`set_fleet_policy`](Self::set_fleet_policy)), and
/// then
///
/// - [`claim_due`](Self::claim_due) leases no more than
///   `per_destination` deliveries of a destination at a time (a live lease
///   is an attempt in flight; a dead node's slots free when its leases
///   expire), and none of a destination whose circuit is open; of a half
///   open one, exactly one, the probe, fenced by its lease;
/// - [`record_attempt`](Self::record_attempt) counts the attempt towards
///   the destination's circuit in the same transaction: a success closes it
///   for all nodes, `failure_threshold` failures in a row open it for
///   `cooldown_ms`;
/// - the sender does not hand published deliveries to its own workers (they
///   would bypass the limit): they are claimed like any other;
/// - [`close_circuit`](Self::close_circuit) (an operator enabled the
///   destination) and [`circuit_open`](Self::circuit_open)
///   ([`Sender::is_paused`](crate::sender::Sender::is_paused)) read and
///   write the shared state.
///
/// A destination disabled in the store (410 Gone on any node) is skipped
/// by every node's next claim, whatever its destination cache holds.
///
/// Implementations: [`MemoryStore`], (feature `sqlite`) `SqliteStore` and
/// (feature `postgres`) `PgStore`.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Inserts or replaces a destination.
    fn save_destination(
        &self,
        destination: &Destination,
    ) -> impl Future<Output = Result<(), DeliveryStoreError>> + Send;

    /// The destination with this id.
    fn destination(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Destination>, DeliveryStoreError>> + Send;

    /// Every destination, in registration order.
    fn destinations(
        &self,
    ) -> impl Future<Output = Result<Vec<Destination>, DeliveryStoreError>> + Send;

    /// Removes a destination; its pending deliveries are dead-lettered with
    /// `reason`. Returns whether it existed.
    fn delete_destination(
        &self,
        id: &str,
        now_ms: i64,
        reason: &str,
    ) -> impl Future<Output = Result<bool, DeliveryStoreError>> + Send;

    /// Stores the event (once) and its deliveries, all or nothing.
    ///
    /// # Errors
    ///
    /// [`SenderError::DuplicateEvent`] when the event id is already stored.
    fn enqueue(
        &self,
        event: &OutgoingEvent,
        created_at_ms: i64,
        deliveries: &[NewDelivery],
    ) -> impl Future<Output = Result<Vec<Delivery>, SenderError>> + Send;

    /// Creates a delivery for an event already stored (a resend or replay).
    /// When `original` is dead-lettered it becomes
    /// [`Replayed`](super::DeliveryStatus::Replayed), pointing at the new
    /// one; a dead-lettered original that was already replayed yields
    /// `Ok(None)`.
    fn replay(
        &self,
        original: &str,
        new: &NewDelivery,
    ) -> impl Future<Output = Result<Option<Delivery>, DeliveryStoreError>> + Send;

    /// Leases up to `limit` pending deliveries that are due at `now_ms`,
    /// whose destination is enabled and that no live lease holds, until
    /// `lease_until_ms`. Earliest due first.
    fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> impl Future<Output = Result<Vec<Delivery>, DeliveryStoreError>> + Send;

    /// Appends the attempt to the history and, when `lease_until_ms` is
    /// still the delivery's lease, moves it on (delivered, retry at a time,
    /// or dead letter) and releases the lease. A worker whose lease expired
    /// and was taken by another claim, or whose delivery another worker
    /// already finished, only adds its attempt to the history: the lease is
    /// the fencing token that keeps a late worker from overwriting the
    /// current holder's outcome.
    ///
    /// A store that [coordinates the fleet](Self::coordinates_fleet)
    /// returns the change of the destination's shared circuit this attempt
    /// made, if any: each change is reported once, to the one node whose
    /// attempt made it. Other stores return `None` (the sender keeps the
    /// circuit itself).
    fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        lease_until_ms: i64,
        next: &NextStep,
    ) -> impl Future<Output = Result<Option<CircuitChange>, DeliveryStoreError>> + Send;

    /// Disables an enabled destination with `reason` (its endpoint answered
    /// 410 Gone). Returns whether this call disabled it: `false` when it
    /// was already disabled or is not stored, so that of several attempts
    /// seeing 410 at once, on one node or several, exactly one reports it.
    fn disable_destination(
        &self,
        id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<bool, DeliveryStoreError>> + Send;

    /// The queue's depth and the due time of its oldest due delivery, at
    /// `now_ms` (which decides which leases are live), over the whole store.
    fn queue_stats(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<QueueStats, DeliveryStoreError>> + Send;

    /// Releases the lease `lease_until_ms` without an attempt and makes the
    /// delivery due at `at_ms` (a paused or busy destination). Does nothing
    /// when the delivery is no longer pending under that lease.
    fn reschedule(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        at_ms: i64,
    ) -> impl Future<Output = Result<(), DeliveryStoreError>> + Send;

    /// Dead-letters a delivery pending under the lease `lease_until_ms`,
    /// without an attempt.
    fn dead_letter(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> impl Future<Output = Result<(), DeliveryStoreError>> + Send;

    /// The delivery with this id.
    fn delivery(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Delivery>, DeliveryStoreError>> + Send;

    /// Deliveries matching `query`, newest first, one page.
    fn deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> impl Future<Output = Result<Page<Delivery>, DeliveryStoreError>> + Send;

    /// Every attempt of a delivery, in order.
    fn attempts(
        &self,
        delivery_id: &str,
    ) -> impl Future<Output = Result<Vec<DeliveryAttempt>, DeliveryStoreError>> + Send;

    /// The health of every destination at `now_ms`, in registration order:
    /// attempts, successes and response-time percentiles over the last hour
    /// and day, 24 hourly slots, the last error and the queue (see
    /// [`DestinationHealth`]). Stores read it from a per-minute rollup
    /// that [`record_attempt`](Self::record_attempt) keeps, so it costs
    /// the same however long the history.
    fn destination_health(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<DestinationHealth>, DeliveryStoreError>> + Send;

    /// Waits up to `max` for a sign that deliveries may be waiting for a
    /// claim: what an idle worker does between polls. Returning early only
    /// costs a claim that finds nothing. The default sleeps `max`; a store
    /// shared by several nodes returns as soon as another node publishes
    /// or releases work (`PgStore`: `LISTEN/NOTIFY`).
    fn wait_for_work(&self, max: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(max)
    }

    /// Whether this store enforces the concurrency limit and the circuit
    /// breaker for the whole fleet (see the trait docs). Default `false`:
    /// each sender process enforces its own.
    fn coordinates_fleet(&self) -> bool {
        false
    }

    /// The limits to enforce fleet-wide; the sender's builder calls this
    /// once, on its own copy of the store, when
    /// [`coordinates_fleet`](Self::coordinates_fleet) is `true`. Until then
    /// claims are not limited. The default ignores it.
    fn set_fleet_policy(&mut self, policy: FleetPolicy) {
        let _ = policy;
    }

    /// Closes the destination's fleet-wide circuit (an operator enabled
    /// it). The default does nothing.
    fn close_circuit(
        &self,
        destination_id: &str,
    ) -> impl Future<Output = Result<(), DeliveryStoreError>> + Send {
        let _ = destination_id;
        std::future::ready(Ok(()))
    }

    /// Whether the destination's fleet-wide circuit is open at `now_ms`, as
    /// far as this store knows without a round trip; `None` when the store
    /// keeps no circuits (the default).
    fn circuit_open(&self, destination_id: &str, now_ms: i64) -> Option<bool> {
        let _ = (destination_id, now_ms);
        None
    }
}
