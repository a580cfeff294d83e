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

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::seal::{SecretSeal, decode_secrets, encode_secrets};
use super::{DeliveryStore, NewDelivery, NextStep};
use crate::sender::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, ErrorClass, OutgoingEvent, Page,
};
use crate::sender::destination::{Destination, EventFilter};
use crate::sender::error::{SenderError, StoreError};

const SCHEMA_VERSION: i64 = 2;

/// The first schema.
const MIGRATION_1: &str = include_str!("schema/1.sql");

/// Version 2: every delivery writes as few B-trees as it can. An event is
/// one row of a `WITHOUT ROWID` table, a delivery one row (no
/// `AUTOINCREMENT`) and four index entries, an attempt one row of a
/// `WITHOUT ROWID` table keyed by its delivery and its number in that
/// delivery's history. The status index covers only the dead letter queue
/// (small, and listed often): a delivery that succeeds leaves no index
/// entry behind but its row's. Runs with foreign keys off, so the tables
/// can be rebuilt under their old names.
const MIGRATION_2: &str = include_str!("schema/2.sql");

/// Work for the store thread: a call that can run inside the current
/// group's transaction (more than once, should the group be rolled back and
/// run again) and answer its caller once the group has committed (or not).
trait Job: Send {
    /// Runs the call; reports whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers with this error instead of running.
    fn fail(&mut self, error: StoreError);
    /// Answers the caller with the call's result, or with the commit's
    /// failure.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Call<F, T, E> {
    work: F,
    result: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Call<F, T, E>
where
    F: Fn(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, error: StoreError) {
        self.result = Some(Err(E::from(error)));
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(E::from(StoreError::new("the store skipped the call"))),
            (Err(e), _) => Err(E::from(e)),
        };
        let _ = self.reply.send(answer);
    }
}

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 256;

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
    jobs: std::sync::mpsc::Sender<Box<dyn Job>>,
    seal: Option<Arc<dyn SecretSeal>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("sealed", &self.seal.is_some())
            .finish_non_exhaustive()
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::new(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, switches it to WAL mode
    /// with `synchronous = NORMAL` (a process crash loses nothing; a power
    /// loss may lose the last commits; see [`open_durable`](Self::open_durable)) and
    /// migrates the schema.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the file cannot be opened or migrated, or was
    /// written by a newer schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
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
    pub fn open_durable(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(db_err)?;
        Self::setup(conn, "FULL", Some(path))
    }

    /// A private in-memory database (for tests that want SQL semantics).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when SQLite cannot start.
    pub fn open_in_memory() -> Result<Self, StoreError> {
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
    ) -> Result<Self, StoreError> {
        conn.busy_handler(Some(wait_for_lock)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(db_err)?;
        // Off while migrating: a migration rebuilds tables under their old
        // names (`PRAGMA foreign_keys` cannot change inside a transaction).
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(db_err)?;
        // Savepoints (the slow path of a group) journal in memory, not in a
        // temporary file created and deleted per group.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(db_err)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::new(format!(
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
                return Err(StoreError::new(format!(
                    "migrating to schema version 2 left a broken reference in `{table}`"
                )));
            }
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(path) = path {
            // Checkpoints fsync; run them beside the writer, not inside its
            // commits.
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(db_err)?;
            let checkpointer = Connection::open(path).map_err(db_err)?;
            checkpointer
                .busy_handler(Some(wait_for_lock))
                .map_err(db_err)?;
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("webhook-guard-sqlite-checkpoint".into())
                .spawn(move || run_checkpointer(&checkpointer, &stop))
                .map_err(|e| StoreError::new(format!("cannot start the checkpoint thread: {e}")))?;
        }
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("webhook-guard-sqlite".into())
            .spawn(move || {
                run_store_thread(&conn, &queue);
                stop.store(true, Ordering::SeqCst);
            })
            .map_err(|e| StoreError::new(format!("cannot start the store thread: {e}")))?;
        Ok(Self { jobs, seal: None })
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

    /// Runs `work` on the store thread in the next commit group and returns
    /// its result once that group has committed. `work` must only touch the
    /// database: it may run twice (see [`run_group`]).
    async fn call<T, E>(
        &self,
        work: impl Fn(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            work,
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| E::from(StoreError::new("the store thread has stopped")))?;
        answer
            .await
            .map_err(|_| E::from(StoreError::new("the store thread dropped the call")))?
    }
}

/// How long a connection waits for a lock held by another connection (the
/// checkpointer, or another process) before it reports `SQLITE_BUSY`.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

thread_local! {
    /// When the work under way on this thread stops waiting for locks: one
    /// deadline for a whole commit group (or checkpoint), so that a group
    /// retried call by call after a `BEGIN` that timed out does not wait
    /// again for every call.
    static LOCK_DEADLINE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with a fresh lock-wait deadline on this thread.
fn with_lock_deadline<T>(f: impl FnOnce() -> T) -> T {
    LOCK_DEADLINE.with(|d| d.set(Some(std::time::Instant::now() + LOCK_WAIT)));
    let out = f();
    LOCK_DEADLINE.with(|d| d.set(None));
    out
}

/// Waits for a lock in short steps: SQLite's own busy timeout sleeps 1, 2,
/// 5, 10 ms and longer between tries, so a writer blocked for a few
/// microseconds by a checkpoint would lose a millisecond or more.
fn wait_for_lock(tries: i32) -> bool {
    const SHORT_STEPS: u32 = 100;
    const SHORT: std::time::Duration = std::time::Duration::from_micros(20);
    const LONG: std::time::Duration = std::time::Duration::from_micros(200);
    let tries = u32::try_from(tries).unwrap_or(0);
    let out_of_time = match LOCK_DEADLINE.with(std::cell::Cell::get) {
        Some(deadline) => std::time::Instant::now() >= deadline,
        // Outside a deadline: count the steps slept, each at least as
        // long as its step.
        None => {
            SHORT * tries.min(SHORT_STEPS) + LONG * tries.saturating_sub(SHORT_STEPS) >= LOCK_WAIT
        }
    };
    if out_of_time {
        return false;
    }
    std::thread::sleep(if tries < SHORT_STEPS { SHORT } else { LONG });
    true
}

/// WAL pages after which a checkpoint may block writers to bound the file.
const WAL_LIMIT_PAGES: i64 = 16_384;

/// Copies the WAL into the database every 200 ms without blocking the
/// writer; truncates it when it has grown past [`WAL_LIMIT_PAGES`]. Ends
/// with a last checkpoint once the store is dropped.
fn run_checkpointer(conn: &Connection, stop: &AtomicBool) {
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let passive: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        match passive {
            Ok((_, log, _)) if log > WAL_LIMIT_PAGES || stopping => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "SQLite checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
        if stopping {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs queued jobs in groups, one transaction per group, until every
/// handle to the store is dropped.
fn run_store_thread(conn: &Connection, queue: &std::sync::mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let commit = with_lock_deadline(|| run_group(conn, &mut group));
        for job in group {
            job.finish(commit.clone());
        }
    }
}

/// Runs one group of jobs in one transaction.
///
/// The fast path runs them one after the other with no savepoints. Should
/// one fail, the whole transaction is rolled back and the group runs again,
/// each job in its own savepoint, so that a failing job rolls back alone
/// and the others still commit. Without `BEGIN` (another process holds the
/// write lock past the busy timeout) each job's savepoint is its own
/// transaction.
fn run_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    if run_cached(conn, "BEGIN IMMEDIATE").is_ok() {
        let mut all_ok = true;
        for job in group.iter_mut() {
            if !job.run(conn) {
                all_ok = false;
                break;
            }
        }
        if all_ok {
            return commit(conn);
        }
        run_cached(conn, "ROLLBACK").map_err(db_err)?;
        if run_cached(conn, "BEGIN IMMEDIATE").is_ok() {
            run_isolated(conn, group);
            return commit(conn);
        }
    }
    run_isolated(conn, group);
    Ok(())
}

/// Commits the open transaction, or rolls it back if the commit fails.
fn commit(conn: &Connection) -> Result<(), StoreError> {
    run_cached(conn, "COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        db_err(e)
    })
}

/// Runs each job in a savepoint of its own, rolled back if the job fails.
fn run_isolated(conn: &Connection, group: &mut [Box<dyn Job>]) {
    for job in group.iter_mut() {
        // Every path below replaces the result of the rolled-back run: a
        // job that cannot run, or whose savepoint cannot be closed, answers
        // with that error.
        if let Err(e) = run_cached(conn, "SAVEPOINT job") {
            job.fail(db_err(e));
            continue;
        }
        let undo = if job.run(conn) {
            run_cached(conn, "RELEASE job")
        } else {
            run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
        };
        if let Err(e) = undo {
            job.fail(db_err(e));
        }
    }
}

const DESTINATION_COLUMNS: &str =
    "id, url, scheme, events, enabled, disabled_reason, created_at_ms, secrets";

fn destination_from_row(row: &Row<'_>) -> rusqlite::Result<(Destination, String)> {
    let events: String = row.get(3)?;
    let events: EventFilter = serde_json::from_str(&events).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok((
        Destination {
            id: row.get(0)?,
            url: row.get(1)?,
            scheme: row.get(2)?,
            events,
            enabled: row.get(4)?,
            disabled_reason: row.get(5)?,
            created_at_ms: row.get(6)?,
            secrets: Vec::new(),
        },
        row.get(7)?,
    ))
}

fn finish_destination(
    (mut d, secrets): (Destination, String),
    seal: Option<&dyn SecretSeal>,
) -> Result<Destination, StoreError> {
    d.secrets = decode_secrets(&secrets, seal)?;
    Ok(d)
}

const DELIVERY_SELECT: &str = "SELECT d.seq, d.id, d.event_id, e.event_type, d.destination_id, \
    d.status, d.attempts, d.next_attempt_at_ms, d.lease_until_ms, d.created_at_ms, \
    d.updated_at_ms, d.delivered_at_ms, d.dead_lettered_at_ms, d.last_error, d.replay_of, \
    d.replayed_as, e.body FROM deliveries d JOIN events e ON e.id = d.event_id";

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = row.get(5)?;
    let status = DeliveryStatus::from_name(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Text,
            format!("unknown delivery status `{status}`").into(),
        )
    })?;
    let body: Vec<u8> = row.get(16)?;
    Ok(Delivery {
        seq: row.get(0)?,
        id: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        destination_id: row.get(4)?,
        status,
        attempts: row.get(6)?,
        next_attempt_at_ms: row.get(7)?,
        lease_until_ms: row.get(8)?,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        delivered_at_ms: row.get(11)?,
        dead_lettered_at_ms: row.get(12)?,
        last_error: row.get(13)?,
        replay_of: row.get(14)?,
        replayed_as: row.get(15)?,
        body: Bytes::from(body),
    })
}

fn load_delivery(conn: &Connection, id: &str) -> Result<Option<Delivery>, StoreError> {
    conn.query_row(
        &format!("{DELIVERY_SELECT} WHERE d.id = ?1"),
        [id],
        delivery_from_row,
    )
    .optional()
    .map_err(db_err)
}

fn insert_delivery(
    conn: &Connection,
    new: &NewDelivery,
    event_type: &str,
    body: &Bytes,
) -> Result<Delivery, StoreError> {
    conn.prepare_cached(
        "INSERT INTO deliveries (id, event_id, destination_id, status, next_attempt_at_ms, \
         created_at_ms, updated_at_ms, replay_of, lease_until_ms) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?5, ?6, ?7)",
    )
    .map_err(db_err)?
    .execute(params![
        new.id,
        new.event_id,
        new.destination_id,
        new.next_attempt_at_ms,
        new.created_at_ms,
        new.replay_of,
        new.lease_until_ms
    ])
    .map_err(db_err)?;
    Ok(new.pending(
        conn.last_insert_rowid(),
        event_type.to_owned(),
        body.clone(),
    ))
}

/// Dead-letters the pending deliveries of a destination, or one pending
/// delivery held under the lease `lease`.
fn dead_letter_pending(
    conn: &Connection,
    target: DeadLetterTarget<'_>,
    now_ms: i64,
    reason: &str,
) -> Result<usize, StoreError> {
    const SET: &str = "UPDATE deliveries SET status = 'dead_lettered', next_attempt_at_ms = NULL, \
         lease_until_ms = NULL, dead_lettered_at_ms = ?2, updated_at_ms = ?2, last_error = ?3";
    match target {
        DeadLetterTarget::Destination(id) => conn.execute(
            &format!("{SET} WHERE destination_id = ?1 AND status = 'pending'"),
            params![id, now_ms, reason],
        ),
        DeadLetterTarget::Leased { id, lease } => conn.execute(
            &format!("{SET} WHERE id = ?1 AND status = 'pending' AND lease_until_ms = ?4"),
            params![id, now_ms, reason, lease],
        ),
    }
    .map_err(db_err)
}

enum DeadLetterTarget<'a> {
    Destination(&'a str),
    Leased { id: &'a str, lease: i64 },
}

impl DeliveryStore for SqliteStore {
    async fn save_destination(&self, destination: &Destination) -> Result<(), StoreError> {
        let d = destination.clone();
        let secrets = encode_secrets(&d.secrets, self.seal.as_deref())?;
        let events = serde_json::to_string(&d.events)
            .map_err(|e| StoreError::new(format!("encoding the event filter: {e}")))?;
        self.call(move |conn: &Connection| {
            conn.execute(
                "INSERT INTO destinations (id, url, scheme, events, enabled, disabled_reason, \
                 created_at_ms, secrets, position) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 (SELECT COALESCE(MAX(position), 0) + 1 FROM destinations)) \
                 ON CONFLICT(id) DO UPDATE SET url = excluded.url, scheme = excluded.scheme, \
                 events = excluded.events, enabled = excluded.enabled, \
                 disabled_reason = excluded.disabled_reason, secrets = excluded.secrets",
                params![
                    d.id,
                    d.url,
                    d.scheme,
                    events,
                    d.enabled,
                    d.disabled_reason,
                    d.created_at_ms,
                    secrets
                ],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn destination(&self, id: &str) -> Result<Option<Destination>, StoreError> {
        let id = id.to_owned();
        let seal = self.seal.clone();
        self.call(move |conn: &Connection| {
            conn.query_row(
                &format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = ?1"),
                [&id],
                destination_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(|row| finish_destination(row, seal.as_deref()))
            .transpose()
        })
        .await
    }

    async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
        let seal = self.seal.clone();
        self.call(move |conn: &Connection| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY position"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], destination_from_row)
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            rows.into_iter()
                .map(|row| finish_destination(row, seal.as_deref()))
                .collect()
        })
        .await
    }

    async fn delete_destination(
        &self,
        id: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.call(move |conn: &Connection| {
            let n = conn
                .execute("DELETE FROM destinations WHERE id = ?1", [&id])
                .map_err(db_err)?;
            dead_letter_pending(conn, DeadLetterTarget::Destination(&id), now_ms, &reason)?;
            Ok(n > 0)
        })
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
        self.call(move |conn: &Connection| {
            let body = event.body_bytes();
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO events (id, event_type, body, created_at_ms) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT(id) DO NOTHING",
                )
                .map_err(db_err)?
                .execute(params![event.id(), event.event_type(), event.body(), created_at_ms])
                .map_err(db_err)?;
            if inserted == 0 {
                return Err(SenderError::DuplicateEvent {
                    id: event.id().to_owned(),
                });
            }
            let mut out = Vec::with_capacity(deliveries.len());
            for new in &deliveries {
                out.push(insert_delivery(conn, new, event.event_type(), &body)?);
            }
            Ok(out)
        })
        .await
    }

    async fn replay(
        &self,
        original: &str,
        new: &NewDelivery,
    ) -> Result<Option<Delivery>, StoreError> {
        let (original, new) = (original.to_owned(), new.clone());
        self.call(move |conn: &Connection| {
            let status: Option<String> = conn
                .query_row(
                    "SELECT status FROM deliveries WHERE id = ?1",
                    [&original],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            let Some(status) = status else {
                return Err(StoreError::new(format!(
                    "delivery `{original}` is not stored"
                )));
            };
            if status == DeliveryStatus::Replayed.as_str() {
                return Ok(None);
            }
            let (event_type, body): (String, Vec<u8>) = conn
                .query_row(
                    "SELECT event_type, body FROM events WHERE id = ?1",
                    [&new.event_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            let created = insert_delivery(conn, &new, &event_type, &Bytes::from(body))?;
            if status == DeliveryStatus::DeadLettered.as_str() {
                conn.execute(
                    "UPDATE deliveries SET status = 'replayed', replayed_as = ?2, updated_at_ms = ?3 \
                     WHERE id = ?1",
                    params![original, created.id, new.created_at_ms],
                )
                .map_err(db_err)?;
            }
            Ok(Some(created))
        })
        .await
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.call(move |conn: &Connection| {
            // No `LIMIT ?`: a bound LIMIT makes SQLite prepare the statement
            // again on every call. The due index yields rows in order, so
            // stepping stops after `limit` of them.
            let mut out: Vec<Delivery> = {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "{DELIVERY_SELECT} JOIN destinations t ON t.id = d.destination_id \
                         WHERE d.status = 'pending' AND d.next_attempt_at_ms <= ?1 \
                           AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?1) \
                           AND t.enabled = 1 \
                         ORDER BY d.next_attempt_at_ms, d.seq"
                    ))
                    .map_err(db_err)?;
                stmt.query_map([now_ms], delivery_from_row)
                    .map_err(db_err)?
                    .take(limit)
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?
            };
            let mut lease = conn
                .prepare_cached("UPDATE deliveries SET lease_until_ms = ?2 WHERE seq = ?1")
                .map_err(db_err)?;
            for d in &mut out {
                lease
                    .execute(params![d.seq, lease_until_ms])
                    .map_err(db_err)?;
                d.lease_until_ms = Some(lease_until_ms);
            }
            Ok(out)
        })
        .await
    }

    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        lease_until_ms: i64,
        next: &NextStep,
    ) -> Result<(), StoreError> {
        let (a, next) = (attempt.clone(), next.clone());
        self.call(move |conn: &Connection| {
            let now = a
                .started_at_ms
                .saturating_add(i64::try_from(a.duration_ms).unwrap_or(i64::MAX));
            conn.prepare_cached(
                "INSERT INTO attempts (delivery_id, n, attempt, started_at_ms, duration_ms, \
                 status_code, error_class, error, response_body) VALUES (?1, \
                 (SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE delivery_id = ?1), \
                 ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(db_err)?
            .execute(params![
                a.delivery_id,
                a.attempt,
                a.started_at_ms,
                i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
                a.status_code,
                a.error_class.map(ErrorClass::as_str),
                a.error,
                a.response_body
            ])
            .map_err(db_err)?;
            let (status, next_at, delivered, dead, error) = match &next {
                NextStep::Delivered => ("delivered", None, Some(now), None, a.error.clone()),
                NextStep::RetryAt(at) => ("pending", Some(*at), None, None, a.error.clone()),
                NextStep::DeadLetter(reason) => {
                    ("dead_lettered", None, None, Some(now), Some(reason.clone()))
                }
            };
            conn.prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = MAX(attempts, ?3), \
                 next_attempt_at_ms = ?4, lease_until_ms = NULL, updated_at_ms = ?5, \
                 delivered_at_ms = COALESCE(?6, delivered_at_ms), \
                 dead_lettered_at_ms = COALESCE(?7, dead_lettered_at_ms), last_error = ?8 \
                 WHERE id = ?1 AND status = 'pending' AND lease_until_ms = ?9",
            )
            .map_err(db_err)?
            .execute(params![
                a.delivery_id,
                status,
                a.attempt,
                next_at,
                now,
                delivered,
                dead,
                error,
                lease_until_ms
            ])
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn reschedule(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let id = delivery_id.to_owned();
        self.call(move |conn: &Connection| {
            conn.prepare_cached(
                "UPDATE deliveries SET lease_until_ms = NULL, next_attempt_at_ms = ?2 \
                 WHERE id = ?1 AND status = 'pending' AND lease_until_ms = ?3",
            )
            .map_err(db_err)?
            .execute(params![id, at_ms, lease_until_ms])
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn dead_letter(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let (id, reason) = (delivery_id.to_owned(), reason.to_owned());
        self.call(move |conn: &Connection| {
            let target = DeadLetterTarget::Leased {
                id: &id,
                lease: lease_until_ms,
            };
            dead_letter_pending(conn, target, now_ms, &reason)?;
            Ok(())
        })
        .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let id = id.to_owned();
        self.call(move |conn: &Connection| load_delivery(conn, &id))
            .await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Page<Delivery>, StoreError> {
        let q = query.clone();
        self.call(move |conn: &Connection| {
            let mut clauses = Vec::new();
            let mut args: Vec<Value> = Vec::new();
            if let Some(x) = q.status {
                // A literal (one of four fixed names), not a parameter, so
                // that the planner can use the dead letter index.
                clauses.push(format!("d.status = '{}'", x.as_str()));
            }
            let mut push = |clause: &str, v: Value| {
                args.push(v);
                clauses.push(format!("{clause} ?{}", args.len()));
            };
            if let Some(x) = &q.destination_id {
                push("d.destination_id =", Value::Text(x.clone()));
            }
            if let Some(x) = &q.event_id {
                push("d.event_id =", Value::Text(x.clone()));
            }
            if let Some(x) = &q.event_type {
                push("e.event_type =", Value::Text(x.clone()));
            }
            if let Some(x) = q.since_ms {
                push("d.created_at_ms >=", Value::Integer(x));
            }
            if let Some(x) = q.until_ms {
                push("d.created_at_ms <", Value::Integer(x));
            }
            if let Some(x) = q.before_seq {
                push("d.seq <", Value::Integer(x));
            }
            let size = q.page_size();
            let where_sql = if clauses.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", clauses.join(" AND "))
            };
            let sql = format!(
                "{DELIVERY_SELECT}{where_sql} ORDER BY d.seq DESC LIMIT {}",
                size + 1
            );
            let mut stmt = conn.prepare(&sql).map_err(db_err)?;
            let mut items = stmt
                .query_map(rusqlite::params_from_iter(args), delivery_from_row)
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            let next_cursor = if items.len() > size {
                items.truncate(size);
                items.last().map(|d| d.seq)
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let id = delivery_id.to_owned();
        self.call(move |conn: &Connection| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT delivery_id, attempt, started_at_ms, duration_ms, status_code, \
                     error_class, error, response_body FROM attempts WHERE delivery_id = ?1 ORDER BY n",
                )
                .map_err(db_err)?;
            stmt.query_map([&id], |r| {
                let class: Option<String> = r.get(5)?;
                let duration: i64 = r.get(3)?;
                Ok(DeliveryAttempt {
                    delivery_id: r.get(0)?,
                    attempt: r.get(1)?,
                    started_at_ms: r.get(2)?,
                    duration_ms: u64::try_from(duration).unwrap_or(0),
                    status_code: r.get(4)?,
                    error_class: class.as_deref().and_then(ErrorClass::from_name),
                    error: r.get(6)?,
                    response_body: r.get(7)?,
                })
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)
        })
        .await
    }
}
