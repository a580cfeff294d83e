//! Publishing in a transaction the caller owns (the transactional outbox):
//! the prepare step, shared by the stores' `enqueue_in`.

use super::Sender;
use super::delivery::OutgoingEvent;
use super::error::{DeliveryStoreError, SenderError};
use super::store::{DeliveryStore, NewDelivery};

/// An event and its deliveries, ready to be written with a transaction the
/// caller owns; made by [`Sender::prepare_publish`]. Each delivery is due
/// at once and unleased, so that the first claim after the commit takes it.
///
/// # Publishing in a transaction the caller owns (the transactional outbox)
///
/// [`Sender::publish`] writes in the store's own transaction: an app that
/// saves an order and then publishes `order.created` can crash in between
/// (the order exists, the event is lost) or publish for an order whose
/// transaction then rolls back (a webhook for an order that does not
/// exist). Publishing in the app's own transaction closes both gaps:
///
/// 1. [`Sender::prepare_publish`] computes the event's deliveries, one per
///    enabled destination whose filter matches, exactly as `publish` does,
///    and writes nothing.
/// 2. The store writes the event and its deliveries with the app's
///    transaction: `PgStore::enqueue_in` (or [`Sender::publish_in`], both
///    steps in one call) on a `tokio_postgres::Transaction`, or
///    `SqliteStore::enqueue_in` on a `rusqlite::Transaction` over the
///    store's own file.
/// 3. The app commits. The event and the business write are then stored
///    together, or, on a rollback or a crash before the commit, neither is.
///
/// **Guarantee**: atomic with the business write; once committed, each
/// delivery is attempted at least once, with the usual retries, by any
/// sender node on the store (a receiver deduplicates on the event id).
///
/// **Pitfalls**
/// - Nothing is sent until the transaction commits; nothing is ever sent
///   for one that rolls back, and no error says so: that is the point.
/// - The deliveries are not handed to this node's workers (the transaction
///   might still roll back): workers find them with a claim. With
///   PostgreSQL the enqueue sends `NOTIFY` in the same transaction, which
///   the server delivers on commit only, so idle nodes listening wake at
///   once after the commit. SQLite has no notifications: call
///   [`Sender::wake_workers`] after the commit, or the deliveries wait for
///   the next poll.
/// - A duplicate event id is refused with
///   [`SenderError::DuplicateEvent`] without aborting the transaction: the
///   app can still commit its other writes or roll back.
/// - Keep the transaction short: with SQLite it holds the file's write
///   lock, and the store's own writes (claims, attempts) wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPublish {
    event: OutgoingEvent,
    created_at_ms: i64,
    deliveries: Vec<NewDelivery>,
}

impl PreparedPublish {
    /// The event.
    pub fn event(&self) -> &OutgoingEvent {
        &self.event
    }

    /// One delivery per enabled destination whose filter matched when the
    /// publish was prepared; empty when none did (the event is still
    /// stored).
    pub fn deliveries(&self) -> &[NewDelivery] {
        &self.deliveries
    }

    /// When the publish was prepared, unix ms (the sender's clock): the
    /// event's creation time.
    pub fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }
}

impl<S: DeliveryStore> Sender<S> {
    /// The event and one delivery per enabled destination whose filter
    /// matches, computed as [`publish`](Self::publish) does, for a store's
    /// `enqueue_in` to write with a transaction the caller owns. Writes
    /// nothing and hands nothing to the workers (see the
    /// [`PreparedPublish`] docs for the guarantee and the pitfalls).
    ///
    /// With `SqliteStore`, prepare before opening the transaction: the
    /// store reads the destinations on its own connection. Examples:
    /// `SqliteStore::enqueue_in` and `PgStore::enqueue_in`.
    ///
    /// # Errors
    ///
    /// A store failure reading the destinations.
    pub async fn prepare_publish(
        &self,
        event: impl Into<OutgoingEvent>,
    ) -> Result<PreparedPublish, SenderError> {
        let event = event.into().in_current_trace();
        let now = self.now();
        let deliveries = self.matching_deliveries(&event, now).await?;
        Ok(PreparedPublish {
            event,
            created_at_ms: now,
            deliveries,
        })
    }

    /// Wakes this node's idle workers, so that they claim now instead of
    /// at their next poll: call it after committing a transaction that
    /// enqueued deliveries with `SqliteStore::enqueue_in`. (A `PgStore`
    /// with a `LISTEN` connection is woken by the commit itself.)
    pub fn wake_workers(&self) {
        self.inner.wake.notify_one();
    }

    /// One new delivery of `event`, due at `now`, per enabled destination
    /// whose filter matches its type.
    pub(super) async fn matching_deliveries(
        &self,
        event: &OutgoingEvent,
        now: i64,
    ) -> Result<Vec<NewDelivery>, DeliveryStoreError> {
        Ok(self
            .inner
            .all_destinations()
            .await?
            .iter()
            .map(|t| &t.destination)
            .filter(|d| d.enabled && d.events.matches(event.event_type()))
            .map(|d| NewDelivery::new(event.id(), &d.id, now))
            .collect())
    }
}

#[cfg(feature = "postgres")]
impl Sender<super::PgStore> {
    /// Publishes `event` with the caller's PostgreSQL transaction:
    /// [`prepare_publish`](Self::prepare_publish), then
    /// [`PgStore::enqueue_in`](super::PgStore::enqueue_in). The event and
    /// its deliveries are stored if and only if `tx` commits; idle sender
    /// nodes wake on the commit. A pooled `deadpool_postgres::Transaction`
    /// works as well (`&tx` derefs to the `tokio_postgres` one).
    ///
    /// `tx` must be on the store's database, where the store created its
    /// tables. Returns the deliveries as they will be once committed.
    ///
    /// ```no_run
    /// use webhook_guard::sender::{OutgoingEvent, PgStore, Sender};
    ///
    /// # async fn run(sender: Sender<PgStore>, mut db: tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let tx = db.transaction().await?;
    /// tx.execute("INSERT INTO orders (id, total) VALUES ($1, $2)", &[&42_i64, &1999_i64])
    ///     .await?;
    /// let event = OutgoingEvent::new("order.created", &serde_json::json!({"id": 42}))?;
    /// sender.publish_in(&tx, event).await?;
    /// tx.commit().await?; // now, and only now, the webhook will be sent
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SenderError::DuplicateEvent`] when the id is stored already (the
    /// transaction stays usable), or a store failure (after which
    /// PostgreSQL refuses further statements in `tx`: roll it back).
    pub async fn publish_in(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: impl Into<OutgoingEvent>,
    ) -> Result<Vec<super::Delivery>, SenderError> {
        let prepared = self.prepare_publish(event).await?;
        self.store().enqueue_in(tx, &prepared).await
    }
}
