use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use sha2::{Digest, Sha256};

use super::store::{Begin, IdempotencyStore, IdempotencyStoreError, LeaseToken, StoreFuture};
use crate::postgres::{DEFAULT_POOL_SIZE, PgSetupError, error_chain, migrate, pool_from_url};

/// The schema migrations of the `idempotency` component, in order.
const MIGRATIONS: &[&str] = &[include_str!(
    "../../migrations/postgres/idempotency/0001_init.sql"
)];

/// How long one store operation may take, pool checkout included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Every this many `begin` calls, a store deletes expired rows.
const SWEEP_EVERY: u64 = 32;

/// The most expired rows one automatic sweep deletes.
const SWEEP_LIMIT: u32 = 256;

/// Longest lease or TTL applied, so the expiry stays within PostgreSQL's
/// timestamp range: 100 years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Takes the key if it is absent or expired (then the statement returns a
/// row); a live row is left as it is and the statement returns none. One
/// statement: the primary key makes two concurrent begins for one key
/// serialize, and only one of them can find the row absent or expired.
const BEGIN: &str = "
INSERT INTO webhook_guard_idempotency AS held (key_hash, key, token, state, expires_at)
VALUES ($1, $2, $3, 'in_flight', now() + $4::bigint * interval '1 millisecond')
ON CONFLICT (key_hash) DO UPDATE
    SET key = excluded.key, token = excluded.token,
        state = 'in_flight', expires_at = excluded.expires_at
    WHERE held.expires_at <= now()
RETURNING 1";

/// What a live key holds, after `BEGIN` found it taken.
const STATE: &str = "
SELECT state FROM webhook_guard_idempotency WHERE key_hash = $1 AND expires_at > now()";

const COMPLETE: &str = "
UPDATE webhook_guard_idempotency
SET state = 'done', expires_at = now() + $3::bigint * interval '1 millisecond'
WHERE key_hash = $1 AND token = $2 AND state = 'in_flight' AND expires_at > now()";

const RELEASE: &str = "
DELETE FROM webhook_guard_idempotency
WHERE key_hash = $1 AND token = $2 AND state = 'in_flight' AND expires_at > now()";

/// Deletes up to `$1` expired rows. Rows another session holds are
/// skipped, and the outer condition is checked again on the newest version
/// of each row, so a key a `begin` just took over is never deleted.
const SWEEP: &str = "
DELETE FROM webhook_guard_idempotency
WHERE key_hash IN (
    SELECT key_hash FROM webhook_guard_idempotency
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) AND expires_at <= now()";

/// An [`IdempotencyStore`] in PostgreSQL, shared by receivers on several
/// machines, for fleets that run PostgreSQL and no Redis (feature
/// `postgres`).
///
/// Keys live in the table `webhook_guard_idempotency`, one row per key,
/// created by [`connect`](Self::connect) and [`from_pool`](Self::from_pool)
/// (versioned migrations, applied once under an advisory lock, so nodes
/// may start together; a database migrated by a newer version of this crate
/// is refused rather than written to).
///
/// - `begin`: one `INSERT .. ON CONFLICT DO UPDATE .. WHERE expired`
///   statement: it inserts the key with a random 128-bit [`LeaseToken`], or
///   takes over a row whose lease or done TTL has passed, in place. Two
///   concurrent begins for one key serialize on its primary key and only
///   one wins. When the key is live, a `SELECT` tells in flight from done.
/// - `complete`: an `UPDATE` to done, with the done TTL, only where the row
///   still holds this lease's token and the lease has not expired.
/// - `release`: a `DELETE` under the same condition.
///
/// **Time is the database server's**: expiries are `timestamptz` values
/// computed with `now()` on the server, never with the receiver's clock, so
/// receivers whose clocks disagree still agree on what has expired.
///
/// The table is keyed by the SHA-256 of each key, and the full key is kept
/// beside it as `TEXT`. A key is the scope, the verifier's identity (up to
/// 256 bytes) and the signed event id (up to 256 bytes); the scope is a
/// route template or a name you choose, of any length, while a b-tree entry
/// is limited to about 2.7 kB. The 32-byte hash fits any key and keeps the
/// index small.
///
/// **Expired rows** are taken over in place by the next `begin` of the same
/// key, and every 32nd `begin` of a store also deletes up to 256 expired
/// rows on a background task (`DELETE .. LIMIT .. FOR UPDATE SKIP LOCKED`,
/// through an index on the expiry). Sweeping in proportion to the traffic
/// keeps up with any insert rate (up to 8 rows removed per key added) at a
/// small, bounded cost per sweep, and an idle receiver does no work. A
/// periodic job can do the same with [`sweep_expired`](Self::sweep_expired)
/// or `DELETE FROM webhook_guard_idempotency WHERE expires_at <= now()`.
///
/// **Failures**: each operation, checking a connection out of the pool
/// included, must finish within a timeout (2 s by default, see
/// [`timeout`](Self::timeout)); a PostgreSQL that is down or does not answer
/// in time is an [`IdempotencyStoreError`], which the layer answers with 503
/// ([`FailMode::Closed`](super::FailMode::Closed)). Broken connections are
/// replaced once the server is back.
///
/// To share one database between applications, give each its own schema
/// (`options=-csearch_path%3Dorders` in the URL, or your pool's settings).
///
/// ```no_run
/// use webhook_guard::idempotency::{IdempotencyLayer, PgIdempotencyStore};
///
/// # async fn run() -> Result<(), webhook_guard::idempotency::IdempotencyStoreError> {
/// let store = PgIdempotencyStore::connect("postgres://app:secret@db.internal:5432/webhooks").await?;
/// let layer = IdempotencyLayer::new(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PgIdempotencyStore {
    pool: Pool,
    timeout: Duration,
    begins: Arc<AtomicU64>,
}

impl PgIdempotencyStore {
    /// Connects to the PostgreSQL at `url` with a pool of up to 16
    /// connections, and creates or migrates the table.
    ///
    /// `url` is `postgres://user:password@host:port/db` or the key-value
    /// form (`host=/run/postgresql user=app dbname=app`). The connections
    /// do **not** use TLS: for TLS, or other pool settings, build a
    /// `deadpool_postgres::Pool` yourself and use
    /// [`from_pool`](Self::from_pool).
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when the URL is invalid, PostgreSQL cannot be
    /// reached, the migration fails, or the database holds a newer schema of
    /// this table than this version of the crate knows. The message never
    /// contains the URL (it may hold a password).
    pub async fn connect(url: &str) -> Result<Self, IdempotencyStoreError> {
        let pool = pool_from_url(url, DEFAULT_POOL_SIZE).map_err(setup_error)?;
        Self::from_pool(pool).await
    }

    /// A store over a pool you configured yourself (TLS, sizes, timeouts),
    /// after creating or migrating the table.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), except for the URL.
    pub async fn from_pool(pool: Pool) -> Result<Self, IdempotencyStoreError> {
        let store = Self {
            pool,
            timeout: DEFAULT_TIMEOUT,
            begins: Arc::new(AtomicU64::new(0)),
        };
        // A connection first, so that an unreachable server is reported
        // with its cause.
        drop(store.bounded("connect", store.client()).await?);
        migrate(&store.pool, "idempotency", MIGRATIONS)
            .await
            .map_err(setup_error)?;
        Ok(store)
    }

    /// How long one operation may take, checking a connection out of the
    /// pool included (default 2 s). Past it, the operation fails and the
    /// layer answers 503.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Deletes up to `limit` expired rows and returns how many it deleted.
    /// The store already does this on its own as it is used (see the type's
    /// docs); call it from a periodic job if you want more.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when PostgreSQL cannot be reached.
    pub async fn sweep_expired(&self, limit: u32) -> Result<u64, IdempotencyStoreError> {
        self.execute("sweep", SWEEP, &[&i64::from(limit)]).await
    }

    async fn client(&self) -> Result<Object, IdempotencyStoreError> {
        self.pool.get().await.map_err(|e| {
            IdempotencyStoreError::new(format!("cannot connect to PostgreSQL: {}", error_chain(&e)))
        })
    }

    /// Runs `op` within the store's timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, IdempotencyStoreError>>,
    ) -> Result<T, IdempotencyStoreError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or_else(|_| {
                Err(IdempotencyStoreError::new(format!(
                    "PostgreSQL {what} did not finish within {:?}",
                    self.timeout
                )))
            })
    }

    /// One statement, prepared once per connection: the number of rows it
    /// changed.
    async fn execute(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, IdempotencyStoreError> {
        self.bounded(what, async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| sql_error(what, &e))?;
            client
                .execute(&statement, params)
                .await
                .map_err(|e| sql_error(what, &e))
        })
        .await
    }

    /// Tries to take `key`; when it is live, reports what holds it.
    async fn try_begin(
        &self,
        key: &str,
        hash: &[u8],
        token: &[u8],
        lease_ms: i64,
    ) -> Result<Attempt, IdempotencyStoreError> {
        self.bounded("begin", async {
            let client = self.client().await?;
            let begin = client
                .prepare_cached(BEGIN)
                .await
                .map_err(|e| sql_error("begin", &e))?;
            let taken = client
                .query_opt(&begin, &[&hash, &key, &token, &lease_ms])
                .await
                .map_err(|e| sql_error("begin", &e))?;
            if taken.is_some() {
                return Ok(Attempt::Taken);
            }
            let state = client
                .prepare_cached(STATE)
                .await
                .map_err(|e| sql_error("begin", &e))?;
            let row = client
                .query_opt(&state, &[&hash])
                .await
                .map_err(|e| sql_error("begin", &e))?;
            let state: Option<String> = row.map(|row| row.get(0));
            Ok(match state.as_deref() {
                Some("done") => Attempt::Held(Begin::Done),
                Some(_) => Attempt::Held(Begin::InFlight),
                None => Attempt::Vanished,
            })
        })
        .await
    }

    /// Every [`SWEEP_EVERY`] begins, deletes a few expired rows on a
    /// background task.
    fn maybe_sweep(&self) {
        if self.begins.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            if let Err(err) = store.sweep_expired(SWEEP_LIMIT).await {
                tracing::warn!("could not delete expired idempotency keys: {err}");
            }
        });
    }
}

/// What one try at taking a key came to.
enum Attempt {
    /// This lease holds the key now.
    Taken,
    /// Another lease, or a done mark, holds it.
    Held(Begin),
    /// It was live at the insert and gone at the look-up (released or
    /// expired in between).
    Vanished,
}

/// The key's primary key in the table.
fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.min(MAX_TTL).as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn setup_error(err: PgSetupError) -> IdempotencyStoreError {
    IdempotencyStoreError::new(err)
}

fn sql_error(what: &str, err: &tokio_postgres::Error) -> IdempotencyStoreError {
    IdempotencyStoreError::new(format!("PostgreSQL {what} failed: {}", error_chain(err)))
}

impl fmt::Debug for PgIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgIdempotencyStore")
            .field("max_connections", &self.pool.status().max_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore for PgIdempotencyStore {
    fn begin<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Begin> {
        Box::pin(async move {
            self.maybe_sweep();
            let hash = key_hash(key);
            let token = LeaseToken::random();
            let bytes = token.get().to_be_bytes();
            // A live key can be released or expire between the insert and
            // the look-up; then try again, a bounded number of times.
            for _ in 0..3 {
                match self.try_begin(key, &hash, &bytes, millis(lease)).await? {
                    Attempt::Taken => return Ok(Begin::New(token)),
                    Attempt::Held(found) => return Ok(found),
                    Attempt::Vanished => continue,
                }
            }
            Ok(Begin::InFlight)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let hash = key_hash(key);
            let token = token.get().to_be_bytes();
            let changed = self
                .execute(
                    "complete",
                    COMPLETE,
                    &[&&hash[..], &&token[..], &millis(ttl)],
                )
                .await?;
            Ok(changed == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let hash = key_hash(key);
            let token = token.get().to_be_bytes();
            let removed = self
                .execute("release", RELEASE, &[&&hash[..], &&token[..]])
                .await?;
            Ok(removed == 1)
        })
    }
}
