//! A [`DeliveryStore`] in one SQLite file (bundled SQLite, WAL mode).
//!
//! One thread owns the connection and commits calls in groups; a second
//! thread checkpoints the WAL beside it, so the writer's commits never wait
//! for an fsync (with `synchronous = NORMAL`, committed work survives a
//! process crash either way). Times are unix milliseconds. The schema is
//! versioned with `PRAGMA user_version` and migrated on open.
//!
//! Destination secrets are stored as key bytes (a sender must hold them to
//! sign), in base64 unless a [`SecretSeal`] seals them: protect the file as
//! you would the secrets, or set a seal (see [`SecretSeal`] for the options).
//! A destination saved before text secrets were read the scheme's way (a
//! `whsec_...` text under the standard scheme) holds the text's bytes and
//! keeps signing with exactly those bytes; rotate its secret to switch it to
//! the decoded key.

mod health;
mod outbox;
mod rows;

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::seal::{SecretSeal, encode_secrets};
use super::{CircuitChange, DeliveryStore, NewDelivery, NextStep, QueueStats};
use crate::durable::sqlite_engine::{Engine, EngineError};
use crate::sender::delivery::{Delivery, DeliveryAttempt, DeliveryQuery, OutgoingEvent, Page};
use crate::sender::destination::Destination;
use crate::sender::error::{DeliveryStoreError, SenderError};
use crate::sender::health::DestinationHealth;

const SCHEMA_VERSION: i64 = 4;

/// A SQLite error as a store error.
pub(super) fn db_err(e: rusqlite::Error) -> DeliveryStoreError {
    DeliveryStoreError::from(crate::durable::sqlite_engine::db_err(e))
}

impl From<EngineError> for DeliveryStoreError {
    fn from(e: EngineError) -> Self {
        Self::new(e.0)
    }
}

impl From<EngineError> for SenderError {
    fn from(e: EngineError) -> Self {
        Self::Store(e.into())
    }
}

/// The first schema.
const MIGRATION_1: &str = include_str!("../schema/1.sql");

/// Version 2: every delivery writes as few B-trees as it can. An event is
/// one row of a `WITHOUT ROWID` table, a delivery one row (no
/// `AUTOINCREMENT`) and four index entries, an attempt one row of a
/// `WITHOUT ROWID` table keyed by its delivery and its number in that
/// delivery's history. The status index covers only the dead letter queue
/// (small, and listed often): a delivery that succeeds leaves no index
/// entry behind but its row's. Runs with foreign keys off, so the tables
/// can be rebuilt under their old names.
const MIGRATION_2: &str = include_str!("../schema/2.sql");

/// Version 3: the event's `traceparent`.
const MIGRATION_3: &str = include_str!("../schema/3.sql");

/// Version 4: the health rollup (per destination and minute, see
/// `crate::sender::health`) and the last error of each destination, filled
/// from the history already stored; an index for each destination's queue.
const MIGRATION_4: &str = include_str!("../schema/4.sql");

/// Delivery state in one SQLite file. Cheap to clone (shared connection).
///
/// One thread owns the connection. Calls queue up for it, and whatever has
/// queued while a transaction ran is committed together in the next one
/// (group commit). Should a call in the group fail, the group is rolled
/// back and run again with each call in its own savepoint, so a failing
/// call rolls back alone. A call returns only after its transaction has
/// committed.
#[derive(Clone)]
pub struct SqliteStore {
    engine: Engine,
    seal: Option<Arc<dyn SecretSeal>>,
    /// The database file, links resolved; `None` in memory.
    file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("sealed", &self.seal.is_some())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, switches it to WAL mode
    /// with `synchronous = NORMAL` (a process crash loses nothing; a power
    /// loss may lose the last commits; see [`open_durable`](Self::open_durable)) and
    /// migrates the schema.
    ///
    /// # Errors
    ///
    /// A [`DeliveryStoreError`] when the file cannot be opened or migrated, or was
    /// written by a newer schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DeliveryStoreError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(db_err)?;
        Self::setup(conn, "NORMAL", Some(path))
    }

    /// As [`open`](Self::open), with `synchronous = FULL`: each commit
    /// survives a power loss too, at the cost of an fsync per commit group.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_durable(path: impl AsRef<Path>) -> Result<Self, DeliveryStoreError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(db_err)?;
        Self::setup(conn, "FULL", Some(path))
    }

    /// A private in-memory database (for tests that want SQL semantics).
    ///
    /// # Errors
    ///
    /// A [`DeliveryStoreError`] when SQLite cannot start.
    pub fn open_in_memory() -> Result<Self, DeliveryStoreError> {
        Self::setup(
            Connection::open_in_memory().map_err(db_err)?,
            "NORMAL",
            None,
        )
    }

    fn setup(
        mut conn: Connection,
        synchronous: &str,
        path: Option<&Path>,
    ) -> Result<Self, DeliveryStoreError> {
        configure(&conn, synchronous)?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        let file = path.map(outbox::canonical);
        let engine = Engine::start(conn, path)?;
        Ok(Self {
            engine,
            seal: None,
            file,
        })
    }

    /// Seals destination keys with `seal` before writing them, and opens
    /// them with it when reading, so the file holds no key in the clear.
    /// Keys written without a seal are still read, and sealed when their
    /// destination is next saved. See [`SecretSeal`].
    #[must_use]
    pub fn with_secret_seal(mut self, seal: impl SecretSeal) -> Self {
        self.seal = Some(Arc::new(seal));
        self
    }
}

/// Sets the connection up for the store thread, before migrating: lock
/// waits, WAL, `synchronous`, foreign keys off, savepoints in memory.
fn configure(conn: &Connection, synchronous: &str) -> Result<(), DeliveryStoreError> {
    crate::durable::sqlite_engine::configure(conn, synchronous)?;
    // Off while migrating: a migration rebuilds tables under their old
    // names (`PRAGMA foreign_keys` cannot change inside a transaction).
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(db_err)
}

/// Brings the schema up to [`SCHEMA_VERSION`] in one transaction; refuses a
/// database written by a newer version.
fn migrate(conn: &mut Connection) -> Result<(), DeliveryStoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version > SCHEMA_VERSION {
        return Err(DeliveryStoreError::new(format!(
            "the database has schema version {version}; this version of webhook-guard knows up to {SCHEMA_VERSION}"
        )));
    }
    if version < 1 {
        tx.execute_batch(MIGRATION_1).map_err(db_err)?;
    }
    if version < 2 {
        tx.execute_batch(MIGRATION_2).map_err(db_err)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        if let Some(table) = broken {
            return Err(DeliveryStoreError::new(format!(
                "migrating to schema version 2 left a broken reference in `{table}`"
            )));
        }
    }
    if version < 3 {
        tx.execute_batch(MIGRATION_3).map_err(db_err)?;
    }
    if version < 4 {
        tx.execute_batch(MIGRATION_4).map_err(db_err)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

// Each call runs its SQL (the `rows` module) on the store thread, in the
// next commit group.
impl DeliveryStore for SqliteStore {
    async fn save_destination(&self, destination: &Destination) -> Result<(), DeliveryStoreError> {
        let d = destination.clone();
        let secrets = encode_secrets(&d.secrets, self.seal.as_deref())?;
        let events = serde_json::to_string(&d.events)
            .map_err(|e| DeliveryStoreError::new(format!("encoding the event filter: {e}")))?;
        self.engine
            .call(move |conn: &Connection| rows::save_destination(conn, &d, &events, &secrets))
            .await
    }

    async fn destination(&self, id: &str) -> Result<Option<Destination>, DeliveryStoreError> {
        let id = id.to_owned();
        let seal = self.seal.clone();
        self.engine
            .call(move |conn: &Connection| rows::load_destination(conn, &id, seal.as_deref()))
            .await
    }

    async fn destinations(&self) -> Result<Vec<Destination>, DeliveryStoreError> {
        let seal = self.seal.clone();
        self.engine
            .call(move |conn: &Connection| rows::list_destinations(conn, seal.as_deref()))
            .await
    }

    async fn delete_destination(
        &self,
        id: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<bool, DeliveryStoreError> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.engine
            .call(move |conn: &Connection| rows::delete_destination(conn, &id, now_ms, &reason))
            .await
    }

    async fn enqueue(
        &self,
        event: &OutgoingEvent,
        created_at_ms: i64,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<Delivery>, SenderError> {
        let event = event.clone();
        let deliveries = deliveries.to_vec();
        self.engine
            .call(move |conn: &Connection| rows::enqueue(conn, &event, created_at_ms, &deliveries))
            .await
    }

    async fn replay(
        &self,
        original: &str,
        new: &NewDelivery,
    ) -> Result<Option<Delivery>, DeliveryStoreError> {
        let (original, new) = (original.to_owned(), new.clone());
        self.engine
            .call(move |conn: &Connection| rows::replay(conn, &original, &new))
            .await
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<Delivery>, DeliveryStoreError> {
        self.engine
            .call(move |conn: &Connection| rows::claim_due(conn, now_ms, limit, lease_until_ms))
            .await
    }

    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        lease_until_ms: i64,
        next: &NextStep,
    ) -> Result<Option<CircuitChange>, DeliveryStoreError> {
        let (a, next) = (attempt.clone(), next.clone());
        self.engine
            .call(move |conn: &Connection| rows::record_attempt(conn, &a, lease_until_ms, &next))
            .await?;
        Ok(None)
    }

    async fn disable_destination(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<bool, DeliveryStoreError> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.engine
            .call(move |conn: &Connection| rows::disable_destination(conn, &id, &reason))
            .await
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, DeliveryStoreError> {
        self.engine
            .call(move |conn: &Connection| rows::queue_stats(conn, now_ms))
            .await
    }

    async fn reschedule(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        at_ms: i64,
    ) -> Result<(), DeliveryStoreError> {
        let id = delivery_id.to_owned();
        self.engine
            .call(move |conn: &Connection| rows::reschedule(conn, &id, lease_until_ms, at_ms))
            .await
    }

    async fn dead_letter(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<(), DeliveryStoreError> {
        let (id, reason) = (delivery_id.to_owned(), reason.to_owned());
        self.engine
            .call(move |conn: &Connection| {
                rows::dead_letter(conn, &id, lease_until_ms, now_ms, &reason)
            })
            .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, DeliveryStoreError> {
        let id = id.to_owned();
        self.engine
            .call(move |conn: &Connection| rows::load_delivery(conn, &id))
            .await
    }

    async fn deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Page<Delivery>, DeliveryStoreError> {
        let q = query.clone();
        self.engine
            .call(move |conn: &Connection| rows::query_deliveries(conn, &q))
            .await
    }

    async fn attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, DeliveryStoreError> {
        let id = delivery_id.to_owned();
        self.engine
            .call(move |conn: &Connection| rows::load_attempts(conn, &id))
            .await
    }

    async fn destination_health(
        &self,
        now_ms: i64,
    ) -> Result<Vec<DestinationHealth>, DeliveryStoreError> {
        self.engine
            .call(move |conn: &Connection| health::read(conn, now_ms))
            .await
    }
}
