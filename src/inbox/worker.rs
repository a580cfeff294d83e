//! The workers: claim due events under a lease, call the handler (renewing
//! the lease while it runs), and settle each attempt as the pure
//! [`next_step`] decides.

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use super::store::{InboxEntry, InboxStore, Settle};
use super::{Inbox, Shared, StalePolicy, metric_names};
use crate::durable::backoff::OutageBackoff;
use crate::durable::periodic::sample_every;
use crate::durable::retry::RetryPolicy;
use crate::event::Event;
use crate::trace_context::{TraceParent, continue_trace};

/// One event handed to the handler.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InboxEvent<E = Event> {
    /// The authenticated id: the same on every attempt, redelivery and
    /// replay. Key the handler's own writes by it to make them idempotent.
    pub id: String,
    /// This attempt's number, from 1 (from 1 again after a replay).
    pub attempt: u32,
    /// The signed timestamp, unix seconds, when the scheme carries one.
    pub signed_at: Option<i64>,
    /// When the receiver stored it, unix ms.
    pub received_at_ms: i64,
    /// The event type read from the body, if any.
    pub event_type: Option<String>,
    /// Older (by signed timestamp) than an event of its
    /// [ordering key](super::InboxBuilder::ordering_key) that was processed
    /// already: for example an `ingestion.started` that arrives after its
    /// `ingestion.completed` was handled.
    pub stale: bool,
    /// The sender's trace: the `traceparent` the request carried, stored
    /// with the event, the same on every attempt (a restart included). The
    /// attempt runs in an `inbox.process` span that continues it.
    pub traceparent: Option<TraceParent>,
    /// The body, deserialized.
    pub event: E,
}

impl<E> InboxEvent<E> {
    /// A first attempt at event `id`, for calling a handler in your own
    /// tests; the other fields are empty.
    ///
    /// ```
    /// use webhook_guard::inbox::InboxEvent;
    ///
    /// let event = InboxEvent::new("evt_1", serde_json::json!({"n": 1}));
    /// assert_eq!((event.id.as_str(), event.attempt), ("evt_1", 1));
    /// ```
    pub fn new(id: impl Into<String>, event: E) -> Self {
        Self {
            id: id.into(),
            attempt: 1,
            signed_at: None,
            received_at_ms: 0,
            event_type: None,
            stale: false,
            traceparent: None,
            event,
        }
    }

    /// Whether the event is stale: see [`InboxEvent::stale`](Self#structfield.stale).
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The sender's trace, if the request carried a well-formed
    /// `traceparent`: see [`InboxEvent::traceparent`](Self#structfield.traceparent).
    /// **Not signed**: for joining traces only.
    pub fn traceparent(&self) -> Option<&TraceParent> {
        self.traceparent.as_ref()
    }
}

/// The running workers of an [`Inbox`]; from [`Inbox::start`]. Dropping it
/// stops them at once (an event being processed is processed again once
/// its lease expires); [`shutdown`](Self::shutdown) lets them finish first.
#[derive(Debug)]
#[must_use = "dropping the workers stops them"]
pub struct InboxWorkers {
    run: Option<JoinHandle<()>>,
    stop: Arc<Stop>,
}

#[derive(Debug, Default)]
struct Stop {
    requested: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Completes once a stop is requested.
    async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.requested.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl InboxWorkers {
    /// Stops claiming events and waits for the handlers under way.
    pub async fn shutdown(mut self) {
        self.stop.requested.store(true, Ordering::SeqCst);
        self.stop.notify.notify_waiters();
        if let Some(run) = self.run.take() {
            let _ = run.await;
        }
    }
}

impl Drop for InboxWorkers {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            run.abort();
        }
    }
}

impl<S: InboxStore> Inbox<S> {
    /// Starts the workers: up to [`concurrency`](super::InboxBuilder::concurrency)
    /// events are processed at once by `handler`, which gets each event's
    /// body deserialized as `E` ([`Event`] or your own type). `Ok` marks the
    /// event done; an `Err` or a panic schedules a retry on the
    /// [`RetryPolicy`], then the dead letter queue. Beside them, the depth
    /// of the store is sampled at once, then every
    /// [`depth_sample_interval`](super::InboxBuilder::depth_sample_interval).
    ///
    /// Must be called inside a tokio runtime.
    pub fn start<E, H, Fut, Err>(&self, handler: H) -> InboxWorkers
    where
        E: DeserializeOwned + Send + 'static,
        H: Fn(InboxEvent<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Err>> + Send + 'static,
        Err: Display + 'static,
    {
        let stop = Arc::new(Stop::default());
        let (shared, stopping) = (Arc::clone(&self.shared), Arc::clone(&stop));
        let run = tokio::spawn(async move {
            let every = shared.config.depth_sample_interval;
            let sampler = sample_every(every, stopping.stopped(), || sample_depth(&shared));
            let workers = run_workers(
                Arc::clone(&shared),
                Arc::new(handler),
                Arc::clone(&stopping),
            );
            tokio::join!(workers, sampler);
        });
        InboxWorkers {
            run: Some(run),
            stop,
        }
    }
}

/// Claims due events while there is room and spawns one task per event,
/// until stopped; then waits for the tasks. While claims fail (the store is
/// down), it waits longer after each failure, from 100 ms up to 30 s,
/// instead of claiming on every poll.
async fn run_workers<S, E, H, Fut, Err>(shared: Arc<Shared<S>>, handler: Arc<H>, stop: Arc<Stop>)
where
    S: InboxStore,
    E: DeserializeOwned + Send + 'static,
    H: Fn(InboxEvent<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Err>> + Send + 'static,
    Err: Display + 'static,
{
    let slots = Arc::new(Semaphore::new(shared.config.concurrency));
    let mut tasks = JoinSet::new();
    let mut outage = OutageBackoff::new("inbox: claiming due events");
    while !stop.requested.load(Ordering::SeqCst) {
        while tasks.try_join_next().is_some() {}
        let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let free = slots.available_permits() + 1;
        let claimed = match claim(&shared, free, &mut outage).await {
            Ok(claimed) => claimed,
            Err(wait) => {
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.stopped() => {}
                }
                continue;
            }
        };
        if claimed.is_empty() {
            drop(first);
            idle(&shared, &stop).await;
            continue;
        }
        let mut permit = Some(first);
        for entry in claimed {
            let slot = match permit.take() {
                Some(p) => p,
                None => match Arc::clone(&slots).acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (shared, handler) = (Arc::clone(&shared), Arc::clone(&handler));
            let span = process_span(&entry);
            tasks.spawn(async move {
                process(&shared, &*handler, entry).instrument(span).await;
                drop(slot);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// The span one attempt runs in: the event's id, the attempt's number, and
/// the sender's trace when one is stored with the event (a child of the
/// sender's span with the `opentelemetry` feature).
fn process_span(entry: &InboxEntry) -> tracing::Span {
    let span = tracing::info_span!(
        "inbox.process",
        id = %entry.id,
        attempt = entry.attempts,
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    continue_trace(&span, entry.traceparent.as_ref());
    span
}

/// Reads the depth of the store: corrects the back-pressure count (other
/// processes may share the store; replays add to it) and sets the gauges.
async fn sample_depth<S: InboxStore>(shared: &Shared<S>) {
    match shared.store.depth().await {
        Ok(depth) => {
            shared.backlog.reconcile(depth.unprocessed);
            let now = shared.config.clock.now_millis();
            let age_ms = depth
                .oldest_received_at_ms
                .map_or(0, |at| now.saturating_sub(at).max(0));
            // Counts and ages far below 2^52: the conversions are exact.
            #[allow(clippy::cast_precision_loss)]
            {
                metrics::gauge!(metric_names::DEPTH).set(depth.unprocessed as f64);
                metrics::gauge!(metric_names::OLDEST_AGE_SECONDS).set(age_ms as f64 / 1000.0);
            }
        }
        Err(err) => tracing::warn!("inbox: reading the depth of the store failed: {err}"),
    }
}

/// Claims up to `limit` due events. When the store fails: how long to wait
/// before claiming again, from `outage` (which logs the failure).
async fn claim<S: InboxStore>(
    shared: &Shared<S>,
    limit: usize,
    outage: &mut OutageBackoff,
) -> Result<Vec<InboxEntry>, Duration> {
    let now = shared.config.clock.now_millis();
    match shared
        .store
        .claim_due(now, limit, shared.config.lease_until(now))
        .await
    {
        Ok(claimed) => {
            outage.succeeded();
            Ok(claimed)
        }
        Err(err) => Err(outage.failed(&err)),
    }
}

/// Waits for a new event (stored here, or as the store tells), the poll
/// interval, or a stop.
async fn idle<S: InboxStore>(shared: &Shared<S>, stop: &Stop) {
    tokio::select! {
        () = shared.wake.notified() => {}
        () = stop.stopped() => {}
        () = shared.store.wait_for_work(shared.config.poll_interval) => {}
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The handler returned `Ok`.
    Processed,
    /// The handler returned this error, or panicked.
    Failed(String),
    /// The body cannot be read as the handler's type: no retry can help.
    Unreadable(String),
}

/// What follows attempt number `attempt` (1-based) that came to `outcome`:
/// no I/O, no clock.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Done,
    RetryAfter(Duration, String),
    DeadLetter(String),
}

fn next_step(outcome: &Outcome, attempt: u32, policy: &RetryPolicy) -> Step {
    match outcome {
        Outcome::Processed => Step::Done,
        Outcome::Unreadable(error) => Step::DeadLetter(error.clone()),
        Outcome::Failed(error) => match policy.delay_after(attempt, None) {
            Some(wait) => Step::RetryAfter(wait, error.clone()),
            None => Step::DeadLetter(format!("gave up after {attempt} attempt(s): {error}")),
        },
    }
}

/// Runs the handler on `entry` and settles the attempt.
async fn process<S, E, H, Fut, Err>(shared: &Shared<S>, handler: &H, entry: InboxEntry)
where
    S: InboxStore,
    E: DeserializeOwned,
    H: Fn(InboxEvent<E>) -> Fut,
    Fut: Future<Output = Result<(), Err>>,
    Err: Display + 'static,
{
    let Some(lease) = entry.lease_until_ms else {
        return;
    };
    // The lease the event is held under: renewed while the handler runs.
    let held = AtomicI64::new(lease);
    let settle = if entry.stale && shared.config.stale == StalePolicy::Skip {
        tracing::info!(id = %entry.id, key = ?entry.ordering_key, "inbox event skipped: stale");
        Settle::Skipped(
            "skipped: stale, a later event of its ordering key was processed already".into(),
        )
    } else {
        record_handler_start(shared, &entry);
        let outcome = holding_lease(shared, &entry, &held, call_handler(handler, &entry)).await;
        settle_for(
            shared,
            &entry,
            next_step(&outcome, entry.attempts, &shared.config.retry),
        )
    };
    let now = shared.config.clock.now_millis();
    let lease = held.load(Ordering::SeqCst);
    match shared.store.settle(&entry.id, lease, &settle, now).await {
        Ok(true) => {
            if !matches!(settle, Settle::RetryAt { .. }) {
                shared.backlog.drained();
                if entry.ordering_key.is_some() {
                    // The next event of its key may be claimed now.
                    shared.wake.notify_one();
                }
            }
            count_settled(&settle);
        }
        Ok(false) => tracing::warn!(
            id = %entry.id,
            "inbox: the lease expired before the attempt was recorded (it could not be renewed in time); \
             the event may be processed again"
        ),
        Err(err) => tracing::error!(
            id = %entry.id,
            "inbox: recording the attempt failed; the event is processed again once its lease expires: {err}"
        ),
    }
}

/// Runs `work` (the handler) while renewing the lease in `held` every
/// third of the lease, so that no other worker claims the event meanwhile;
/// `held` ends as the lease the event is held under. A renewal under way
/// when `work` ends is finished first, so `held` matches the store.
async fn holding_lease<S: InboxStore, T>(
    shared: &Shared<S>,
    entry: &InboxEntry,
    held: &AtomicI64,
    work: impl Future<Output = T>,
) -> T {
    let finished = Notify::new();
    let work = async {
        let out = work.await;
        finished.notify_one();
        out
    };
    let (out, ()) = tokio::join!(work, renew_lease_until(shared, &entry.id, held, &finished));
    out
}

/// Renews the lease in `held` every third of the lease until `finished`
/// (never in the middle of a renewal). A renewal that finds the lease lost
/// stops renewing; one that fails is tried again at the next tick.
async fn renew_lease_until<S: InboxStore>(
    shared: &Shared<S>,
    id: &str,
    held: &AtomicI64,
    finished: &Notify,
) {
    let every = (shared.config.lease / 3).max(Duration::from_millis(1));
    loop {
        tokio::select! {
            biased;
            () = finished.notified() => return,
            () = tokio::time::sleep(every) => {}
        }
        let current = held.load(Ordering::SeqCst);
        let until = shared.config.lease_until(shared.config.clock.now_millis());
        match shared.store.renew_lease(id, current, until).await {
            Ok(true) => held.store(until, Ordering::SeqCst),
            Ok(false) => {
                tracing::warn!(
                    id = %id,
                    "inbox: the lease was lost while the handler ran (renewing it came too late); \
                     another worker may process the event too"
                );
                return;
            }
            Err(err) => tracing::warn!(
                id = %id,
                "inbox: renewing the lease failed, trying again in {every:?}: {err}"
            ),
        }
    }
}

/// Records the receipt-to-handler-start time of a first attempt (a replay
/// or a retry is due later on purpose: it is not recorded).
fn record_handler_start<S>(shared: &Shared<S>, entry: &InboxEntry) {
    let first = entry.attempts == 1 && entry.next_attempt_at_ms == Some(entry.received_at_ms);
    if first {
        let waited_ms = shared
            .config
            .clock
            .now_millis()
            .saturating_sub(entry.received_at_ms)
            .max(0);
        // Far below 2^52 ms: exact.
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!(metric_names::HANDLER_START_SECONDS).record(waited_ms as f64 / 1000.0);
    }
}

/// Counts a recorded attempt by where it left the event.
fn count_settled(settle: &Settle) {
    let name = match settle {
        Settle::Done | Settle::Skipped(_) => metric_names::PROCESSED,
        Settle::RetryAt { .. } => metric_names::FAILED,
        Settle::DeadLetter(_) => metric_names::DEAD_LETTERED,
    };
    metrics::counter!(name).increment(1);
}

/// The settle of an attempt that came to `step`.
fn settle_for<S>(shared: &Shared<S>, entry: &InboxEntry, step: Step) -> Settle {
    let now = shared.config.clock.now_millis();
    match step {
        Step::Done => Settle::Done,
        Step::RetryAfter(wait, error) => {
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            tracing::info!(id = %entry.id, attempt = entry.attempts, retry_in_ms = wait_ms, "inbox handler failed, will retry: {error}");
            Settle::RetryAt {
                at_ms: now.saturating_add(wait_ms),
                error,
            }
        }
        Step::DeadLetter(reason) => {
            tracing::warn!(id = %entry.id, attempt = entry.attempts, "inbox event dead-lettered: {reason}");
            Settle::DeadLetter(reason)
        }
    }
}

/// Deserializes the body and runs the handler, a panic caught as a failure.
async fn call_handler<E, H, Fut, Err>(handler: &H, entry: &InboxEntry) -> Outcome
where
    E: DeserializeOwned,
    H: Fn(InboxEvent<E>) -> Fut,
    Fut: Future<Output = Result<(), Err>>,
    Err: Display + 'static,
{
    let event: E = match serde_json::from_slice(&entry.body) {
        Ok(event) => event,
        Err(e) => {
            return Outcome::Unreadable(format!(
                "the body does not deserialize as the handler's type: {e}"
            ));
        }
    };
    let event = InboxEvent {
        id: entry.id.clone(),
        attempt: entry.attempts,
        signed_at: entry.signed_at,
        received_at_ms: entry.received_at_ms,
        event_type: entry.event_type.clone(),
        stale: entry.stale,
        traceparent: entry.traceparent.clone(),
        event,
    };
    // The call itself runs inside `catch_unwind` too: a handler may panic
    // before it returns its future.
    match AssertUnwindSafe(async move { handler(event).await })
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Outcome::Processed,
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(panic) => Outcome::Failed(format!("the handler panicked: {}", panic_message(&*panic))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_step_retries_on_the_policy_then_dead_letters() {
        let second = Duration::from_secs(1);
        let policy = RetryPolicy::new([second, 2 * second]).jitter(0.0).unwrap();
        let failed = Outcome::Failed("boom".into());
        assert_eq!(next_step(&Outcome::Processed, 1, &policy), Step::Done);
        assert_eq!(
            next_step(&failed, 1, &policy),
            Step::RetryAfter(second, "boom".into())
        );
        assert_eq!(
            next_step(&failed, 2, &policy),
            Step::RetryAfter(2 * second, "boom".into())
        );
        assert_eq!(
            next_step(&failed, 3, &policy),
            Step::DeadLetter("gave up after 3 attempt(s): boom".into())
        );
        assert_eq!(
            next_step(&Outcome::Unreadable("bad".into()), 1, &policy),
            Step::DeadLetter("bad".into())
        );
    }
}
