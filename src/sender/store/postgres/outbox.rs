//! Enqueueing with a transaction: the store's own (pooled, statements
//! cached per connection) or one the caller owns (the transactional
//! outbox). Both run the same statements.

use std::future::Future;

use tokio_postgres::Statement;

use super::queue;
use super::{PgStore, any_unleased};
use crate::sender::delivery::{Delivery, OutgoingEvent};
use crate::sender::error::SenderError;
use crate::sender::outbox::PreparedPublish;
use crate::sender::store::{EventContent, NewDelivery};

/// A transaction the enqueue statements run in.
pub(super) trait EnqueueTx: Sync {
    /// The transaction, to execute statements on.
    fn tx(&self) -> &tokio_postgres::Transaction<'_>;

    /// `sql` prepared on this transaction's connection.
    fn statement(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send;
}

/// The store's own transactions: statements are cached per connection.
impl EnqueueTx for deadpool_postgres::Transaction<'_> {
    fn tx(&self) -> &tokio_postgres::Transaction<'_> {
        self
    }

    fn statement(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send {
        self.prepare_cached(sql)
    }
}

/// A caller's transaction: its connection is not the pool's, so each
/// statement is prepared for the call.
impl EnqueueTx for tokio_postgres::Transaction<'_> {
    fn tx(&self) -> &tokio_postgres::Transaction<'_> {
        self
    }

    fn statement(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send {
        self.prepare(sql)
    }
}

/// Stores the event (once) and its deliveries in `tx`; wakes the fleet on
/// commit when any delivery waits for a claim.
pub(super) async fn enqueue_on(
    tx: &impl EnqueueTx,
    owner: &str,
    event: &OutgoingEvent,
    created_at_ms: i64,
    deliveries: &[NewDelivery],
) -> Result<Vec<Delivery>, SenderError> {
    if !queue::insert_event(tx, event, created_at_ms).await? {
        return Err(SenderError::DuplicateEvent {
            id: event.id().to_owned(),
        });
    }
    let out = if deliveries.is_empty() {
        Vec::new()
    } else {
        let content = EventContent::of(event);
        queue::insert_deliveries(tx, owner, deliveries, &content).await?
    };
    if any_unleased(deliveries) {
        queue::notify(tx).await?;
    }
    Ok(out)
}

impl PgStore {
    /// Writes a [`PreparedPublish`] with the caller's transaction `tx`:
    /// the event and its deliveries are stored if and only if `tx`
    /// commits, atomically with the caller's own writes in it (the
    /// transactional outbox; see [`PreparedPublish`]). The `NOTIFY` sent in
    /// `tx` reaches listening sender nodes on commit, never on a rollback.
    /// Nothing is handed to a worker: a claim after the commit takes the
    /// deliveries. Returns them as they will be once committed.
    ///
    /// `tx` must be on this store's database (where it created its
    /// tables), on a connection of your own or of this store's pool; a
    /// `deadpool_postgres::Transaction` derefs to the `tokio_postgres` one.
    /// [`Sender::publish_in`](crate::sender::Sender::publish_in) prepares
    /// and enqueues in one call.
    ///
    /// ```no_run
    /// use webhook_guard::sender::{OutgoingEvent, PgStore, Sender};
    ///
    /// # async fn run(sender: Sender<PgStore>, pool: deadpool_postgres::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let event = OutgoingEvent::new("order.created", &serde_json::json!({"id": 42}))?;
    /// let prepared = sender.prepare_publish(event).await?;
    /// let mut db = pool.get().await?;
    /// let tx = db.transaction().await?;
    /// tx.execute("INSERT INTO orders (id) VALUES ($1)", &[&42_i64]).await?;
    /// sender.store().enqueue_in(&tx, &prepared).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SenderError::DuplicateEvent`] when the event id is stored already,
    /// or committed by another transaction meanwhile; `tx` stays usable.
    /// A store failure otherwise (say, `tx` is on a database without the
    /// sender's tables), after which PostgreSQL refuses further statements
    /// in `tx`: roll it back.
    pub async fn enqueue_in(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        prepared: &PreparedPublish,
    ) -> Result<Vec<Delivery>, SenderError> {
        let (event, at) = (prepared.event(), prepared.created_at_ms());
        enqueue_on(tx, &self.owner, event, at, prepared.deliveries()).await
    }
}
