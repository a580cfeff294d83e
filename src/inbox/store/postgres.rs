//! An [`InboxStore`] in PostgreSQL (features `inbox` and `postgres`), so
//! that several receiver instances share one inbox.
//!
//! - **Inserts** are one `INSERT .. ON CONFLICT (id) DO NOTHING`: the id is
//!   unique across every receiver, and of two receivers storing one id at
//!   the same moment exactly one answers [`Insert::Stored`], the other
//!   [`Insert::Duplicate`].
//! - **Claims** take due events with `SELECT .. FOR UPDATE SKIP LOCKED` in
//!   one short statement, as the sender's queue does, and lease them: the
//!   lease is an expiry (`lease_until_ms`, the trait's fencing token) and an
//!   owner (the store instance that claimed). A settlement or a lease
//!   renewal applies only while that same owner holds that same lease, so a
//!   worker whose lease expired and was taken over changes nothing, even
//!   when two receivers' clocks give the same expiry.
//!   A claim is one round trip: its transaction's statements are sent
//!   together.
//! - **Ordering**: every row keeps `ordering_key` and `signed_at`, indexed
//!   by key and signed time among pending events, so the claim can keep
//!   events of one key back while another of that key is leased without a
//!   schema change. Claims that may lease keyed events run one at a time
//!   (under an advisory lock); while no keyed event is pending, claims do
//!   not wait for each other.
//! - **Migrations** are the versioned SQL of the `inbox` component, applied
//!   in one transaction under the advisory lock the other PostgreSQL stores
//!   use, so receivers starting together do not race; a database migrated by
//!   a newer version of this crate is refused.
//!
//! - **Wake-up**: an insert or a replay sends `NOTIFY` on the
//!   `webhook_guard_inbox` channel in its own statement, and a store built
//!   with [`connect`](PgInboxStore::connect) or
//!   [`with_listener`](PgInboxStore::with_listener) keeps one `LISTEN`
//!   connection (the sender's `PgStore` machinery), so idle workers on every
//!   receiver wake as soon as an event is stored anywhere, whatever their
//!   poll interval. Without a listener they find it within one poll
//!   interval.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{
    InboxCounts, InboxDepth, InboxEntry, InboxQuery, InboxStatus, InboxStore, InboxStoreError,
    Insert, NewInboxEvent, ReplaySelection, Settle,
};
use crate::postgres::listen::{self, Listener, ListenerTls};
use crate::postgres::{DEFAULT_POOL_SIZE, PgSetupError, error_chain, migrate, pool_from_url};
use crate::scheme::SchemeName;
use crate::trace_context::TraceParent;

/// The schema migrations of the `inbox` component, version `i + 1` at `i`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/inbox/0001_init.sql"),
    include_str!("../../../migrations/postgres/inbox/0002_traceparent.sql"),
];

/// The `NOTIFY` channel of inserts and replays.
const CHANNEL: &str = "webhook_guard_inbox";

/// The columns [`entry_from_row`] reads, in its order.
const COLUMNS: &str = "seq, id, scheme, signed_at, event_type, ordering_key, body, \
     received_at_ms, status, attempts, next_attempt_at_ms, lease_until_ms, last_error, \
     finished_at_ms, traceparent";

/// A PostgreSQL error as a store error (the driver's text never holds the
/// connection password).
fn pg_err(e: impl std::error::Error) -> InboxStoreError {
    InboxStoreError::new(format!("postgres: {}", error_chain(&e)))
}

fn setup_err(e: PgSetupError) -> InboxStoreError {
    InboxStoreError::new(e.to_string())
}

/// Inbox events in PostgreSQL, shared by every receiver that connects to
/// the same database. Cheap to clone (a shared pool).
///
/// Give each receiver process its own store (one [`connect`](Self::connect)
/// per process): the store's leases name the store instance.
///
/// ```no_run
/// use webhook_guard::inbox::{Inbox, PgInboxStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgInboxStore::connect("postgres://app:secret@db.internal/app").await?;
/// let inbox = Inbox::builder(store).build().await?;
/// # drop(inbox);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgInboxStore {
    pool: Pool,
    /// This instance's name on the leases it takes.
    owner: Arc<str>,
    /// Wakes idle workers when an event is stored or replayed anywhere.
    listener: Option<Arc<Listener>>,
}

impl std::fmt::Debug for PgInboxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgInboxStore")
            .field("owner", &self.owner)
            .field("listening", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl PgInboxStore {
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
    /// An [`InboxStoreError`] (never holding the URL) when the URL does not
    /// parse, the server cannot be reached, or the database holds an inbox
    /// schema newer than this build knows.
    pub async fn connect(url: &str) -> Result<Self, InboxStoreError> {
        let pool = pool_from_url(url, DEFAULT_POOL_SIZE).map_err(setup_err)?;
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| InboxStoreError::new(format!("the PostgreSQL URL is not valid: {e}")))?;
        Self::from_pool(pool)
            .await?
            .with_listener(config, tokio_postgres::NoTls)
            .await
    }

    /// A store over `pool` (a `deadpool-postgres` 0.14 pool, built with the
    /// TLS connector you need); migrates the schema. Without
    /// [`with_listener`](Self::with_listener) idle workers find new events
    /// at their poll interval.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn from_pool(pool: Pool) -> Result<Self, InboxStoreError> {
        migrate(&pool, "inbox", MIGRATIONS)
            .await
            .map_err(setup_err)?;
        Ok(Self {
            pool,
            owner: Arc::from(format!("{:032x}", fastrand::u128(..))),
            listener: None,
        })
    }

    /// Keeps a `LISTEN` connection to the database described by `config`
    /// (the pool's own settings) through `tls`, so that idle workers wake
    /// as soon as an event is stored or replayed by any receiver. Returns
    /// once the server listens; reconnects by itself after a loss.
    ///
    /// # Errors
    ///
    /// An [`InboxStoreError`] when the connection or the `LISTEN` fails.
    pub async fn with_listener<T: ListenerTls>(
        mut self,
        config: tokio_postgres::Config,
        tls: T,
    ) -> Result<Self, InboxStoreError> {
        let listener = listen::listen(config, tls, CHANNEL).await.map_err(pg_err)?;
        self.listener = Some(Arc::new(listener));
        Ok(self)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, InboxStoreError> {
        self.pool.get().await.map_err(pg_err)
    }
}

/// A row of [`COLUMNS`].
fn entry_from_row(row: &Row) -> Result<InboxEntry, InboxStoreError> {
    let status: String = row.try_get("status").map_err(pg_err)?;
    let status = InboxStatus::parse(&status).ok_or_else(|| {
        InboxStoreError::new(format!("unknown inbox status `{status}` in the database"))
    })?;
    let scheme: String = row.try_get("scheme").map_err(pg_err)?;
    let scheme: SchemeName = scheme
        .parse()
        .map_err(|e| InboxStoreError::new(format!("a stored scheme name is not known: {e}")))?;
    let attempts: i32 = row.try_get("attempts").map_err(pg_err)?;
    let body: Vec<u8> = row.try_get("body").map_err(pg_err)?;
    Ok(InboxEntry {
        seq: row.try_get("seq").map_err(pg_err)?,
        id: row.try_get("id").map_err(pg_err)?,
        scheme,
        signed_at: row.try_get("signed_at").map_err(pg_err)?,
        event_type: row.try_get("event_type").map_err(pg_err)?,
        ordering_key: row.try_get("ordering_key").map_err(pg_err)?,
        body: body.into(),
        received_at_ms: row.try_get("received_at_ms").map_err(pg_err)?,
        status,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at_ms: row.try_get("next_attempt_at_ms").map_err(pg_err)?,
        lease_until_ms: row.try_get("lease_until_ms").map_err(pg_err)?,
        last_error: row.try_get("last_error").map_err(pg_err)?,
        finished_at_ms: row.try_get("finished_at_ms").map_err(pg_err)?,
        // Set by claims only (see `claim_rows`).
        stale: false,
        traceparent: TraceParent::from_stored(row.try_get("traceparent").map_err(pg_err)?),
    })
}

fn entries(rows: &[Row]) -> Result<Vec<InboxEntry>, InboxStoreError> {
    rows.iter().map(entry_from_row).collect()
}

/// Opens a claim's transaction and decides, in a transaction-local setting,
/// whether it may lease events with an ordering key: only under the claim
/// lock (a transaction-scoped advisory lock, key `0x0069_6e62_6f78_636c`,
/// "inboxcl"), which it waits for only when such an event is pending. Keyed
/// claims must run one at a time, or two claimers could each see the
/// other's event of one key as not yet leased and take both.
/// A claim that sees none leases events without a key only, so claims of
/// unordered events never wait for each other (row locks and the lease
/// condition keep them apart), and a keyed event stored meanwhile waits for
/// the next claim.
///
/// It also has the claim run its generic plan: planning the claim anew for
/// each call's values (what PostgreSQL picks by itself, the generic plan's
/// estimates being poor) costs more than running it. The claim's shape
/// (candidates as an array, then a lookup by primary key) leaves the
/// generic plan no join to get wrong, and with sorting off its candidates
/// come from the due index in order, never from a sort of every pending
/// event.
const CLAIM_BEGIN: &str = "BEGIN; SELECT set_config('webhook_guard.inbox_claim_ordered', \
     CASE WHEN EXISTS (SELECT 1 FROM inbox_events \
       WHERE ordering_key IS NOT NULL AND status = 'pending') \
     THEN (SELECT 'on' FROM pg_advisory_xact_lock(29676241610629996)) ELSE 'off' END, true); \
     SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_sort = off";

/// The claim statement of [`claim_rows`], built once.
fn claim_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE inbox_events e SET lease_until_ms = $3, lease_owner = $4, \
               attempts = e.attempts + 1 \
             WHERE e.seq = ANY(ARRAY(SELECT c.seq FROM inbox_events c WHERE c.status = 'pending' \
                 AND c.next_attempt_at_ms <= $1 \
                 AND (c.lease_until_ms IS NULL OR c.lease_until_ms <= $1) \
                 AND (c.ordering_key IS NULL OR ( \
                   current_setting('webhook_guard.inbox_claim_ordered', true) = 'on' \
                   AND NOT EXISTS ( \
                   SELECT 1 FROM inbox_events o WHERE o.ordering_key = c.ordering_key \
                     AND o.status = 'pending' AND o.seq <> c.seq \
                     AND ((o.lease_until_ms IS NOT NULL AND o.lease_until_ms > $1) \
                       OR (COALESCE(o.signed_at, {MIN}), o.seq) \
                        < (COALESCE(c.signed_at, {MIN}), c.seq))))) \
               ORDER BY c.next_attempt_at_ms, c.seq LIMIT $2 FOR UPDATE SKIP LOCKED)) \
             RETURNING {}, \
               COALESCE(e.ordering_key IS NOT NULL AND e.signed_at < ( \
                 SELECT max(d.signed_at) FROM inbox_events d \
                 WHERE d.ordering_key = e.ordering_key AND d.status = 'done'), false) AS stale",
            prefixed("e."),
            MIN = i64::MIN + 1,
        )
    })
}

/// Leases up to `limit` due events to `owner` until `lease_until_ms`,
/// earliest due first, under the claim rule of the store trait: an event
/// with an ordering key only when no other pending event of its key is in
/// flight or comes earlier in `(signed_at, seq)` order (a missing signed
/// timestamp counts as earliest). Each claimed keyed event is marked stale
/// when a done event of its key was signed later. Rows another claim holds
/// locked are skipped, not waited for.
///
/// One round trip: [`CLAIM_BEGIN`], the claim and `COMMIT` are sent
/// together (pipelined), so the claim lock is held for the server's work
/// only, not for a round trip. Each statement still takes its own snapshot,
/// so the claim sees every claim committed before it got the lock. Once
/// sent, the three run to the end even if this future is dropped: the
/// connection never goes back to the pool inside the transaction.
async fn claim_rows(
    client: &impl GenericClient,
    owner: &str,
    now_ms: i64,
    limit: i64,
    lease_until_ms: i64,
) -> Result<Vec<InboxEntry>, InboxStoreError> {
    let stmt = client.prepare_cached(claim_sql()).await.map_err(pg_err)?;
    let params: [&(dyn ToSql + Sync); 4] = [&now_ms, &limit, &lease_until_ms, &owner];
    let (begun, rows, committed) = tokio::join!(
        client.batch_execute(CLAIM_BEGIN),
        client.query(&stmt, &params),
        // After a failed claim `COMMIT` rolls back, without an error.
        client.batch_execute("COMMIT"),
    );
    begun.map_err(pg_err)?;
    let rows = rows.map_err(pg_err)?;
    committed.map_err(pg_err)?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            let mut entry = entry_from_row(row)?;
            entry.stale = row.try_get("stale").map_err(pg_err)?;
            Ok(entry)
        })
        .collect::<Result<Vec<_>, InboxStoreError>>()?;
    claimed.sort_by_key(|e| (e.next_attempt_at_ms, e.seq));
    Ok(claimed)
}

/// [`COLUMNS`], each behind `prefix` (`e.`).
fn prefixed(prefix: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{prefix}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Settles event `id` when `owner` holds it under exactly `lease_until_ms`.
async fn settle_row(
    client: &impl GenericClient,
    owner: &str,
    id: &str,
    lease_until_ms: i64,
    settle: &Settle,
    now_ms: i64,
) -> Result<bool, InboxStoreError> {
    let out = settle.outcome(now_ms);
    let stmt = client
        .prepare_cached(
            "UPDATE inbox_events SET status = $4, next_attempt_at_ms = $5, \
             lease_until_ms = NULL, lease_owner = NULL, last_error = $6, finished_at_ms = $7 \
             WHERE id = $1 AND status = 'pending' AND lease_until_ms = $2 AND lease_owner = $3",
        )
        .await
        .map_err(pg_err)?;
    let changed = client
        .execute(
            &stmt,
            &[
                &id,
                &lease_until_ms,
                &owner,
                &out.status.as_str(),
                &out.next_attempt_at_ms,
                &out.last_error,
                &out.finished_at_ms,
            ],
        )
        .await
        .map_err(pg_err)?;
    Ok(changed == 1)
}

async fn replay_rows(
    client: &impl GenericClient,
    selection: &ReplaySelection,
    now_ms: i64,
) -> Result<u64, InboxStoreError> {
    const SET: &str = "UPDATE inbox_events SET status = 'pending', attempts = 0, \
         next_attempt_at_ms = $1, lease_until_ms = NULL, lease_owner = NULL, \
         finished_at_ms = NULL WHERE status = 'dead_lettered'";
    match selection {
        ReplaySelection::One(id) => {
            let sql = format!("{SET} AND id = $2");
            client.execute(&sql, &[&now_ms, id]).await
        }
        ReplaySelection::All => client.execute(SET, &[&now_ms]).await,
        ReplaySelection::Between { since_ms, until_ms } => {
            let sql = format!("{SET} AND finished_at_ms >= $2 AND finished_at_ms < $3");
            client.execute(&sql, &[&now_ms, since_ms, until_ms]).await
        }
    }
    .map_err(pg_err)
}

impl InboxStore for PgInboxStore {
    async fn insert(&self, event: &NewInboxEvent) -> Result<Insert, InboxStoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH stored AS (INSERT INTO inbox_events (id, scheme, signed_at, event_type, \
                 ordering_key, body, received_at_ms, status, next_attempt_at_ms, traceparent) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $7, $9) ON CONFLICT (id) DO NOTHING \
                 RETURNING 1) SELECT pg_notify($8, '') FROM stored",
            )
            .await
            .map_err(pg_err)?;
        let e = event;
        // One row (and one `NOTIFY`, sent on commit) when stored.
        let stored = client
            .query(
                &stmt,
                &[
                    &e.id,
                    &e.scheme.as_str(),
                    &e.signed_at,
                    &e.event_type,
                    &e.ordering_key,
                    &&e.body[..],
                    &e.received_at_ms,
                    &CHANNEL,
                    &e.traceparent.as_ref().map(TraceParent::as_str),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(if stored.is_empty() {
            Insert::Duplicate
        } else {
            Insert::Stored
        })
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<InboxEntry>, InboxStoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        claim_rows(&client, &self.owner, now_ms, limit, lease_until_ms).await
    }

    async fn settle(
        &self,
        id: &str,
        lease_until_ms: i64,
        settle: &Settle,
        now_ms: i64,
    ) -> Result<bool, InboxStoreError> {
        let client = self.client().await?;
        settle_row(&client, &self.owner, id, lease_until_ms, settle, now_ms).await
    }

    async fn replay(
        &self,
        selection: &ReplaySelection,
        now_ms: i64,
    ) -> Result<u64, InboxStoreError> {
        let client = self.client().await?;
        let n = replay_rows(&client, selection, now_ms).await?;
        if n > 0 {
            // After the replay committed: a lost `NOTIFY` only delays the
            // workers to their next poll.
            client
                .execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                .await
                .map_err(pg_err)?;
        }
        Ok(n)
    }

    async fn wait_for_work(&self, max: Duration) {
        match &self.listener {
            Some(listener) => listener.wait(max).await,
            None => tokio::time::sleep(max).await,
        }
    }

    async fn unprocessed(&self) -> Result<u64, InboxStoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM inbox_events WHERE status = 'pending'",
                &[],
            )
            .await
            .map_err(pg_err)?;
        let n: i64 = row.try_get(0).map_err(pg_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn depth(&self) -> Result<InboxDepth, InboxStoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT count(*), min(received_at_ms) FROM inbox_events WHERE status = 'pending'",
                &[],
            )
            .await
            .map_err(pg_err)?;
        let n: i64 = row.try_get(0).map_err(pg_err)?;
        let oldest: Option<i64> = row.try_get(1).map_err(pg_err)?;
        Ok(InboxDepth::new(u64::try_from(n).unwrap_or(0), oldest))
    }

    async fn counts(&self, now_ms: i64) -> Result<InboxCounts, InboxStoreError> {
        const SQL: &str = "SELECT \
               count(*) FILTER (WHERE status = 'pending' AND lease_until_ms > $1), \
               count(*) FILTER (WHERE status = 'pending' \
                 AND coalesce(lease_until_ms <= $1, true) AND attempts > 0), \
               count(*) FILTER (WHERE status = 'pending' \
                 AND coalesce(lease_until_ms <= $1, true) AND attempts = 0), \
               count(*) FILTER (WHERE status = 'done'), \
               count(*) FILTER (WHERE status = 'dead_lettered') \
             FROM inbox_events";
        let row = self
            .client()
            .await?
            .query_one(SQL, &[&now_ms])
            .await
            .map_err(pg_err)?;
        let n = |i: usize| -> Result<u64, InboxStoreError> {
            let n: i64 = row.try_get(i).map_err(pg_err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(InboxCounts {
            processing: n(0)?,
            retrying: n(1)?,
            received: n(2)?,
            done: n(3)?,
            dead_lettered: n(4)?,
        })
    }

    async fn event(&self, id: &str) -> Result<Option<InboxEntry>, InboxStoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM inbox_events WHERE id = $1");
        let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
        let row = client.query_opt(&stmt, &[&id]).await.map_err(pg_err)?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn events(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, InboxStoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM inbox_events WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::int8 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3"
        );
        let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let status = query.status.map(InboxStatus::as_str);
        let rows = client
            .query(&stmt, &[&status, &query.before_seq, &limit])
            .await
            .map_err(pg_err)?;
        entries(&rows)
    }

    async fn renew_lease(
        &self,
        id: &str,
        lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, InboxStoreError> {
        let (client, owner) = (self.client().await?, &*self.owner);
        let stmt = client
            .prepare_cached(
                "UPDATE inbox_events SET lease_until_ms = $4 \
                 WHERE id = $1 AND status = 'pending' AND lease_until_ms = $2 AND lease_owner = $3",
            )
            .await
            .map_err(pg_err)?;
        let changed = client
            .execute(&stmt, &[&id, &lease_until_ms, &owner, &new_lease_until_ms])
            .await
            .map_err(pg_err)?;
        Ok(changed == 1)
    }
}
