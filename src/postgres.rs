//! What the PostgreSQL stores share: building a connection pool from a URL,
//! applying versioned schema migrations, once, under an advisory lock, and
//! (`listen`) the `LISTEN` connection that wakes idle workers.
//!
//! Each store (the sender's queue, the receivers' idempotency keys) is a
//! *component* with its own ordered list of SQL migrations, compiled into
//! the crate from `migrations/postgres/`. The version each component is at
//! lives in one table, `webhook_guard_schema`. Nodes that start together
//! serialize on a transaction-scoped advisory lock, so exactly one applies a
//! migration and the others find it applied; a database whose component is
//! at a version newer than this build knows is refused, so an old node never
//! writes into a schema it does not understand.

#[cfg(any(feature = "sender", feature = "inbox"))]
pub(crate) mod listen;

use std::fmt;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// The key of the advisory lock migrations run under ("whguard" in ASCII).
const MIGRATION_LOCK: i64 = 0x0077_6867_7561_7264;

/// The default number of connections in a pool built from a URL.
pub(crate) const DEFAULT_POOL_SIZE: usize = 16;

/// Why a pool could not be built or a schema migrated. Its text never
/// contains the connection URL (which may hold a password).
#[derive(Debug)]
pub(crate) enum PgSetupError {
    /// The URL does not parse as a PostgreSQL connection string.
    BadUrl(String),
    /// The pool could not be built.
    Pool(String),
    /// No connection could be taken from the pool.
    Connect(String),
    /// A statement failed.
    Sql(String),
    /// The database's schema is newer than this build.
    TooNew {
        component: &'static str,
        found: i32,
        known: i32,
    },
}

impl fmt::Display for PgSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(e) => write!(f, "the PostgreSQL URL is not valid: {e}"),
            Self::Pool(e) => write!(f, "cannot build the PostgreSQL connection pool: {e}"),
            Self::Connect(e) => write!(f, "cannot connect to PostgreSQL: {e}"),
            Self::Sql(e) => write!(f, "PostgreSQL migration failed: {e}"),
            Self::TooNew {
                component,
                found,
                known,
            } => write!(
                f,
                "the database holds the `{component}` schema at version {found}, newer than \
                 the version {known} this build of webhook-guard knows; upgrade every node \
                 before starting this one"
            ),
        }
    }
}

impl std::error::Error for PgSetupError {}

/// A pool of up to `size` connections (without TLS) to the database at
/// `url` (`postgres://user:password@host:port/db`, or the key-value form
/// `host=/run/postgresql user=app dbname=app`).
pub(crate) fn pool_from_url(url: &str, size: usize) -> Result<Pool, PgSetupError> {
    let config = tokio_postgres::Config::from_str(url)
        // The driver's parse errors do not quote the input.
        .map_err(|e| PgSetupError::BadUrl(e.to_string()))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| PgSetupError::Pool(e.to_string()))
}

/// Brings `component`'s schema up to date: applies, in one transaction
/// under the migration lock, each of `migrations` (version `i + 1` is
/// `migrations[i]`) that the database does not have yet.
///
/// # Errors
///
/// [`PgSetupError::TooNew`] when the database is at a version past
/// `migrations.len()`; otherwise connection or SQL errors, after which
/// nothing of this call is left applied.
pub(crate) async fn migrate(
    pool: &Pool,
    component: &'static str,
    migrations: &[&str],
) -> Result<(), PgSetupError> {
    let sql = |e: tokio_postgres::Error| PgSetupError::Sql(error_chain(&e));
    let mut client = pool
        .get()
        .await
        .map_err(|e| PgSetupError::Connect(error_chain(&e)))?;
    let tx = client.transaction().await.map_err(sql)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS webhook_guard_schema (
             component  TEXT PRIMARY KEY,
             version    INTEGER NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(sql)?;
    let found: i32 = tx
        .query_opt(
            "SELECT version FROM webhook_guard_schema WHERE component = $1",
            &[&component],
        )
        .await
        .map_err(sql)?
        .map_or(0, |row| row.get(0));
    let known = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
    if found > known {
        return Err(PgSetupError::TooNew {
            component,
            found,
            known,
        });
    }
    for step in migrations.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(step).await.map_err(sql)?;
    }
    if found < known {
        tx.execute(
            "INSERT INTO webhook_guard_schema (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = $2, applied_at = now()",
            &[&component, &known],
        )
        .await
        .map_err(sql)?;
    }
    tx.commit().await.map_err(sql)
}

/// An error and its causes, `outer: inner: ..`: the driver's own text stops
/// at "db error" or "error connecting to server", the reason is in its
/// sources. The driver never puts the connection password in either.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
