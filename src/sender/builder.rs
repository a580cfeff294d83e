//! [`SenderBuilder`]: the sender's settings, their defaults and checks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::Sender;
use super::circuit::Breaker;
use super::delivery::DeliveryAttempt;
use super::destination::{Destination, EventFilter, signing_key};
use super::error::SenderError;
use super::operational::{
    MAX_OPERATIONAL_IN_FLIGHT, Operational, OperationalEvent, OperationalHook, OperatorWebhook,
};
use super::ssrf::{self, AddressPolicy};
use super::state::{AttemptObserver, Inner};
use super::store::{DeliveryStore, FleetPolicy, NextStep};
use super::telemetry::DestinationLabels;
use super::worker::Target;
use crate::durable::retry::RetryPolicy;
use crate::error::ConfigError;
use crate::replay::{Clock, SystemClock};
use crate::scheme::Scheme;
use crate::secret::Secret;

/// The settings the workers read, fixed when the sender is built.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(super) retry: RetryPolicy,
    pub(super) per_destination: usize,
    pub(super) max_in_flight: usize,
    pub(super) batch_size: usize,
    pub(super) poll_interval: Duration,
    pub(super) lease_ms: i64,
    /// The whole-request timeout, ms: an attempt's own timeout is this or
    /// what is left of its lease, whichever is shorter.
    pub(super) timeout_ms: i64,
    pub(super) busy_delay_ms: i64,
    pub(super) breaker_threshold: u32,
    pub(super) breaker_cooldown_ms: i64,
    pub(super) response_body_limit: usize,
    pub(super) destination_cache: Duration,
    pub(super) queue_metrics_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            per_destination: 4,
            max_in_flight: 64,
            batch_size: 64,
            poll_interval: Duration::from_secs(1),
            lease_ms: 0,
            timeout_ms: 15_000,
            busy_delay_ms: 100,
            breaker_threshold: 5,
            breaker_cooldown_ms: 30_000,
            response_body_limit: 1024,
            destination_cache: Duration::from_secs(1),
            queue_metrics_interval: Duration::from_secs(10),
        }
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
    destination_labels: usize,
    operational_hook: Option<OperationalHook>,
    operational_webhook: Option<(String, Secret)>,
    operational_retry: RetryPolicy,
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
            config: Settings::default(),
            destination_labels: 0,
            operational_hook: None,
            operational_webhook: None,
            operational_retry: RetryPolicy::new([Duration::from_secs(1), Duration::from_secs(5)]),
        }
    }
}

impl<S: DeliveryStore> SenderBuilder<S> {
    builder_setters! {
        /// Connect timeout per attempt (default 5 s).
        fn connect_timeout(d: Duration) => connect_timeout = d;

        /// Total time per attempt, connect to last body byte (default 15 s).
        fn timeout(d: Duration) => timeout = d;

        /// The retry schedule (default 1, 5, 15 minutes with jitter).
        fn retry(policy: RetryPolicy) => config.retry = policy;

        /// Which addresses may be connected to (default: public ones only).
        fn address_policy(policy: AddressPolicy) => policy = policy;

        /// Most attempts in flight to one destination (default 4), so a slow
        /// endpoint cannot take every worker: per process, or across every
        /// node when the store [coordinates the fleet](DeliveryStore::coordinates_fleet).
        fn per_destination_concurrency(n: usize) => config.per_destination = n;

        /// Most HTTP attempts in flight in total (default 64). An attempt's slot
        /// is free again when its HTTP exchange ends; recording the outcome
        /// happens beside the next attempt. Up to as many again may wait,
        /// claimed or handed over by `publish`, for a free slot.
        fn max_in_flight(n: usize) => config.max_in_flight = n;

        /// How often the store is polled for due deliveries when idle (default
        /// 1 s; a publish wakes the workers at once).
        fn poll_interval(d: Duration) => config.poll_interval = d;

        /// How long a claimed delivery stays leased to this sender (default:
        /// connect timeout + total timeout + 30 s). A sender that dies mid-flight
        /// holds its deliveries this long. An attempt never outlives its lease:
        /// its timeout is cut to what is left of the lease (less a margin), and
        /// a delivery whose lease is nearly over is given back unsent, so two
        /// nodes never send one delivery at once.
        fn lease(d: Duration) => lease = Some(d);

        /// How long a delivery waits when its destination is at its concurrency
        /// limit (default 100 ms).
        fn busy_delay(d: Duration) => config.busy_delay_ms = millis(d);

        /// How long the destination list is cached between store reads (default
        /// 1 s; zero reads the store every time). Changes made through this
        /// sender apply at once; changes made by another process sharing the
        /// store apply within this period.
        fn destination_cache(ttl: Duration) => config.destination_cache = ttl;

        /// How many bytes of each answer's body are kept (default 1 KiB).
        fn response_body_limit(bytes: usize) => config.response_body_limit = bytes;

        /// The time source, read in milliseconds (default the system clock):
        /// [`ManualClock`](super::ManualClock) in tests, or any [`Clock`].
        fn clock(clock: impl Clock) => clock = Arc::new(clock);

        /// Calls `f` after every attempt, with the attempt and what happens next.
        fn on_attempt(
            f: impl Fn(&DeliveryAttempt, &NextStep) + Send + Sync + 'static
        ) => observer = Some(Arc::new(f));

        /// The `User-Agent` header (default `webhook-guard/<version>`).
        fn user_agent(ua: impl Into<String>) => user_agent = ua.into();

        /// How often the queue gauges
        /// ([`QUEUE_PENDING`](super::metric_names::QUEUE_PENDING),
        /// [`QUEUE_OLDEST_DUE_SECONDS`](super::metric_names::QUEUE_OLDEST_DUE_SECONDS))
        /// are read from the store (default 10 s, and once at start). Each
        /// reading is one query over the whole store.
        fn queue_metrics_interval(d: Duration) => config.queue_metrics_interval = d;

        /// Labels the per-attempt metrics
        /// ([`ATTEMPTS`](super::metric_names::ATTEMPTS),
        /// [`ATTEMPT_SECONDS`](super::metric_names::ATTEMPT_SECONDS)) with a
        /// `destination` label: the destination's id for the first `cap`
        /// destinations this process attempts, `other` for the rest, so the
        /// number of series stays bounded. Default 0: no such label.
        fn destination_metrics(cap: usize) => destination_labels = cap;

        /// Calls `f` with each [`OperationalEvent`] (a destination disabled
        /// by 410, a circuit opened or closed, a delivery dead-lettered),
        /// once per change, after the change is stored.
        ///
        /// `f` runs on the worker task that made the change, before it
        /// moves on: keep it quick and never block in it (hand slow work to
        /// a channel or `tokio::spawn`). A synchronous hook keeps the order
        /// of events and costs nothing when it only logs or counts; an
        /// asynchronous one would need a queue of its own between the
        /// worker and the hook, with its own bound and losses.
        fn on_operational_event(
            f: impl Fn(&OperationalEvent) + Send + Sync + 'static
        ) => operational_hook = Some(Arc::new(f));

        /// The retry schedule of the operational webhook (default: again
        /// after 1 s and 5 s, then dropped).
        fn operational_webhook_retry(policy: RetryPolicy) => operational_retry = policy;
    }

    /// Posts each [`OperationalEvent`] to `url` as a webhook signed with
    /// the `native` scheme and `secret` (at least 24 bytes; checked by
    /// [`build`](Self::build)), through the sender's own HTTP client
    /// and address policy. Not queued: see
    /// [the operational events](super::operational) for why, and for
    /// the body.
    pub fn operational_webhook(
        mut self,
        url: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Self {
        self.operational_webhook = Some((url.into(), secret.into()));
        self
    }

    /// Consecutive failures after which a destination is paused (default 5),
    /// and for how long before one probe is let through (default 30 s): per
    /// process, or counted and enforced across every node when the store
    /// [coordinates the fleet](DeliveryStore::coordinates_fleet).
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.config.breaker_threshold = failures;
        self.config.breaker_cooldown_ms = millis(cooldown);
        self
    }

    /// Builds the sender.
    ///
    /// # Errors
    ///
    /// [`SenderError::Config`] for a zero limit or timeout, or an HTTP
    /// client that cannot be built.
    pub fn build(self) -> Result<Sender<S>, SenderError> {
        self.check()?;
        let operational = Operational {
            hook: self.operational_hook,
            webhook: operator_webhook(self.operational_webhook, self.operational_retry)?,
        };
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
        config.timeout_ms = millis(self.timeout);
        config.lease_ms = millis(
            self.lease
                .unwrap_or(self.connect_timeout + self.timeout + Duration::from_secs(30)),
        );
        let max_in_flight = config.max_in_flight;
        let breaker = Breaker::new(
            config.breaker_threshold,
            config.breaker_cooldown_ms,
            config.busy_delay_ms,
        );
        let mut store = self.store;
        if store.coordinates_fleet() {
            store.set_fleet_policy(FleetPolicy::new(
                config.per_destination,
                config.breaker_threshold,
                config.breaker_cooldown_ms,
            ));
        }
        Ok(Sender {
            inner: Arc::new(Inner {
                store,
                config,
                client,
                policy,
                clock: self.clock,
                wake: Notify::new(),
                breaker,
                gates: Mutex::default(),
                observer: self.observer,
                destinations: Mutex::new(None),
                slots: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
                direct: Mutex::new(None),
                handed: std::sync::atomic::AtomicUsize::new(0),
                labels: DestinationLabels::new(self.destination_labels),
                operational,
            }),
        })
    }

    /// Refuses settings no sender can work with.
    fn check(&self) -> Result<(), SenderError> {
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
        Ok(())
    }
}

/// The operator's webhook, as a destination that signs like any other.
fn operator_webhook(
    setting: Option<(String, Secret)>,
    retry: RetryPolicy,
) -> Result<Option<Arc<OperatorWebhook>>, SenderError> {
    let Some((url, secret)) = setting else {
        return Ok(None);
    };
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| invalid("operational webhook", &format!("the URL is invalid: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            "operational webhook",
            "the URL must be http or https",
        ));
    }
    let scheme = Scheme::native();
    let key =
        signing_key(&scheme, secret).map_err(|e| invalid("operational webhook", &e.to_string()))?;
    let destination = Destination {
        id: "operational".to_owned(),
        url,
        scheme: scheme.name(),
        events: EventFilter::All,
        enabled: true,
        disabled_reason: None,
        created_at_ms: 0,
        secrets: vec![key],
    };
    Ok(Some(Arc::new(OperatorWebhook {
        target: Target::new(destination),
        retry,
        in_flight: Arc::new(Semaphore::new(MAX_OPERATIONAL_IN_FLIGHT)),
    })))
}

/// A setting that cannot be used, and why.
fn invalid(setting: &'static str, reason: &str) -> SenderError {
    SenderError::Config(ConfigError::InvalidSetting {
        setting,
        reason: reason.to_owned(),
    })
}
