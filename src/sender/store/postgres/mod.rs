//! A [`DeliveryStore`] in PostgreSQL, so that several sender nodes share one
//! queue.
//!
//! - **Claims** take due deliveries with `SELECT .. FOR UPDATE SKIP LOCKED`
//!   in one short statement and lease them: the lease is an expiry
//!   (`lease_until_ms`, the trait's fencing token) and an owner (the store
//!   instance that claimed). Every later write (`record_attempt`,
//!   `reschedule`, `dead_letter`) changes the delivery only while that same
//!   owner holds that same lease; a node whose lease expired and was taken
//!   over only adds its attempt to the history.
//! - **Wake-ups**: enqueue, replay, a reschedule and a saved (enabled)
//!   destination send `NOTIFY` in their own transaction; a store built
//!   with [`connect`](PgStore::connect) or [`with_listener`](PgStore::with_listener)
//!   keeps a `LISTEN` connection, and an idle sender wakes at once instead
//!   of at its next poll. A missed notification (the connection dropped)
//!   costs at most one poll interval; after reconnecting the node claims.
//! - **Fleet-wide limits**: the store [coordinates the fleet](DeliveryStore::coordinates_fleet).
//!   Claims lock the candidate destinations' rows (in id order, briefly),
//!   count their live leases and lease no more than the sender's
//!   per-destination limit; each destination row holds its circuit
//!   (failures in a row, open until, the half-open probe's lease), moved on
//!   by `record_attempt` in the same transaction, so an open circuit pauses
//!   every node and exactly one node sends the probe. A disabled destination
//!   (410 Gone on any node) is skipped by every node's next claim.
//! - **Migrations** are versioned SQL files applied in one transaction under
//!   an advisory lock, so nodes starting together do not race; a database
//!   whose schema is newer than this build is refused with an error that
//!   says so.
//!
//! Times are the sender's clock (unix milliseconds), as for every store.
//! Destination secrets are stored as for `SqliteStore`: key bytes in
//! base64, sealed first when a [`SecretSeal`] is set.

mod fleet;
mod health;
mod outbox;
mod queue;
mod rows;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use super::seal::{SecretSeal, encode_secrets};
use super::{
    CircuitChange, DeliveryStore, FleetPolicy, NewDelivery, NextStep, QueueStats, not_stored,
};
use crate::postgres::listen::{self, Listener, ListenerTls};
use crate::postgres::{DEFAULT_POOL_SIZE, PgSetupError, migrate, pool_from_url};
use crate::sender::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, OutgoingEvent, Page,
};
use crate::sender::destination::Destination;
use crate::sender::error::{DeliveryStoreError, SenderError};
use crate::sender::health::DestinationHealth;

/// The schema migrations of the sender's tables, version `i + 1` at `i`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../../migrations/postgres/sender/0001_init.sql"),
    include_str!("../../../../migrations/postgres/sender/0002_fleet_circuit.sql"),
    include_str!("../../../../migrations/postgres/sender/0003_traceparent.sql"),
    include_str!("../../../../migrations/postgres/sender/0004_health_rollup.sql"),
];

/// The notification channel that wakes idle sender nodes.
const CHANNEL: &str = "webhook_guard_sender";

/// A PostgreSQL error as a store error (the driver's text never holds the
/// connection password).
fn pg_err(e: impl std::error::Error) -> DeliveryStoreError {
    DeliveryStoreError::new(format!("postgres: {}", crate::postgres::error_chain(&e)))
}

fn setup_err(e: PgSetupError) -> DeliveryStoreError {
    DeliveryStoreError::new(e.to_string())
}

/// Delivery state in PostgreSQL, shared by every sender node that connects
/// to the same database. Cheap to clone (a shared pool).
///
/// Give each [`Sender`](crate::sender::Sender) its own store (one
/// [`connect`](Self::connect) per node): the store's leases name the store
/// instance, and its `LISTEN` connection wakes one idle sender.
///
/// ```no_run
/// use webhook_guard::sender::{PgStore, Sender};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgStore::connect("postgres://app:secret@db.internal/app").await?;
/// let sender = Sender::builder(store).build()?;
/// sender.start();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// This instance's name on the leases it takes.
    owner: Arc<str>,
    seal: Option<Arc<dyn SecretSeal>>,
    listener: Option<Arc<Listener>>,
    /// The fleet-wide limits, once a sender was built over this copy.
    policy: Option<FleetPolicy>,
    /// Open circuits as last read.
    open: Arc<fleet::OpenCircuits>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("owner", &self.owner)
            .field("sealed", &self.seal.is_some())
            .field("listening", &self.listener.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`
    /// or the key-value form `host=/run/postgresql user=app dbname=app`)
    /// with a pool of 16 connections and one `LISTEN` connection, and
    /// migrates the schema.
    ///
    /// This connects **without TLS**: for a server off the machine or the
    /// private network, build a pool with your TLS connector and use
    /// [`from_pool`](Self::from_pool) and [`with_listener`](Self::with_listener).
    ///
    /// # Errors
    ///
    /// A [`DeliveryStoreError`] (never holding the URL) when the URL does
    /// not parse, the server cannot be reached, or the database holds a
    /// schema newer than this build knows.
    pub async fn connect(url: &str) -> Result<Self, DeliveryStoreError> {
        let pool = pool_from_url(url, DEFAULT_POOL_SIZE).map_err(setup_err)?;
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            DeliveryStoreError::new(format!("the PostgreSQL URL is not valid: {e}"))
        })?;
        Self::from_pool(pool)
            .await?
            .with_listener(config, tokio_postgres::NoTls)
            .await
    }

    /// A store over `pool` (a `deadpool-postgres` 0.14 pool, built with the
    /// TLS connector you need); migrates the schema. Without
    /// [`with_listener`](Self::with_listener) an idle sender finds new work
    /// at its poll interval.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn from_pool(pool: Pool) -> Result<Self, DeliveryStoreError> {
        migrate(&pool, "sender", MIGRATIONS)
            .await
            .map_err(setup_err)?;
        Ok(Self {
            pool,
            owner: Arc::from(format!("{}", uuid::Uuid::now_v7().simple())),
            seal: None,
            listener: None,
            policy: None,
            open: Arc::default(),
        })
    }

    /// Keeps a `LISTEN` connection to the database described by `config`
    /// (the pool's own settings) through `tls`, so that an idle sender wakes
    /// as soon as work is published or released anywhere in the fleet.
    /// Returns once the server listens; reconnects by itself after a loss.
    ///
    /// # Errors
    ///
    /// A [`DeliveryStoreError`] when the connection or the `LISTEN` fails.
    pub async fn with_listener<T: ListenerTls>(
        mut self,
        config: tokio_postgres::Config,
        tls: T,
    ) -> Result<Self, DeliveryStoreError> {
        let listener = listen::listen(config, tls, CHANNEL).await.map_err(pg_err)?;
        self.listener = Some(Arc::new(listener));
        Ok(self)
    }

    /// Seals destination keys with `seal` before writing them, and opens
    /// them with it when reading, so the database holds no key in the clear
    /// (see [`SecretSeal`]).
    #[must_use]
    pub fn with_secret_seal(mut self, seal: impl SecretSeal) -> Self {
        self.seal = Some(Arc::new(seal));
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DeliveryStoreError> {
        self.pool.get().await.map_err(pg_err)
    }
}

/// Whether any of `deliveries` waits for a claim (the rest are leased to the
/// node that created them): only then are other nodes woken.
fn any_unleased(deliveries: &[NewDelivery]) -> bool {
    deliveries.iter().any(|d| d.lease_until_ms.is_none())
}

impl DeliveryStore for PgStore {
    async fn save_destination(&self, destination: &Destination) -> Result<(), DeliveryStoreError> {
        let d = destination;
        let secrets = encode_secrets(&d.secrets, self.seal.as_deref())?;
        let events = serde_json::to_string(&d.events)
            .map_err(|e| DeliveryStoreError::new(format!("encoding the event filter: {e}")))?;
        rows::save_destination(&self.client().await?, d, &events, &secrets).await
    }

    async fn destination(&self, id: &str) -> Result<Option<Destination>, DeliveryStoreError> {
        rows::load_destination(&self.client().await?, id, self.seal.as_deref()).await
    }

    async fn destinations(&self) -> Result<Vec<Destination>, DeliveryStoreError> {
        rows::list_destinations(&self.client().await?, self.seal.as_deref()).await
    }

    async fn delete_destination(
        &self,
        id: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<bool, DeliveryStoreError> {
        queue::delete_destination(&self.client().await?, id, now_ms, reason).await
    }

    async fn enqueue(
        &self,
        event: &OutgoingEvent,
        created_at_ms: i64,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<Delivery>, SenderError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let out = outbox::enqueue_on(&tx, &self.owner, event, created_at_ms, deliveries).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(out)
    }

    async fn replay(
        &self,
        original: &str,
        new: &NewDelivery,
    ) -> Result<Option<Delivery>, DeliveryStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let status = queue::lock_status(&tx, original)
            .await?
            .ok_or_else(|| not_stored(original))?;
        if status == DeliveryStatus::Replayed {
            return Ok(None);
        }
        let row = tx
            .query_one(
                "SELECT event_type, body, traceparent FROM sender_events WHERE id = $1",
                &[&new.event_id],
            )
            .await
            .map_err(pg_err)?;
        let content = super::EventContent {
            event_type: row.try_get(0).map_err(pg_err)?,
            body: bytes::Bytes::from(row.try_get::<_, Vec<u8>>(1).map_err(pg_err)?),
            traceparent: super::EventContent::stored_traceparent(row.try_get(2).map_err(pg_err)?),
        };
        let news = std::slice::from_ref(new);
        let created = queue::insert_deliveries(&tx, &self.owner, news, &content)
            .await?
            .pop()
            .ok_or_else(|| not_stored(&new.id))?;
        if status == DeliveryStatus::DeadLettered {
            queue::mark_replayed(&tx, original, &created.id, new.created_at_ms).await?;
        }
        if any_unleased(news) {
            queue::notify(&tx).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(Some(created))
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<Delivery>, DeliveryStoreError> {
        let mut client = self.client().await?;
        match &self.policy {
            Some(policy) => {
                let claim = (now_ms, limit, lease_until_ms);
                fleet::claim_due(&mut client, &self.owner, claim, policy, &self.open).await
            }
            None => queue::claim_due(&client, &self.owner, now_ms, limit, lease_until_ms).await,
        }
    }

    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        lease_until_ms: i64,
        next: &NextStep,
    ) -> Result<Option<CircuitChange>, DeliveryStoreError> {
        let mut client = self.client().await?;
        let Some(policy) = &self.policy else {
            queue::record_attempt(&client, &self.owner, attempt, lease_until_ms, next).await?;
            return Ok(None);
        };
        // The destination row first, as claims and deletes lock it: a
        // delivery row held while waiting for it could deadlock a delete.
        let tx = client.transaction().await.map_err(pg_err)?;
        let end_ms = next.outcome(attempt).at_ms;
        let circuit = fleet::count_attempt(&tx, attempt, end_ms, policy).await?;
        queue::record_attempt(&tx, &self.owner, attempt, lease_until_ms, next).await?;
        tx.commit().await.map_err(pg_err)?;
        let Some(counted) = circuit else {
            return Ok(None);
        };
        if counted.change == Some(CircuitChange::Opened) {
            tracing::warn!(
                destination = counted.destination,
                "circuit opened across the fleet: pausing deliveries to this destination"
            );
        }
        self.open.set(&counted.destination, counted.open_until_ms);
        Ok(counted.change)
    }

    async fn disable_destination(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<bool, DeliveryStoreError> {
        fleet::disable_destination(&self.client().await?, id, reason).await
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, DeliveryStoreError> {
        queue::queue_stats(&self.client().await?, now_ms).await
    }

    async fn reschedule(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        at_ms: i64,
    ) -> Result<(), DeliveryStoreError> {
        let client = self.client().await?;
        queue::reschedule(&client, &self.owner, delivery_id, lease_until_ms, at_ms).await
    }

    async fn dead_letter(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<(), DeliveryStoreError> {
        let client = self.client().await?;
        let owner = &self.owner;
        queue::dead_letter(&client, owner, delivery_id, lease_until_ms, now_ms, reason).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, DeliveryStoreError> {
        rows::load_delivery(&self.client().await?, id).await
    }

    async fn deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Page<Delivery>, DeliveryStoreError> {
        rows::query_deliveries(&self.client().await?, query).await
    }

    async fn attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, DeliveryStoreError> {
        rows::load_attempts(&self.client().await?, delivery_id).await
    }

    async fn destination_health(
        &self,
        now_ms: i64,
    ) -> Result<Vec<DestinationHealth>, DeliveryStoreError> {
        health::read(&self.client().await?, now_ms).await
    }

    fn coordinates_fleet(&self) -> bool {
        true
    }

    fn set_fleet_policy(&mut self, policy: FleetPolicy) {
        self.policy = Some(policy);
    }

    async fn close_circuit(&self, destination_id: &str) -> Result<(), DeliveryStoreError> {
        fleet::close_circuit(&self.client().await?, destination_id).await?;
        self.open.set(destination_id, None);
        Ok(())
    }

    fn circuit_open(&self, destination_id: &str, now_ms: i64) -> Option<bool> {
        Some(self.open.is_open(destination_id, now_ms))
    }

    async fn wait_for_work(&self, max: Duration) {
        match &self.listener {
            Some(listener) => listener.wait(max).await,
            None => tokio::time::sleep(max).await,
        }
    }
}
