//! The sender: sign, deliver, retry, dead-letter and replay outgoing
//! webhooks, with nothing lost across restarts.
//!
//! [`Sender::publish`] stores one [`Delivery`] per matching [`Destination`]
//! before it returns (an outbox). Workers started with [`Sender::start`]
//! then sign each delivery with the same [`Scheme`](crate::Scheme) core that
//! [`VerifyLayer`](crate::VerifyLayer) verifies with, POST it (connect
//! timeout 5 s, total 15 s, redirects never followed) and record every
//! attempt. Only a 2xx counts as delivered. Failures are retried on the
//! [`RetryPolicy`] (1, 5 and 15 minutes by default, `Retry-After` honoured);
//! a `410 Gone` disables the destination; what still fails lands in the dead
//! letter queue, from where an operator can replay it.
//!
//! ```
//! use std::time::Duration;
//! use webhook_guard::sender::{
//!     AddressPolicy, DeliveryStatus, MemoryStore, NewDestination, OutgoingEvent, Sender,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sender = Sender::builder(MemoryStore::new())
//!     // Production senders refuse internal addresses; this example has no
//!     // network, so it allows the loopback address it will fail to reach.
//!     .address_policy(AddressPolicy::new().allow("127.0.0.1")?)
//!     .build()?;
//! let dest = sender
//!     .add_destination(NewDestination::new("http://127.0.0.1:9/hooks", "shared-secret-of-24-bytes+"))
//!     .await?;
//!
//! let event = OutgoingEvent::new("kpi.alert", &serde_json::json!({"kpi": "churn"}))?;
//! let deliveries = sender.publish(event).await?;
//! assert_eq!(deliveries.len(), 1);
//! assert_eq!(deliveries[0].destination_id, dest.id);
//! assert_eq!(deliveries[0].status, DeliveryStatus::Pending);
//!
//! // Internal addresses are refused at registration unless allowed.
//! let strict = Sender::builder(MemoryStore::new()).build()?;
//! assert!(strict.add_destination(NewDestination::new("http://10.0.0.1/", "shared-secret-of-24-bytes+")).await.is_err());
//! # Ok(()) }
//! ```
//!
//! ## Storage
//!
//! [`MemoryStore`] keeps everything in memory (tests). With the `sqlite`
//! feature, `SqliteStore` keeps destinations, events, deliveries and attempts
//! in one SQLite file (WAL mode): after a crash or a restart every pending
//! delivery resumes and every scheduled retry keeps its due time. A delivery
//! claimed by a worker that died becomes due again when its lease expires,
//! so a receiver may see an event twice; it deduplicates on the event id,
//! which every attempt and replay carries unchanged.
//!
//! ## Metrics and traces
//!
//! Through the [`metrics`] facade: the counters
//! [`DELIVERED`](metric_names::DELIVERED), [`RETRIED`](metric_names::RETRIED)
//! and [`DEAD_LETTERED`](metric_names::DEAD_LETTERED), and the histograms
//! [`ATTEMPT_SECONDS`](metric_names::ATTEMPT_SECONDS) and
//! [`DELIVERY_SECONDS`](metric_names::DELIVERY_SECONDS). Each delivery runs
//! in a `webhook.delivery` span and each attempt in a `webhook.attempt` span.

mod clock;
#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub mod console;
mod delivery;
mod destination;
mod error;
mod retry;
mod ssrf;
pub mod store;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

pub use clock::ManualClock;
#[allow(deprecated)]
pub use clock::{MillisClock, SystemMillisClock};
pub use delivery::{
    DEFAULT_PAGE_SIZE, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, ErrorClass,
    MAX_EVENT_TYPE_LEN, MAX_PAGE_SIZE, OutgoingEvent, Page,
};
pub use destination::{Destination, EventFilter, NewDestination};
pub use error::{DeliveryStoreError, SenderError};

/// The former name of [`DeliveryStoreError`].
#[deprecated(
    note = "renamed to `DeliveryStoreError`, to tell it from `idempotency::IdempotencyStoreError`"
)]
pub type StoreError = DeliveryStoreError;
pub use retry::RetryPolicy;
pub use ssrf::{AddressPolicy, ForbiddenAddress};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PgStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use store::SecretSeal;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{DeliveryStore, MemoryStore, NewDelivery, NextStep};

use crate::error::ConfigError;
use crate::replay::{Clock, SystemClock};
use crate::secret::Secret;

/// Names of the metrics the sender emits.
pub mod metric_names {
    /// Counter: deliveries that got a 2xx.
    pub const DELIVERED: &str = "webhook_guard_sender_delivered_total";
    /// Counter: failed attempts that were scheduled for a retry.
    pub const RETRIED: &str = "webhook_guard_sender_retried_total";
    /// Counter: deliveries moved to the dead letter queue.
    pub const DEAD_LETTERED: &str = "webhook_guard_sender_dead_lettered_total";
    /// Histogram: duration of each HTTP attempt, seconds.
    pub const ATTEMPT_SECONDS: &str = "webhook_guard_sender_attempt_duration_seconds";
    /// Histogram: publish-to-delivered latency of delivered deliveries, seconds.
    pub const DELIVERY_SECONDS: &str = "webhook_guard_sender_delivery_latency_seconds";
}

/// The event type of [`Sender::send_test_event`].
pub const TEST_EVENT_TYPE: &str = "webhook.test";

type AttemptObserver = Arc<dyn Fn(&DeliveryAttempt, &NextStep) + Send + Sync>;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    retry: RetryPolicy,
    per_destination: usize,
    max_in_flight: usize,
    batch_size: usize,
    poll_interval: Duration,
    lease_ms: i64,
    busy_delay_ms: i64,
    breaker_threshold: u32,
    breaker_cooldown_ms: i64,
    response_body_limit: usize,
    destination_cache: Duration,
}

type DestinationCache = Option<(std::time::Instant, Arc<Vec<Arc<worker::Target>>>)>;

pub(crate) struct Inner<S> {
    store: S,
    config: Settings,
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    clock: Arc<dyn Clock>,
    wake: Notify,
    circuits: Mutex<std::collections::HashMap<String, worker::Circuit>>,
    gates: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    observer: Option<AttemptObserver>,
    destinations: Mutex<DestinationCache>,
    /// Attempt slots of the running workers.
    slots: Arc<tokio::sync::Semaphore>,
    /// Hands freshly published, already leased deliveries to the running
    /// workers (saves a claim).
    direct: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Delivery>>>,
    /// Deliveries handed over through `direct` that no attempt has taken
    /// yet; bounded by `max_in_flight` so none waits long on its lease.
    handed: std::sync::atomic::AtomicUsize,
}

impl<S> Inner<S> {
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
struct Handoff<'a, S> {
    inner: &'a Inner<S>,
    unused: usize,
}

impl<'a, S> Handoff<'a, S> {
    /// Reserves room for `n` deliveries, if at most `max_in_flight` would
    /// then be waiting.
    fn reserve(inner: &'a Inner<S>, n: usize) -> Option<Self> {
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
    fn hand_over_one(&mut self) {
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
    inner: Arc<Inner<S>>,
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

/// Configures a [`Sender`].
#[must_use]
pub struct SenderBuilder<S> {
    store: S,
    connect_timeout: Duration,
    timeout: Duration,
    lease: Option<Duration>,
    policy: AddressPolicy,
    clock: Arc<dyn Clock>,
    observer: Option<AttemptObserver>,
    user_agent: String,
    config: Settings,
}

impl<S> std::fmt::Debug for SenderBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderBuilder")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("settings", &self.config)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<S: DeliveryStore> SenderBuilder<S> {
    /// Connect timeout per attempt (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Total time per attempt, connect to last body byte (default 15 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The retry schedule (default 1, 5, 15 minutes with jitter).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Which addresses may be connected to (default: public ones only).
    pub fn address_policy(mut self, policy: AddressPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Most attempts in flight to one destination (default 4), so a slow
    /// endpoint cannot take every worker.
    pub fn per_destination_concurrency(mut self, n: usize) -> Self {
        self.config.per_destination = n;
        self
    }

    /// Most HTTP attempts in flight in total (default 64). An attempt's slot
    /// is free again when its HTTP exchange ends; recording the outcome
    /// happens beside the next attempt. Up to as many again may wait,
    /// claimed or handed over by `publish`, for a free slot.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// How often the store is polled for due deliveries when idle (default
    /// 1 s; a publish wakes the workers at once).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.config.poll_interval = d;
        self
    }

    /// How long a claimed delivery stays leased to this sender (default:
    /// connect timeout + total timeout + 30 s). A sender that dies mid-flight
    /// holds its deliveries this long.
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = Some(d);
        self
    }

    /// Consecutive failures after which a destination is paused (default 5),
    /// and for how long before one probe is let through (default 30 s).
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.config.breaker_threshold = failures;
        self.config.breaker_cooldown_ms = millis(cooldown);
        self
    }

    /// How long a delivery waits when its destination is at its concurrency
    /// limit (default 100 ms).
    pub fn busy_delay(mut self, d: Duration) -> Self {
        self.config.busy_delay_ms = millis(d);
        self
    }

    /// How long the destination list is cached between store reads (default
    /// 1 s; zero reads the store every time). Changes made through this
    /// sender apply at once; changes made by another process sharing the
    /// store apply within this period.
    pub fn destination_cache(mut self, ttl: Duration) -> Self {
        self.config.destination_cache = ttl;
        self
    }

    /// How many bytes of each answer's body are kept (default 1 KiB).
    pub fn response_body_limit(mut self, bytes: usize) -> Self {
        self.config.response_body_limit = bytes;
        self
    }

    /// The time source, read in milliseconds (default the system clock):
    /// [`ManualClock`] in tests, or any [`Clock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Calls `f` after every attempt, with the attempt and what happens next.
    pub fn on_attempt(
        mut self,
        f: impl Fn(&DeliveryAttempt, &NextStep) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// The `User-Agent` header (default `webhook-guard/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Builds the sender.
    ///
    /// # Errors
    ///
    /// [`SenderError::Config`] for a zero limit or timeout, or an HTTP
    /// client that cannot be built.
    pub fn build(self) -> Result<Sender<S>, SenderError> {
        let invalid = |setting: &'static str, reason: &str| {
            SenderError::Config(ConfigError::InvalidSetting {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.config.per_destination == 0 || self.config.max_in_flight == 0 {
            return Err(invalid("concurrency", "limits must be at least 1"));
        }
        if self.connect_timeout.is_zero() || self.timeout.is_zero() {
            return Err(invalid("timeout", "timeouts must be longer than zero"));
        }
        if self.config.breaker_threshold == 0 {
            return Err(invalid(
                "circuit breaker",
                "the failure count must be at least 1",
            ));
        }
        let policy = Arc::new(self.policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            // A proxy would connect on our behalf, past the SSRF guard.
            .no_proxy()
            .dns_resolver(Arc::new(ssrf::GuardedResolver {
                policy: Arc::clone(&policy),
            }))
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| invalid("http client", &e.to_string()))?;
        let mut config = self.config;
        config.lease_ms = millis(
            self.lease
                .unwrap_or(self.connect_timeout + self.timeout + Duration::from_secs(30)),
        );
        let max_in_flight = config.max_in_flight;
        Ok(Sender {
            inner: Arc::new(Inner {
                store: self.store,
                config,
                client,
                policy,
                clock: self.clock,
                wake: Notify::new(),
                circuits: Mutex::default(),
                gates: Mutex::default(),
                observer: self.observer,
                destinations: Mutex::new(None),
                slots: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
                direct: Mutex::new(None),
                handed: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }
}

/// One delivery with every attempt made for it, as
/// [`Sender::delivery_history`] returns it and the operator console's
/// `GET /api/deliveries/{id}` answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeliveryHistory {
    /// The delivery: one event to one destination, with its current state.
    pub delivery: Delivery,
    /// Its attempts, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// What [`Sender::replay_dead_letters`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReplaySummary {
    /// The new deliveries, one per replayed dead letter.
    pub replayed: Vec<Delivery>,
    /// Dead letters left as they were, with the reason.
    pub skipped: Vec<SkippedReplay>,
}

/// A dead letter that [`Sender::replay_dead_letters`] did not replay.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SkippedReplay {
    /// The dead-lettered delivery.
    pub delivery_id: String,
    /// Why it was skipped.
    pub reason: String,
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
    /// Starts configuring a sender over `store`.
    pub fn builder(store: S) -> SenderBuilder<S> {
        SenderBuilder {
            store,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            lease: None,
            policy: AddressPolicy::new(),
            clock: Arc::new(SystemClock),
            observer: None,
            user_agent: concat!("webhook-guard/", env!("CARGO_PKG_VERSION")).to_owned(),
            config: Settings {
                retry: RetryPolicy::default(),
                per_destination: 4,
                max_in_flight: 64,
                batch_size: 64,
                poll_interval: Duration::from_secs(1),
                lease_ms: 0,
                busy_delay_ms: 100,
                breaker_threshold: 5,
                breaker_cooldown_ms: 30_000,
                response_body_limit: 1024,
                destination_cache: Duration::from_secs(1),
            },
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Starts the delivery workers on the current tokio runtime.
    pub fn start(&self) -> SenderHandle {
        let (stop, rx) = watch::channel(false);
        let (direct, inbox) = tokio::sync::mpsc::unbounded_channel();
        *self.inner.direct.lock().unwrap_or_else(|e| e.into_inner()) = Some(direct);
        let task = tokio::spawn(worker::dispatch(Arc::clone(&self.inner), rx, inbox));
        SenderHandle { stop, task }
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    /// Checks a URL: http(s), a host, no credentials, and an address the
    /// SSRF guard allows (resolving host names now; each connection is
    /// checked again).
    async fn check_url(&self, url: &str) -> Result<(), SenderError> {
        let invalid = |reason: String| SenderError::InvalidDestination { reason };
        let parsed =
            reqwest::Url::parse(url).map_err(|e| invalid(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the URL scheme must be http or https, not `{}`",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "the URL must not carry credentials (user:password@); they would be sent in clear to every attempt's logs".into(),
            ));
        }
        let Some(host) = parsed.host_str() else {
            return Err(invalid("the URL has no host".into()));
        };
        let refused = || SenderError::ForbiddenAddress {
            url: format!("{}://{}", parsed.scheme(), host),
        };
        if let Some(ip) = ssrf::literal_ip(&parsed) {
            return self.inner.policy.check(ip).map_err(|why| {
                ssrf::log_refused_literal(&why);
                refused()
            });
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        match ssrf::resolve_allowed(&self.inner.policy, host, port).await {
            Ok(_) => Ok(()),
            Err(ssrf::DestinationRefused) => Err(refused()),
        }
    }

    /// Registers a destination.
    ///
    /// # Errors
    ///
    /// [`SenderError::InvalidDestination`] for a URL that is not http(s) or
    /// carries credentials, an empty secret or a bad id;
    /// [`SenderError::ForbiddenAddress`] when the host resolves to no address
    /// the SSRF guard allows (only refused ones, or none at all: the error
    /// does not say which, the log does).
    /// [`ConfigError::InvalidSecret`] for a secret the scheme cannot read
    /// ([`Scheme::read_secret`](crate::Scheme::read_secret)) or one under
    /// [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes.
    pub async fn add_destination(&self, new: NewDestination) -> Result<Destination, SenderError> {
        self.check_url(&new.url).await?;
        let secrets = new
            .secrets
            .into_iter()
            .map(|s| destination::signing_key(&new.scheme, s))
            .collect::<Result<Vec<_>, _>>()?;
        let id = match new.id {
            Some(id) => {
                crate::scheme::validate_id(id.as_bytes()).map_err(|reason| {
                    SenderError::InvalidDestination {
                        reason: format!("invalid destination id: {reason}"),
                    }
                })?;
                id
            }
            None => format!("dst_{}", uuid::Uuid::now_v7().simple()),
        };
        let destination = Destination {
            id,
            url: new.url,
            scheme: new.scheme.name().as_str().to_owned(),
            events: new.events,
            enabled: true,
            disabled_reason: None,
            created_at_ms: self.now(),
            secrets,
        };
        self.inner.store.save_destination(&destination).await?;
        self.inner.forget_destinations();
        Ok(destination)
    }

    /// The destination with this id.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn destination(&self, id: &str) -> Result<Destination, SenderError> {
        self.inner
            .store
            .destination(id)
            .await?
            .ok_or_else(|| SenderError::DestinationNotFound { id: id.to_owned() })
    }

    /// Every destination.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn destinations(&self) -> Result<Vec<Destination>, SenderError> {
        Ok(self.inner.store.destinations().await?)
    }

    /// Whether deliveries to this destination are paused by the circuit
    /// breaker (in this process) right now.
    pub fn is_paused(&self, destination_id: &str) -> bool {
        self.inner.circuit_open(destination_id, self.now())
    }

    async fn update_destination(
        &self,
        id: &str,
        change: impl FnOnce(&mut Destination),
    ) -> Result<Destination, SenderError> {
        let mut d = self.destination(id).await?;
        change(&mut d);
        self.inner.store.save_destination(&d).await?;
        self.inner.forget_destinations();
        self.inner.wake.notify_one();
        Ok(d)
    }

    /// Stops deliveries to a destination; its pending ones wait.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn disable_destination(
        &self,
        id: &str,
        reason: impl Into<String>,
    ) -> Result<Destination, SenderError> {
        let reason = reason.into();
        self.update_destination(id, |d| {
            d.enabled = false;
            d.disabled_reason = Some(reason);
        })
        .await
    }

    /// Resumes deliveries to a destination (and closes its circuit).
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn enable_destination(&self, id: &str) -> Result<Destination, SenderError> {
        worker::reset_circuit(&self.inner, id);
        self.update_destination(id, |d| {
            d.enabled = true;
            d.disabled_reason = None;
        })
        .await
    }

    /// Changes which events a destination receives. The next
    /// [`publish`](Self::publish) uses the new filter; deliveries already
    /// created stay as they are.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn set_event_filter(
        &self,
        id: &str,
        events: EventFilter,
    ) -> Result<Destination, SenderError> {
        self.update_destination(id, |d| d.events = events).await
    }

    /// Deletes a destination; its pending deliveries are dead-lettered.
    /// Its delivery history stays.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn delete_destination(&self, id: &str) -> Result<(), SenderError> {
        let existed = self
            .inner
            .store
            .delete_destination(id, self.now(), "the destination was deleted")
            .await?;
        self.inner.forget_destinations();
        if existed {
            Ok(())
        } else {
            Err(SenderError::DestinationNotFound { id: id.to_owned() })
        }
    }

    /// Rotates a destination's secret: `new` signs from now on, and the
    /// current secrets keep signing alongside it for `overlap` (both
    /// signatures travel in one header), so receivers can switch at any
    /// moment in between. Secrets already expired are dropped. `new` is read
    /// the way the destination's scheme reads text, as in
    /// [`add_destination`](Self::add_destination).
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], a secret the scheme cannot read
    /// or under [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes
    /// ([`ConfigError::InvalidSecret`]), or a store failure.
    pub async fn rotate_secret(
        &self,
        id: &str,
        new: impl Into<Secret>,
        overlap: Duration,
    ) -> Result<Destination, SenderError> {
        let current = self.destination(id).await?;
        let new =
            destination::signing_key(&crate::Scheme::from_name(&current.scheme)?, new.into())?;
        let now_s = self.now().div_euclid(1000);
        let until = now_s.saturating_add(i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX));
        self.update_destination(id, move |d| {
            let old = std::mem::take(&mut d.secrets);
            d.secrets.push(new);
            for s in old {
                let expiry = s.expiry().map_or(until, |t| t.min(until));
                if expiry > now_s {
                    d.secrets.push(s.expires_at(expiry));
                }
            }
        })
        .await
    }

    /// Stores the event and one delivery per enabled destination whose
    /// filter matches, then wakes the workers. The event is in the store
    /// when this returns.
    ///
    /// # Errors
    ///
    /// [`SenderError::DuplicateEvent`] when the id was published before, or a
    /// store failure.
    pub async fn publish(
        &self,
        event: impl Into<OutgoingEvent>,
    ) -> Result<Vec<Delivery>, SenderError> {
        let event = event.into();
        let now = self.now();
        let mut news: Vec<NewDelivery> = self
            .inner
            .all_destinations()
            .await?
            .iter()
            .map(|t| &t.destination)
            .filter(|d| d.enabled && d.events.matches(event.event_type()))
            .map(|d| NewDelivery::new(event.id(), &d.id, now))
            .collect();
        // With workers running here and room in their queue (at most one
        // round of `max_in_flight` waiting for a slot), lease the deliveries
        // in the same transaction and hand them over: no claim needed.
        // Should they sit past the lease, a claim picks them up again.
        let direct = self
            .inner
            .direct
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|tx| !tx.is_closed())
            .and_then(|tx| Handoff::reserve(&self.inner, news.len()).map(|room| (tx, room)));
        if direct.is_some() {
            let lease = now.saturating_add(self.inner.config.lease_ms);
            for n in &mut news {
                n.lease_until_ms = Some(lease);
            }
        }
        // Should this future be dropped or the enqueue fail, the reserved
        // room is given back when `direct` is dropped.
        let out = self.inner.store.enqueue(&event, now, &news).await?;
        match direct {
            Some((tx, mut room)) => {
                for d in &out {
                    // A failed send means the workers stopped: the lease
                    // expires and a claim (here or after a restart) takes it.
                    if tx.send(d.clone()).is_ok() {
                        room.hand_over_one();
                    }
                }
            }
            None if !out.is_empty() => self.inner.wake.notify_one(),
            None => {}
        }
        Ok(out)
    }

    /// Sends a `webhook.test` event to one destination, whatever its filter.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`];
    /// [`SenderError::DestinationDisabled`] for a disabled destination; a
    /// store failure.
    pub async fn send_test_event(&self, destination_id: &str) -> Result<Delivery, SenderError> {
        let d = self.destination(destination_id).await?;
        if !d.enabled {
            return Err(SenderError::DestinationDisabled { id: d.id });
        }
        let now = self.now();
        let timestamp = time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1000))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let event = OutgoingEvent::new(
            TEST_EVENT_TYPE,
            &serde_json::json!({
                "event": TEST_EVENT_TYPE,
                "timestamp": timestamp,
                "data": { "destinationId": destination_id },
            }),
        )?;
        let news = [NewDelivery::new(event.id(), destination_id, now)];
        let mut out = self.inner.store.enqueue(&event, now, &news).await?;
        self.inner.wake.notify_one();
        out.pop().ok_or_else(|| {
            SenderError::Store(DeliveryStoreError::new("the store returned no delivery"))
        })
    }

    /// Delivery history, newest first, filtered and paged.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<Page<Delivery>, SenderError> {
        Ok(self.inner.store.deliveries(query).await?)
    }

    /// One delivery with all its attempts.
    ///
    /// # Errors
    ///
    /// [`SenderError::DeliveryNotFound`], or a store failure.
    pub async fn delivery_history(&self, id: &str) -> Result<DeliveryHistory, SenderError> {
        let delivery = self
            .inner
            .store
            .delivery(id)
            .await?
            .ok_or_else(|| SenderError::DeliveryNotFound { id: id.to_owned() })?;
        let attempts = self.inner.store.attempts(id).await?;
        Ok(DeliveryHistory { delivery, attempts })
    }

    /// The dead letter queue (each with its `last_error`), newest first;
    /// `query`'s status is ignored.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn dead_letters(&self, query: &DeliveryQuery) -> Result<Page<Delivery>, SenderError> {
        let query = query.clone().status(DeliveryStatus::DeadLettered);
        Ok(self.inner.store.deliveries(&query).await?)
    }

    /// Sends a finished delivery again as a new delivery (same event id and
    /// body, fresh retry budget). The original and its attempts stay; a
    /// dead-lettered original becomes [`DeliveryStatus::Replayed`].
    ///
    /// # Errors
    ///
    /// [`SenderError::DeliveryNotFound`]; [`SenderError::WrongState`] for a
    /// delivery still pending or already replayed;
    /// [`SenderError::DestinationNotFound`] when its destination was deleted.
    pub async fn resend(&self, delivery_id: &str) -> Result<Delivery, SenderError> {
        let original = self
            .inner
            .store
            .delivery(delivery_id)
            .await?
            .ok_or_else(|| SenderError::DeliveryNotFound {
                id: delivery_id.to_owned(),
            })?;
        let wrong = |reason| SenderError::WrongState {
            id: original.id.clone(),
            status: original.status.as_str(),
            reason,
        };
        match original.status {
            DeliveryStatus::Pending => {
                return Err(wrong("it is still being delivered; wait for it to finish"));
            }
            DeliveryStatus::Replayed => {
                return Err(wrong("it was already replayed; resend the replay instead"));
            }
            _ => {}
        }
        self.destination(&original.destination_id).await?;
        let mut new = NewDelivery::new(&original.event_id, &original.destination_id, self.now());
        new.replay_of = Some(original.id.clone());
        let created = self
            .inner
            .store
            .replay(&original.id, &new)
            .await?
            .ok_or_else(|| wrong("it was already replayed; resend the replay instead"))?;
        self.inner.wake.notify_one();
        Ok(created)
    }

    /// Replays one dead letter as a new delivery.
    ///
    /// # Errors
    ///
    /// As [`resend`](Self::resend), and [`SenderError::WrongState`] when the
    /// delivery is not dead-lettered.
    pub async fn replay_dead_letter(&self, delivery_id: &str) -> Result<Delivery, SenderError> {
        let d = self
            .inner
            .store
            .delivery(delivery_id)
            .await?
            .ok_or_else(|| SenderError::DeliveryNotFound {
                id: delivery_id.to_owned(),
            })?;
        if d.status != DeliveryStatus::DeadLettered {
            return Err(SenderError::WrongState {
                id: d.id,
                status: d.status.as_str(),
                reason: "only dead-lettered deliveries can be replayed",
            });
        }
        self.resend(delivery_id).await
    }

    /// Replays every dead letter that entered the queue in
    /// `[since_ms, until_ms)` (unix ms; `None` for no bound).
    ///
    /// # Errors
    ///
    /// A store failure. Dead letters that cannot be replayed (destination
    /// deleted) are listed in [`ReplaySummary::skipped`].
    pub async fn replay_dead_letters(
        &self,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<ReplaySummary, SenderError> {
        let mut targets = Vec::new();
        let mut query = DeliveryQuery::new()
            .status(DeliveryStatus::DeadLettered)
            .limit(MAX_PAGE_SIZE);
        loop {
            let page = self.inner.store.deliveries(&query).await?;
            targets.extend(
                page.items
                    .iter()
                    .filter(|d| {
                        let at = d.dead_lettered_at_ms.unwrap_or(d.updated_at_ms);
                        since_ms.is_none_or(|s| at >= s) && until_ms.is_none_or(|u| at < u)
                    })
                    .map(|d| d.id.clone()),
            );
            if page.next_cursor.is_none() {
                break;
            }
            query = query.after_page(&page);
        }
        let mut summary = ReplaySummary::default();
        // Oldest first, so the receiver sees them in their original order.
        for id in targets.into_iter().rev() {
            match self.resend(&id).await {
                Ok(d) => summary.replayed.push(d),
                Err(SenderError::Store(e)) => return Err(SenderError::Store(e)),
                Err(e) => summary.skipped.push(SkippedReplay {
                    delivery_id: id,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;

    /// Room reserved in the hand-over queue comes back whatever happens to
    /// the publish: handed over and taken by a worker, refused by the store
    /// (a duplicate event id), or dropped before the store answered.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn hand_over_room_is_never_leaked() {
        // SQLite answers on another thread, so a publish can be dropped
        // while it waits for the store; a second connection holding the
        // write lock makes sure it is still waiting.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let sender = Sender::builder(SqliteStore::open(&path).unwrap())
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .build()
            .unwrap();
        sender
            .add_destination(NewDestination::new(
                "http://127.0.0.1:9/",
                "s-0123456789abcdef0123456789",
            ))
            .await
            .unwrap();
        let _workers = sender.start();
        let handed = || sender.inner.handed.load(Ordering::Acquire);

        let event = OutgoingEvent::new("kpi.alert", &1).unwrap();
        sender.publish(event.clone()).await.unwrap();
        assert!(matches!(
            sender.publish(event).await,
            Err(SenderError::DuplicateEvent { .. })
        ));
        // A publish dropped while it waits for the store.
        let lock = rusqlite::Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut pending = Box::pin(sender.publish(OutgoingEvent::new("kpi.alert", &2).unwrap()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        assert!(handed() > 0, "the publish reserved room before waiting");
        drop(pending);
        lock.execute_batch("ROLLBACK").unwrap();
        let start = std::time::Instant::now();
        while handed() != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{} still reserved",
                handed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
