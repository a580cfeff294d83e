//! [`InboxBuilder`]: the inbox's settings.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::Notify;

use super::backpressure::Backlog;
use super::store::{InboxStore, InboxStoreError};
use super::{Inbox, Shared};
use crate::durable::retry::RetryPolicy;
use crate::error::ConfigError;
use crate::replay::{Clock, SystemClock};

/// The settings of an [`Inbox`].
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) retry: RetryPolicy,
    pub(crate) concurrency: usize,
    pub(crate) max_pending: Option<u64>,
    pub(crate) accepted_status: StatusCode,
    pub(crate) full_status: StatusCode,
    pub(crate) lease: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) depth_sample_interval: Duration,
    pub(crate) unavailable_retry_after: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ordering_key: Option<OrderingKeyFn>,
    pub(crate) stale: StalePolicy,
}

impl Config {
    /// When a lease taken or renewed at `now_ms` ends.
    pub(crate) fn lease_until(&self, now_ms: i64) -> i64 {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(lease_ms)
    }
}

/// Computes an event's ordering key from its JSON body.
pub(crate) type OrderingKeyFn = Arc<dyn Fn(&serde_json::Value) -> Option<String> + Send + Sync>;

/// What the workers do with a stale event: one older (by signed timestamp)
/// than an event of its ordering key that was processed already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StalePolicy {
    /// Call the handler with [`InboxEvent::stale`](super::InboxEvent::stale)
    /// set, and let it decide (the default).
    #[default]
    Deliver,
    /// Mark it done without calling the handler; its `last_error` says it
    /// was skipped as stale.
    Skip,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("max_pending", &self.max_pending)
            .field("accepted_status", &self.accepted_status)
            .field("full_status", &self.full_status)
            .field("lease", &self.lease)
            .field("ordered", &self.ordering_key.is_some())
            .field("stale", &self.stale)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Inbox`]; from [`Inbox::builder`].
#[derive(Debug)]
#[must_use]
pub struct InboxBuilder<S> {
    store: S,
    config: Config,
}

impl<S: InboxStore> InboxBuilder<S> {
    pub(crate) fn new(store: S) -> Self {
        Self {
            store,
            config: Config {
                retry: RetryPolicy::default(),
                concurrency: 8,
                max_pending: None,
                accepted_status: StatusCode::OK,
                full_status: StatusCode::SERVICE_UNAVAILABLE,
                lease: Duration::from_secs(300),
                poll_interval: Duration::from_millis(500),
                depth_sample_interval: Duration::from_secs(5),
                unavailable_retry_after: Duration::from_secs(5),
                clock: Arc::new(SystemClock),
                ordering_key: None,
                stale: StalePolicy::Deliver,
            },
        }
    }

    builder_setters! {
        /// When to try a failed event again (default: the sender's, 1, 5
        /// and 15 minutes, then the dead letter queue).
        fn retry(policy: RetryPolicy) => config.retry = policy;
        /// How long a worker holds an event before another may claim it
        /// (default 5 min). While the handler runs, the worker renews the
        /// lease every third of it, so a handler may run longer than the
        /// lease; the lease is how long an event waits after its worker's
        /// process died (or lost the store) before it is processed again.
        fn lease(lease: Duration) => config.lease = lease;
        /// How often idle workers look for due retries (default 500 ms; new
        /// events wake them at once).
        fn poll_interval(every: Duration) => config.poll_interval = every;
        /// How often the workers read the depth of the store and the age of
        /// its oldest unprocessed event (default 5 s): one cheap query that
        /// feeds the [gauges](super::metric_names) and corrects the count
        /// that back-pressure uses (other processes may share the store).
        fn depth_sample_interval(every: Duration) => config.depth_sample_interval = every;
        /// The `Retry-After` answered when the store fails (default 5 s).
        fn unavailable_retry_after(wait: Duration) => config.unavailable_retry_after = wait;
        /// The clock (tests use a fixed one).
        fn clock(clock: impl Clock) => config.clock = Arc::new(clock);
        /// Refuse new deliveries while this many events are unprocessed
        /// (pending or being processed); default: no limit.
        fn max_pending(limit: u64) => config.max_pending = Some(limit);
        /// What to do with a stale event (default
        /// [`StalePolicy::Deliver`]); see [`ordering_key`](Self::ordering_key).
        fn stale_policy(policy: StalePolicy) => config.stale = policy;
    }

    /// Orders events by a key computed from the JSON body when it is
    /// stored: events with the same key are processed one at a time in
    /// signed-timestamp order, others in parallel. `None` (or a body that
    /// is not JSON) leaves the event unordered.
    ///
    /// ```
    /// # use webhook_guard::inbox::{Inbox, MemoryInboxStore};
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let inbox = Inbox::builder(MemoryInboxStore::new())
    ///     .ordering_key(|body: &serde_json::Value| {
    ///         let data = body.get("data")?;
    ///         Some(format!("{}/{}", data.get("tenant")?.as_str()?, data.get("job_id")?.as_str()?))
    ///     })
    ///     .build()
    ///     .await?;
    /// # drop(inbox); Ok(()) }
    /// ```
    ///
    /// See [ordering](super#ordering) for what it costs (head-of-line
    /// blocking) and what happens to events that arrive late.
    pub fn ordering_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&serde_json::Value) -> Option<String> + Send + Sync + 'static,
    {
        self.config.ordering_key = Some(Arc::new(key));
        self
    }

    /// How many events are processed at once (default 8).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for 0.
    pub fn concurrency(mut self, workers: usize) -> Result<Self, ConfigError> {
        if workers == 0 {
            return Err(ConfigError::InvalidSetting {
                setting: "inbox concurrency",
                reason: "must be at least 1".into(),
            });
        }
        self.config.concurrency = workers;
        Ok(self)
    }

    /// The status answered once an event is stored: 200 (the default) or
    /// 202 Accepted, or any other 2xx.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a status that is not 2xx.
    pub fn accepted_status(mut self, status: StatusCode) -> Result<Self, ConfigError> {
        if !status.is_success() {
            return Err(ConfigError::InvalidSetting {
                setting: "inbox accepted status",
                reason: format!("must be 2xx, got {status}"),
            });
        }
        self.config.accepted_status = status;
        Ok(self)
    }

    /// The status answered above [`max_pending`](Self::max_pending): 503
    /// (the default) or 429.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for any other status.
    pub fn full_status(mut self, status: StatusCode) -> Result<Self, ConfigError> {
        if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
            return Err(ConfigError::InvalidSetting {
                setting: "inbox full status",
                reason: format!("must be 503 or 429, got {status}"),
            });
        }
        self.config.full_status = status;
        Ok(self)
    }

    /// The inbox, with its count of unprocessed events read from the store.
    ///
    /// # Errors
    ///
    /// An [`InboxStoreError`] when the store cannot be read.
    pub async fn build(self) -> Result<Inbox<S>, InboxStoreError> {
        let unprocessed = self.store.unprocessed().await?;
        Ok(Inbox {
            shared: Arc::new(Shared {
                store: self.store,
                config: self.config,
                backlog: Backlog::new(unprocessed),
                wake: Notify::new(),
            }),
        })
    }
}
