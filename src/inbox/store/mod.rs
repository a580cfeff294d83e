//! Where inbox events live: the [`InboxStore`] trait, [`MemoryInboxStore`]
//! for tests, [`SqliteInboxStore`], the embedded default, and (feature
//! `postgres`) `PgInboxStore`, one inbox shared by several receivers.
//!
//! The trait is the sender's delivery queue turned around and shaped the
//! same way for a shared store: workers [`claim_due`] a batch under a lease
//! (with PostgreSQL, `SELECT .. FOR UPDATE SKIP LOCKED`), and each attempt
//! ends with one [`settle`] fenced by that lease: a worker whose lease
//! expired (and whose event may have been claimed again) changes nothing.
//! While the handler runs, the worker [renews](InboxStore::renew_lease) the
//! lease, fenced the same way, so a handler may run longer than the lease.
//! An event claimed by a worker that died is claimed again once its lease
//! has expired, so processing is at-least-once.
//!
//! ## The claim rule for ordered events
//!
//! Every event carries its signed timestamp and an optional ordering key.
//! An event without a key is claimable when it is pending, due and holds no
//! live lease. An event *with* a key must also pass two tests against the
//! other pending events of its key:
//!
//! 1. none of them is in flight (holds a lease that has not expired), and
//! 2. none of them comes earlier in `(signed_at, seq)` order, an absent
//!    `signed_at` counting as earlier than any (so keys without signed
//!    timestamps go by arrival) — whether or not that earlier event is due.
//!
//! So at most one event per key is in flight, and a retrying event blocks
//! the later events of its key until it is done or dead-lettered. A claim
//! also marks each claimed keyed event [`stale`](InboxEntry::stale) when a
//! `done` event of its key has a later `signed_at`.
//!
//! With SQLite (one writer) and the memory store (one lock) claims are
//! serial. A store with concurrent claimers (PostgreSQL) must serialize
//! the claim transactions (for example with `pg_advisory_xact_lock`), since
//! a row lock cannot stop two claimers from each taking a different event of
//! one key when one of them was inserted meanwhile.
//!
//! [`claim_due`]: InboxStore::claim_due
//! [`settle`]: InboxStore::settle

mod counts;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use std::future::Future;

use bytes::Bytes;

use crate::scheme::SchemeName;
use crate::trace_context::TraceParent;
pub use counts::{InboxCounts, InboxState};

pub use memory::MemoryInboxStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgInboxStore;
pub use sqlite::SqliteInboxStore;

/// A verified webhook to store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewInboxEvent {
    /// The authenticated id ([`Verified::id`](crate::Verified::id)): unique
    /// in the store.
    pub id: String,
    /// The scheme that verified it; stored as its name
    /// ([`SchemeName::as_str`]).
    pub scheme: SchemeName,
    /// The signed timestamp, unix seconds, when the scheme carries one.
    pub signed_at: Option<i64>,
    /// The event type read from the body (`event` or `type` field), if any.
    pub event_type: Option<String>,
    /// Events with the same key are processed one at a time, in
    /// signed-timestamp order (see the [claim rule](self#the-claim-rule-for-ordered-events)).
    pub ordering_key: Option<String>,
    /// The body exactly as verified.
    pub body: Bytes,
    /// When the receiver stored it, unix ms; also when it is first due.
    pub received_at_ms: i64,
    /// The sender's trace: the request's well-formed `traceparent`
    /// ([`Verified::traceparent`](crate::Verified::traceparent)), so that
    /// processing continues that trace. Not signed: for joining traces only.
    pub traceparent: Option<TraceParent>,
}

impl NewInboxEvent {
    /// An event with this id and body, received at `received_at_ms`,
    /// verified by the [`native`](SchemeName::Native) scheme (set
    /// [`scheme`](Self::scheme) for another).
    pub fn new(id: impl Into<String>, body: impl Into<Bytes>, received_at_ms: i64) -> Self {
        Self {
            id: id.into(),
            scheme: SchemeName::Native,
            signed_at: None,
            event_type: None,
            ordering_key: None,
            body: body.into(),
            received_at_ms,
            traceparent: None,
        }
    }

    /// The stored record of this event: pending, due now, no attempts yet.
    pub(crate) fn pending(&self, seq: i64) -> InboxEntry {
        InboxEntry {
            seq,
            id: self.id.clone(),
            scheme: self.scheme,
            signed_at: self.signed_at,
            event_type: self.event_type.clone(),
            ordering_key: self.ordering_key.clone(),
            body: self.body.clone(),
            received_at_ms: self.received_at_ms,
            status: InboxStatus::Pending,
            attempts: 0,
            next_attempt_at_ms: Some(self.received_at_ms),
            lease_until_ms: None,
            last_error: None,
            finished_at_ms: None,
            stale: false,
            traceparent: self.traceparent.clone(),
        }
    }
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InboxStatus {
    /// Waiting for its first or next attempt, or being processed (then it
    /// holds a lease).
    Pending,
    /// The handler succeeded.
    Done,
    /// Retries were exhausted (or the body cannot be read as the handler's
    /// type): in the dead letter queue.
    DeadLettered,
}

impl InboxStatus {
    /// The status as stored (`pending`, `done`, `dead_lettered`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::DeadLettered => "dead_lettered",
        }
    }

    /// Reads a stored status.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "done" => Some(Self::Done),
            "dead_lettered" => Some(Self::DeadLettered),
            _ => None,
        }
    }
}

impl std::fmt::Display for InboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored event and its processing state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxEntry {
    /// Order of arrival in this store.
    pub seq: i64,
    /// The authenticated id.
    pub id: String,
    /// The scheme that verified it. A stored name this version does not
    /// know is a store error when the row is read.
    pub scheme: SchemeName,
    /// The signed timestamp, unix seconds.
    pub signed_at: Option<i64>,
    /// The event type read from the body.
    pub event_type: Option<String>,
    /// The ordering key.
    pub ordering_key: Option<String>,
    /// The body exactly as verified.
    pub body: Bytes,
    /// When it was stored, unix ms.
    pub received_at_ms: i64,
    /// Where it is.
    pub status: InboxStatus,
    /// Attempts started so far (a claim starts one).
    pub attempts: u32,
    /// When it is next due, unix ms (pending only).
    pub next_attempt_at_ms: Option<i64>,
    /// The lease of the worker processing it, unix ms.
    pub lease_until_ms: Option<i64>,
    /// The last failure, or the dead letter reason.
    pub last_error: Option<String>,
    /// When it was done or dead-lettered, unix ms.
    pub finished_at_ms: Option<i64>,
    /// Set by [`InboxStore::claim_due`] only: an event of the same ordering
    /// key with a later `signed_at` has been processed already (is `done`).
    /// `false` in history.
    pub stale: bool,
    /// The sender's trace, as stored with the event; a stored value that no
    /// longer parses reads as `None`.
    pub traceparent: Option<TraceParent>,
}

/// What [`InboxStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Insert {
    /// Stored, pending.
    Stored,
    /// An event with this id is already stored: nothing was written.
    Duplicate,
}

/// Where an attempt leaves an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settle {
    /// The handler succeeded.
    Done,
    /// The handler failed with this error; try again at this time, unix ms.
    RetryAt {
        /// When, unix ms.
        at_ms: i64,
        /// What went wrong.
        error: String,
    },
    /// Give up: into the dead letter queue with this reason.
    DeadLetter(String),
    /// Done without calling the handler (a stale event under
    /// [`StalePolicy::Skip`](crate::inbox::StalePolicy::Skip)); the reason
    /// is kept as its `last_error`, so history shows it was skipped.
    Skipped(String),
}

impl Settle {
    /// The event's new state when settled this way at `now_ms`: the rule
    /// every store applies.
    pub(crate) fn outcome(&self, now_ms: i64) -> Settled<'_> {
        let (status, next_attempt_at_ms, last_error) = match self {
            Self::Done => (InboxStatus::Done, None, None),
            Self::RetryAt { at_ms, error } => (InboxStatus::Pending, Some(*at_ms), Some(&**error)),
            Self::DeadLetter(reason) => (InboxStatus::DeadLettered, None, Some(&**reason)),
            Self::Skipped(reason) => (InboxStatus::Done, None, Some(&**reason)),
        };
        Settled {
            status,
            next_attempt_at_ms,
            last_error,
            // Finished unless it waits for another attempt.
            finished_at_ms: (status != InboxStatus::Pending).then_some(now_ms),
        }
    }
}

/// An event's new state after [`Settle::outcome`]; its lease is released.
pub(crate) struct Settled<'a> {
    pub(crate) status: InboxStatus,
    pub(crate) next_attempt_at_ms: Option<i64>,
    pub(crate) last_error: Option<&'a str>,
    pub(crate) finished_at_ms: Option<i64>,
}

/// How deep the inbox is: from [`InboxStore::depth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxDepth {
    /// Events pending (waiting or being processed).
    pub unprocessed: u64,
    /// When the longest-waiting of them was received, unix ms; `None` when
    /// none is pending.
    pub oldest_received_at_ms: Option<i64>,
}

impl InboxDepth {
    /// A depth of `unprocessed` events, the oldest received at
    /// `oldest_received_at_ms`.
    pub fn new(unprocessed: u64, oldest_received_at_ms: Option<i64>) -> Self {
        Self {
            unprocessed,
            oldest_received_at_ms,
        }
    }
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplaySelection {
    /// The event with this id.
    One(String),
    /// Every dead letter.
    All,
    /// Dead letters that were dead-lettered in `[since_ms, until_ms)`.
    Between {
        /// From, unix ms, inclusive.
        since_ms: i64,
        /// To, unix ms, exclusive.
        until_ms: i64,
    },
}

impl ReplaySelection {
    /// Whether `entry` is a dead letter this selection takes.
    pub(crate) fn takes(&self, entry: &InboxEntry) -> bool {
        if entry.status != InboxStatus::DeadLettered {
            return false;
        }
        let at = entry.finished_at_ms.unwrap_or(i64::MIN);
        match self {
            Self::One(id) => entry.id == *id,
            Self::All => true,
            Self::Between { since_ms, until_ms } => at >= *since_ms && at < *until_ms,
        }
    }
}

/// A page of history: events in one status (or any), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxQuery {
    /// Only events in this status.
    pub status: Option<InboxStatus>,
    /// Only events older than this `seq` (the next page).
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl Default for InboxQuery {
    fn default() -> Self {
        Self {
            status: None,
            before_seq: None,
            limit: 100,
        }
    }
}

impl InboxQuery {
    /// The newest `limit` events in `status` (any status for `None`).
    pub fn new(status: Option<InboxStatus>, limit: usize) -> Self {
        Self {
            status,
            before_seq: None,
            limit,
        }
    }

    /// Whether `entry` belongs to this query (before the limit).
    pub(crate) fn matches(&self, entry: &InboxEntry) -> bool {
        self.status.is_none_or(|s| s == entry.status)
            && self.before_seq.is_none_or(|b| entry.seq < b)
    }
}

/// A storage backend failed (I/O, a corrupt row, a lost connection).
#[derive(Debug, Clone, thiserror::Error)]
#[error("inbox store failed: {message}")]
pub struct InboxStoreError {
    message: String,
}

impl InboxStoreError {
    /// A store error with this explanation (never a secret).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<crate::durable::sqlite_engine::EngineError> for InboxStoreError {
    fn from(e: crate::durable::sqlite_engine::EngineError) -> Self {
        Self::new(e.0)
    }
}

/// Storage for an inbox. Implementations are cheap to clone (shared state).
///
/// Every method is one atomic step. The lease (`lease_until_ms`, unix ms)
/// fences a claim: [`renew_lease`](Self::renew_lease) and
/// [`settle`](Self::settle) apply only while the event is pending under
/// exactly that lease.
pub trait InboxStore: Clone + Send + Sync + 'static {
    /// Stores `event` as pending, due at once, unless an event with its id is
    /// stored already (then writes nothing and answers
    /// [`Insert::Duplicate`]). Returns once the write is durable.
    fn insert(
        &self,
        event: &NewInboxEvent,
    ) -> impl Future<Output = Result<Insert, InboxStoreError>> + Send;

    /// Claims up to `limit` pending events due at `now_ms` that no live lease
    /// holds, until `lease_until_ms`, and counts an attempt for each.
    /// Earliest due first. An event with an ordering key follows the
    /// [claim rule](self#the-claim-rule-for-ordered-events): claimable only
    /// when no other pending event of its key is in flight or comes earlier;
    /// each claimed keyed event has [`InboxEntry::stale`] set as that rule
    /// says.
    fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> impl Future<Output = Result<Vec<InboxEntry>, InboxStoreError>> + Send;

    /// Moves event `id`, pending under the lease `lease_until_ms`, on as
    /// `settle` says at `now_ms`, and releases the lease. `Ok(false)` when
    /// the event is no longer pending under that lease: nothing changed.
    fn settle(
        &self,
        id: &str,
        lease_until_ms: i64,
        settle: &Settle,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, InboxStoreError>> + Send;

    /// Extends the lease of event `id`, pending under the lease
    /// `lease_until_ms`, to `new_lease_until_ms`: what a worker does while
    /// its handler still runs, so that no other worker claims the event
    /// meanwhile. `Ok(false)` when the event is no longer pending under that
    /// lease (it expired and another worker claimed the event, or it was
    /// settled): nothing changed, and the lease stays lost.
    ///
    /// No default: a store that cannot renew would let every handler that
    /// outlives the lease run twice.
    fn renew_lease(
        &self,
        id: &str,
        lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> impl Future<Output = Result<bool, InboxStoreError>> + Send;

    /// Makes the selected dead letters pending again, due at `now_ms`, with
    /// their attempt count back at zero. Returns how many.
    fn replay(
        &self,
        selection: &ReplaySelection,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, InboxStoreError>> + Send;

    /// How many events are pending (waiting or being processed).
    fn unprocessed(&self) -> impl Future<Output = Result<u64, InboxStoreError>> + Send;

    /// How many events are pending and when the oldest of them was
    /// received: one cheap query, which the workers sample for the depth
    /// and age gauges.
    fn depth(&self) -> impl Future<Output = Result<InboxDepth, InboxStoreError>> + Send;

    /// The event with this id.
    fn event(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<InboxEntry>, InboxStoreError>> + Send;

    /// History: the events `query` selects, newest first.
    fn events(
        &self,
        query: &InboxQuery,
    ) -> impl Future<Output = Result<Vec<InboxEntry>, InboxStoreError>> + Send;

    /// Waits up to `max` for a sign that events may be waiting for a claim:
    /// what an idle worker does between polls. Returning early only costs a
    /// claim that finds nothing. The default sleeps `max` (the inbox wakes
    /// its own workers on each event it stores); a store shared by several
    /// receivers returns as soon as any of them stores or replays an event
    /// (`PgInboxStore`: `LISTEN/NOTIFY`).
    fn wait_for_work(&self, max: std::time::Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(max)
    }

    /// How many events are in each [`InboxState`] at `now_ms`. The default
    /// reads the whole history through [`events`](Self::events), a page at
    /// a time; a store that can count in one query should.
    fn counts(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<InboxCounts, InboxStoreError>> + Send {
        async move {
            let mut counts = InboxCounts::default();
            let mut query = InboxQuery::new(None, 1_000);
            loop {
                let page = self.events(&query).await?;
                for e in &page {
                    counts.add(e.state_at(now_ms));
                }
                match page.last() {
                    Some(last) if page.len() == query.limit => query.before_seq = Some(last.seq),
                    _ => return Ok(counts),
                }
            }
        }
    }
}
