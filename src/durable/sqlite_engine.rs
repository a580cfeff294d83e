//! The store thread: one connection, calls committed in groups, a savepoint
//! per call when a group must be run again, lock waits in short steps, and
//! a checkpointer beside the writer. Knows SQLite, not deliveries or inbox
//! events: a call is any closure over the connection. Shared by the sender's
//! and the inbox's SQLite stores.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

/// Why the store thread could not run a call: SQLite failed, or the thread
/// is gone. Each store turns it into its own error type (`From`).
#[derive(Debug, Clone)]
pub(crate) struct EngineError(pub(crate) String);

impl EngineError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A SQLite error as an engine error.
pub(crate) fn db_err(e: rusqlite::Error) -> EngineError {
    EngineError::new(format!("sqlite: {e}"))
}

/// Work for the store thread: a call that can run inside the current
/// group's transaction (more than once, should the group be rolled back and
/// run again) and answer its caller once the group has committed (or not).
trait Job: Send {
    /// Runs the call; reports whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers with this error instead of running.
    fn fail(&mut self, error: EngineError);
    /// Answers the caller with the call's result, or with the commit's
    /// failure.
    fn finish(self: Box<Self>, commit: Result<(), EngineError>);
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
    E: From<EngineError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, error: EngineError) {
        self.result = Some(Err(E::from(error)));
    }

    fn finish(self: Box<Self>, commit: Result<(), EngineError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(E::from(EngineError::new("the store skipped the call"))),
            (Err(e), _) => Err(E::from(e)),
        };
        let _ = self.reply.send(answer);
    }
}

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 256;

/// The handle to a running store thread. Cheap to clone; the thread (and
/// its checkpointer) stop once every handle is dropped.
#[derive(Clone)]
pub(crate) struct Engine {
    jobs: std::sync::mpsc::Sender<Box<dyn Job>>,
}

impl Engine {
    /// Starts the store thread over `conn` (already migrated) and, for a
    /// database in a file at `path`, the checkpoint thread beside it.
    pub(crate) fn start(conn: Connection, path: Option<&Path>) -> Result<Self, EngineError> {
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(path) = path {
            start_checkpointer(&conn, path, Arc::clone(&stop))?;
        }
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("webhook-guard-sqlite".into())
            .spawn(move || {
                run_store_thread(&conn, &queue);
                stop.store(true, Ordering::SeqCst);
            })
            .map_err(|e| EngineError::new(format!("cannot start the store thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the store thread in the next commit group and returns
    /// its result once that group has committed. `work` must only touch the
    /// database: it may run twice (see [`run_group`]).
    pub(crate) async fn call<T, E>(
        &self,
        work: impl Fn(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<EngineError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            work,
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| E::from(EngineError::new("the store thread has stopped")))?;
        answer
            .await
            .map_err(|_| E::from(EngineError::new("the store thread dropped the call")))?
    }
}

/// Moves checkpoints off the writer's connection onto a thread of their own
/// with a second connection to `path`; it stops once `stop` is set.
fn start_checkpointer(
    conn: &Connection,
    path: &Path,
    stop: Arc<AtomicBool>,
) -> Result<(), EngineError> {
    // Checkpoints fsync; run them beside the writer, not inside its
    // commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(db_err)?;
    let checkpointer = Connection::open(path).map_err(db_err)?;
    wait_for_locks(&checkpointer)?;
    std::thread::Builder::new()
        .name("webhook-guard-sqlite-checkpoint".into())
        .spawn(move || run_checkpointer(&checkpointer, &stop))
        .map_err(|e| EngineError::new(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

/// Sets a fresh connection up for the store thread: lock waits in short
/// steps, WAL, `synchronous` (`NORMAL` or `FULL`), savepoints journaled in
/// memory (the slow path of a group) rather than in a temporary file
/// created and deleted per group.
pub(crate) fn configure(conn: &Connection, synchronous: &str) -> Result<(), EngineError> {
    wait_for_locks(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(db_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(db_err)
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

/// Makes `conn` wait for another connection's locks (see [`wait_for_lock`])
/// instead of failing with `SQLITE_BUSY` at once.
pub(crate) fn wait_for_locks(conn: &Connection) -> Result<(), EngineError> {
    conn.busy_handler(Some(wait_for_lock)).map_err(db_err)
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
fn run_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), EngineError> {
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
fn commit(conn: &Connection) -> Result<(), EngineError> {
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
