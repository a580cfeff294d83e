//! Enqueueing with a transaction the caller owns on the store's own file
//! (the transactional outbox).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::db_err;
use super::{SCHEMA_VERSION, SqliteStore, rows};
use crate::sender::delivery::Delivery;
use crate::sender::error::{DeliveryStoreError, SenderError};
use crate::sender::outbox::PreparedPublish;

impl SqliteStore {
    /// Writes a [`PreparedPublish`] with the caller's transaction `tx`, on
    /// a connection of the caller's own to this store's file: the event
    /// and its deliveries are stored if and only if `tx` commits,
    /// atomically with the caller's own writes in it (the transactional
    /// outbox; see [`PreparedPublish`]). Nothing is handed to a worker and
    /// SQLite notifies no one: after the commit, call
    /// [`Sender::wake_workers`](crate::sender::Sender::wake_workers), or
    /// the deliveries wait for the next poll. Returns them as they will be
    /// once committed.
    ///
    /// Set your connection up to share the file with the store (which runs
    /// it in WAL mode, so readers never wait): a busy timeout
    /// (`conn.busy_timeout(Duration::from_secs(5))`) so that it waits for
    /// the store's short write transactions instead of failing with
    /// `SQLITE_BUSY`, and open the transaction with
    /// `TransactionBehavior::Immediate` so it takes the write lock at its
    /// start (a deferred transaction that read first can fail with
    /// `SQLITE_BUSY` when it writes). Keep it short: the store's own writes
    /// (claims, attempts) wait for it, and give up after 5 seconds.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rusqlite::{Connection, TransactionBehavior};
    /// use webhook_guard::sender::{OutgoingEvent, Sender, SqliteStore};
    ///
    /// # async fn run(sender: Sender<SqliteStore>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = Connection::open("webhooks.db")?; // the store's file
    /// conn.busy_timeout(Duration::from_secs(5))?;
    ///
    /// let event = OutgoingEvent::new("order.created", &serde_json::json!({"id": 42}))?;
    /// let prepared = sender.prepare_publish(event).await?;
    /// let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    /// tx.execute("INSERT INTO orders (id) VALUES (42)", [])?;
    /// sender.store().enqueue_in(&tx, &prepared)?;
    /// tx.commit()?;
    /// sender.wake_workers();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SenderError::DuplicateEvent`] when the event id is stored already
    /// (`tx` stays usable). A [`SenderError::Store`] when `tx` is not on
    /// this store's file (or the store is in memory), or the file's schema
    /// is not the one this version writes, or a write fails.
    pub fn enqueue_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        prepared: &PreparedPublish,
    ) -> Result<Vec<Delivery>, SenderError> {
        self.check_same_file(tx)?;
        check_schema(tx)?;
        let (event, at) = (prepared.event(), prepared.created_at_ms());
        rows::enqueue(tx, event, at, prepared.deliveries())
    }

    /// Refuses a connection to another file than the store's: deliveries
    /// written there would never be sent.
    fn check_same_file(&self, conn: &Connection) -> Result<(), DeliveryStoreError> {
        let Some(store_file) = &self.file else {
            return Err(DeliveryStoreError::new(
                "this SqliteStore is in memory: no other connection can share its transactions",
            ));
        };
        let file = conn.path().filter(|p| !p.is_empty()).map(canonical);
        if file.as_deref() != Some(store_file.as_path()) {
            return Err(DeliveryStoreError::new(format!(
                "the transaction is on {}, not on the store's file {}",
                file.map_or_else(
                    || "an in-memory database".to_owned(),
                    |f| f.display().to_string()
                ),
                store_file.display()
            )));
        }
        Ok(())
    }
}

/// The file's path with links resolved, so two spellings of one file
/// compare equal; the path as given when it cannot be resolved.
pub(super) fn canonical(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Refuses a file that is not a sender store of [`SCHEMA_VERSION`].
fn check_schema(conn: &Connection) -> Result<(), DeliveryStoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    match version {
        SCHEMA_VERSION => Ok(()),
        0 => Err(DeliveryStoreError::new(
            "the file holds no sender store: open it with SqliteStore::open first",
        )),
        v => Err(DeliveryStoreError::new(format!(
            "the file has sender schema version {v}; this version of webhook-guard writes version \
             {SCHEMA_VERSION}: open it with SqliteStore::open of this version first"
        ))),
    }
}
