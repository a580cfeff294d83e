//! The queue an example sender runs on, chosen from the environment, so
//! that several example processes can run as one fleet:
//!
//! - `WEBHOOK_DATABASE_URL=postgres://...`: the shared PostgreSQL queue
//!   (needs the `postgres` feature); every node started with the same URL
//!   takes its share of the work;
//! - otherwise `WEBHOOK_DB`: a SQLite file, for one process at a time.
//!
//! `WEBHOOK_LEASE_SECS` sets how long a claimed delivery stays leased to a
//! node, that is how long the work of a node that died waits before
//! another one takes it over.

use std::path::Path;
use std::time::Duration;

use webhook_guard::sender::{DeliveryStore, SenderBuilder, SqliteStore};

/// The store a node runs on.
pub(crate) enum NodeStore {
    /// A SQLite file of this process.
    Sqlite(SqliteStore),
    /// The queue shared by every node on one PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(webhook_guard::sender::PgStore),
}

impl NodeStore {
    /// Connects to `WEBHOOK_DATABASE_URL` when it is set, or opens the
    /// SQLite file `WEBHOOK_DB` (`default_db` when that is unset).
    pub(crate) async fn from_env(default_db: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        match std::env::var("WEBHOOK_DATABASE_URL") {
            Ok(url) if !url.is_empty() => postgres(&url).await,
            _ => {
                let db: std::path::PathBuf =
                    std::env::var_os("WEBHOOK_DB").map_or(default_db.into(), Into::into);
                Ok(Self::Sqlite(SqliteStore::open(db)?))
            }
        }
    }
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<NodeStore, Box<dyn std::error::Error>> {
    let store = webhook_guard::sender::PgStore::connect(url)
        .await
        .map_err(|e| format!("WEBHOOK_DATABASE_URL: {e}"))?;
    Ok(NodeStore::Postgres(store))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<NodeStore, Box<dyn std::error::Error>> {
    Err(
        "WEBHOOK_DATABASE_URL is set, but this build has no PostgreSQL support: \
         rebuild with --features postgres"
            .into(),
    )
}

/// Applies `WEBHOOK_LEASE_SECS` (whole seconds, at least 1) when it is set.
pub(crate) fn with_lease<S: DeliveryStore>(
    builder: SenderBuilder<S>,
) -> Result<SenderBuilder<S>, Box<dyn std::error::Error>> {
    let Ok(text) = std::env::var("WEBHOOK_LEASE_SECS") else {
        return Ok(builder);
    };
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(builder.lease(Duration::from_secs(secs))),
        _ => Err(format!(
            "WEBHOOK_LEASE_SECS must be a whole number of seconds, at least 1; got {text:?}"
        )
        .into()),
    }
}

/// `WEBHOOK_EVENTS`, how many events to publish, when it is set; `0` is a
/// node that only delivers what is queued.
pub(crate) fn events_to_publish() -> Result<Option<usize>, Box<dyn std::error::Error>> {
    match std::env::var("WEBHOOK_EVENTS") {
        Ok(text) => {
            text.trim().parse().map(Some).map_err(|_| {
                format!("WEBHOOK_EVENTS must be a number of events; got {text:?}").into()
            })
        }
        Err(_) => Ok(None),
    }
}
