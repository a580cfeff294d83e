//! The state every clone of a [`Sender`] shares with its workers: the
//! store, the settings, the HTTP client, the hand-over queue from
//! `publish` to the workers, and the destination cache.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use super::builder::Settings;
use super::circuit::Breaker;
use super::delivery::{Delivery, DeliveryAttempt};
use super::error::DeliveryStoreError;
use super::operational::{Operational, OperationalEvent, PostContext};
use super::ssrf::AddressPolicy;
use super::store::{DeliveryStore, NextStep, QueueStats};
use super::telemetry::{self, DestinationLabels};
use super::worker;
use crate::replay::Clock;

/// What [`SenderBuilder::on_attempt`](super::SenderBuilder::on_attempt)
/// calls after every attempt.
pub(super) type AttemptObserver = Arc<dyn Fn(&DeliveryAttempt, &NextStep) + Send + Sync>;

/// The destinations read from the store, with when they were read.
type DestinationCache = Option<(std::time::Instant, Arc<Vec<Arc<worker::Target>>>)>;

/// What every clone of a [`Sender`] and its workers share.
pub(crate) struct Inner<S> {
    pub(super) store: S,
    pub(super) config: Settings,
    pub(super) client: reqwest::Client,
    pub(super) policy: Arc<AddressPolicy>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) wake: Notify,
    /// Each destination's circuit breaker.
    pub(super) breaker: Breaker,
    /// Each destination's concurrency limit.
    pub(super) gates: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    pub(super) observer: Option<AttemptObserver>,
    /// The destinations as the workers need them (see
    /// [`all_destinations`](Self::all_destinations)).
    pub(super) destinations: Mutex<DestinationCache>,
    /// Attempt slots of the running workers.
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    /// Hands freshly published, already leased deliveries to the running
    /// workers (saves a claim).
    pub(super) direct: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Delivery>>>,
    /// Deliveries handed over through `direct` that no attempt has taken
    /// yet; bounded by `max_in_flight` so none waits long on its lease.
    pub(super) handed: std::sync::atomic::AtomicUsize,
    /// Which destinations get a metrics label of their own.
    pub(super) labels: DestinationLabels,
    /// Where operational events go.
    pub(super) operational: Operational,
}

impl<S> Inner<S> {
    /// Tells the operator about `events`: the hook, then the operational
    /// webhook (see [`operational`](super::operational)).
    pub(crate) fn report(&self, events: &[OperationalEvent]) {
        for event in events {
            self.operational.emit(event, || PostContext {
                client: self.client.clone(),
                policy: Arc::clone(&self.policy),
                clock: Arc::clone(&self.clock),
            });
        }
    }

    /// Gives back room in the hand-over queue: a delivery handed over was
    /// taken off it (or never arrived).
    pub(crate) fn release_handoff(&self, n: usize) {
        use std::sync::atomic::Ordering;
        let _ = self
            .handed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(n))
            });
    }
}

/// Room reserved in the workers' hand-over queue for one publish. Room not
/// used by a delivery actually handed over is given back on drop, so a
/// failed enqueue or a cancelled `publish` leaks none.
pub(super) struct Handoff<'a, S> {
    inner: &'a Inner<S>,
    unused: usize,
}

impl<'a, S> Handoff<'a, S> {
    /// Reserves room for `n` deliveries, if at most `max_in_flight` would
    /// then be waiting.
    pub(super) fn reserve(inner: &'a Inner<S>, n: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let limit = inner.config.max_in_flight;
        inner
            .handed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                queued.checked_add(n).filter(|&total| total <= limit)
            })
            .ok()
            .map(|_| Self { inner, unused: n })
    }

    /// One delivery was handed over: the workers release its room when
    /// they take it.
    pub(super) fn hand_over_one(&mut self) {
        self.unused = self.unused.saturating_sub(1);
    }
}

impl<S> Drop for Handoff<'_, S> {
    fn drop(&mut self) {
        if self.unused > 0 {
            self.inner.release_handoff(self.unused);
        }
    }
}

impl<S: DeliveryStore> Inner<S> {
    /// Every destination, read from the store at most once per
    /// `destination_cache` period (changes made through this sender are
    /// seen at once).
    pub(crate) async fn all_destinations(
        &self,
    ) -> Result<Arc<Vec<Arc<worker::Target>>>, DeliveryStoreError> {
        let ttl = self.config.destination_cache;
        if !ttl.is_zero() {
            let cached = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, list)) = cached.as_ref() {
                if at.elapsed() < ttl {
                    return Ok(Arc::clone(list));
                }
            }
        }
        let list: Arc<Vec<_>> = Arc::new(
            self.store
                .destinations()
                .await?
                .into_iter()
                .map(|d| Arc::new(worker::Target::new(d)))
                .collect(),
        );
        *self.destinations.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), Arc::clone(&list)));
        Ok(list)
    }

    /// One destination, from the cache when it is there.
    pub(crate) async fn find_destination(
        &self,
        id: &str,
    ) -> Result<Option<Arc<worker::Target>>, DeliveryStoreError> {
        if let Some(t) = self
            .all_destinations()
            .await?
            .iter()
            .find(|t| t.destination.id == id)
        {
            return Ok(Some(Arc::clone(t)));
        }
        Ok(self
            .store
            .destination(id)
            .await?
            .map(|d| Arc::new(worker::Target::new(d))))
    }

    pub(crate) fn forget_destinations(&self) {
        *self.destinations.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Publishes events and delivers them. Cheap to clone (shared state).
///
/// Build one with [`Sender::builder`].
pub struct Sender<S> {
    pub(super) inner: Arc<Inner<S>>,
}

impl<S> Clone for Sender<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Sender<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("settings", &self.inner.config)
            .field("address_policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// Keeps the workers running; stop them with [`shutdown`](Self::shutdown).
/// Dropping it stops them too.
#[derive(Debug)]
#[must_use = "the workers stop when the handle is dropped"]
pub struct SenderHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SenderHandle {
    /// Stops claiming new deliveries and waits for attempts in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl<S: DeliveryStore> Sender<S> {
    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The queue's depth and the due time of its oldest due delivery, now,
    /// over the whole store (what the
    /// [`QUEUE_PENDING`](super::metric_names::QUEUE_PENDING) and
    /// [`QUEUE_OLDEST_DUE_SECONDS`](super::metric_names::QUEUE_OLDEST_DUE_SECONDS)
    /// gauges show).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn queue_stats(&self) -> Result<QueueStats, DeliveryStoreError> {
        self.inner.store.queue_stats(self.now()).await
    }

    /// Starts the delivery workers on the current tokio runtime, and the
    /// task that samples the queue gauges (at once, then every
    /// [`queue_metrics_interval`](super::SenderBuilder::queue_metrics_interval)).
    pub fn start(&self) -> SenderHandle {
        let (stop, rx) = watch::channel(false);
        let (direct, inbox) = tokio::sync::mpsc::unbounded_channel();
        *self.inner.direct.lock().unwrap_or_else(|e| e.into_inner()) = Some(direct);
        let workers = worker::dispatch(Arc::clone(&self.inner), rx.clone(), inbox);
        let sampler = telemetry::sample_queue(Arc::clone(&self.inner), rx);
        let task = tokio::spawn(async move {
            tokio::join!(workers, sampler);
        });
        SenderHandle { stop, task }
    }

    pub(super) fn now(&self) -> i64 {
        self.inner.clock.now_millis()
    }
}
