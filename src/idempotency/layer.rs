use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::MatchedPath;
use http::Request;
use tower_layer::Layer;

use super::moka::MokaStore;
use super::service::Idempotency;
use super::store::IdempotencyStore;
use super::telemetry::IdempotencyMetrics;
use crate::error::ConfigError;
use crate::verify::Verified;

/// Default time a processed event's key is kept: 24 hours.
pub const DEFAULT_DONE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default in-flight lease: 5 minutes.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);
/// Default `Retry-After` on a 409 for an event still in flight: 5 seconds.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What to do with a delivery whose event is still being processed by
/// another delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InFlightPolicy {
    /// Answer 409 with `Retry-After` at once.
    Reject,
    /// Wait up to `max` for the first delivery to finish, checking every
    /// `poll`; then answer as for a done (200) or released (process) key, or
    /// 409 if it is still in flight.
    Wait { max: Duration, poll: Duration },
}

/// What to do when the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Answer 503 with `Retry-After` and do not call the handler: the sender
    /// retries later and no event is processed twice. The default.
    #[default]
    Closed,
    /// Call the handler without deduplication: the event may be processed
    /// more than once while the store is down. Logged at `warn` per request.
    Open,
}

/// Scope of requests that reach the layer without an axum route template
/// (the layer wraps a plain tower service, a fallback or a `nest_service`).
pub(crate) const UNROUTED_SCOPE: &str = "(unrouted)";

/// The scope part of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The route template axum matched ([`MatchedPath`], nest prefixes
    /// included), or [`UNROUTED_SCOPE`] without one. Never the request's
    /// own path: its spelling (percent-encoding, the part a `nest` strips)
    /// is the client's to choose and is not signed.
    RouteTemplate,
    /// A fixed string (a tenant, a destination).
    Fixed(Arc<str>),
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) done_ttl: Duration,
    pub(crate) lease: Duration,
    pub(crate) scope: Scope,
    pub(crate) in_flight: InFlightPolicy,
    pub(crate) retry_after: Duration,
    pub(crate) fail_mode: FailMode,
    pub(crate) metrics: Arc<IdempotencyMetrics>,
}

impl Config {
    /// `{len(scope)}:{scope}:{len(verifier)}:{verifier}:{id}`, built only
    /// from configuration (the route template or fixed scope) and from what
    /// the verifier authenticated (its identity and the event id). The length
    /// prefixes keep the key unambiguous whatever characters the parts hold.
    pub(crate) fn key<B>(&self, req: &Request<B>, verified: &Verified) -> String {
        let scope = match &self.scope {
            Scope::RouteTemplate => req
                .extensions()
                .get::<MatchedPath>()
                .map_or(UNROUTED_SCOPE, MatchedPath::as_str),
            Scope::Fixed(s) => s,
        };
        let verifier = verified.verifier().as_str();
        format!(
            "{}:{scope}:{}:{verifier}:{}",
            scope.len(),
            verifier.len(),
            verified.id()
        )
    }

    pub(crate) fn retry_after_secs(&self) -> u64 {
        whole_seconds_at_least_one(self.retry_after)
    }
}

pub(crate) fn whole_seconds_at_least_one(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// A tower [`Layer`] that processes each verified event once.
///
/// Place it **inside** [`VerifyLayer`](crate::VerifyLayer) (with axum's
/// `.layer()`, add it first: the layer added last runs first), so that the
/// key is built from authenticated data only: the scope plus
/// [`Verified::id`](crate::Verified::id). See the [module docs](super) for
/// the states, the responses and the choice of TTLs.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use webhook_guard::{SecretSet, VerifyLayer};
/// use webhook_guard::idempotency::{IdempotencyLayer, MokaStore};
///
/// let idempotency = IdempotencyLayer::new(MokaStore::new(100_000))
///     .done_ttl(Duration::from_secs(3 * 24 * 60 * 60))? // outlasts the sender's retries
///     .lease(Duration::from_secs(60))?                  // longer than the slowest handler
///     .scope("tenant_abc123");
/// let app: Router = Router::new()
///     .route("/webhooks", post(|| async { "ok" }))
///     .layer(idempotency)
///     .layer(VerifyLayer::new(SecretSet::single("my-secret")?));
/// # Ok::<(), webhook_guard::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct IdempotencyLayer {
    config: Arc<Config>,
}

impl IdempotencyLayer {
    /// A layer over `store`, with a 24 h done TTL, a 5 min lease, the route
    /// template as scope (see [`scope`](Self::scope)), 409 +
    /// `Retry-After: 5` for duplicates in flight and fail-closed (503) when
    /// the store is down.
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A layer over a shared store.
    pub fn from_arc(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                done_ttl: DEFAULT_DONE_TTL,
                lease: DEFAULT_LEASE,
                scope: Scope::RouteTemplate,
                in_flight: InFlightPolicy::Reject,
                retry_after: DEFAULT_RETRY_AFTER,
                fail_mode: FailMode::Closed,
                metrics: Arc::new(IdempotencyMetrics::new()),
            }),
        }
    }

    /// A layer over an in-process [`MokaStore`] holding up to
    /// [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY) (100,000) keys.
    pub fn in_memory() -> Self {
        Self::new(MokaStore::default())
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let mut next = Config::clone(&self.config);
        f(&mut next);
        self.config = Arc::new(next);
        self
    }

    /// How long a processed event's key is kept (default 24 h). A delivery of
    /// the same event within this time is answered `200` with
    /// `X-Webhook-Duplicate: true` and not processed again.
    ///
    /// It must outlast the sender's whole retry horizon (the time from the
    /// first attempt to the last retry, plus any manual resend you expect),
    /// or a late retry of a processed event is processed again.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for less than one millisecond.
    pub fn done_ttl(self, ttl: Duration) -> Result<Self, ConfigError> {
        check_millis("done_ttl", ttl)?;
        Ok(self.edit(|c| c.done_ttl = ttl))
    }

    /// How long an in-flight key blocks other deliveries of the same event
    /// (default 5 min). If the process dies while handling an event, its key
    /// frees itself after this time and the sender's next retry is
    /// processed. Make it longer than your slowest handler: a lease that
    /// expires while the handler still runs lets a concurrent retry in.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for less than one millisecond.
    pub fn lease(self, lease: Duration) -> Result<Self, ConfigError> {
        check_millis("lease", lease)?;
        Ok(self.edit(|c| c.lease = lease))
    }

    /// Uses a fixed scope (a destination, a group of routes) instead of the
    /// route template. Keys of different scopes never collide, so the same
    /// event id delivered to two scopes is processed once in each; routes
    /// that share a scope deduplicate together.
    ///
    /// By default the scope is the route template axum matched
    /// ([`MatchedPath`]: `/hooks/{source}`, with the prefix of every `nest`),
    /// or one fixed scope for requests without a template (the layer wraps a
    /// plain tower service, a fallback or a `nest_service`). The request's
    /// own path is never used: `/hooks/github` and `/hooks/%67ithub` are
    /// one route, and a client must not be able to turn one delivery into
    /// several events by spelling the path differently.
    ///
    /// The scope never replaces the verifier's identity: every key also
    /// holds [`Verified::verifier`], so receivers for different senders
    /// that share a store and a scope still keep their keys apart.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        let scope: String = scope.into();
        self.edit(|c| c.scope = Scope::Fixed(scope.into()))
    }

    /// The `Retry-After` sent with a 409 for an event still in flight and
    /// with a 503 when the store is down (default 5 s, rounded up to whole
    /// seconds, at least 1).
    pub fn retry_after(self, retry_after: Duration) -> Self {
        self.edit(|c| c.retry_after = retry_after)
    }

    /// Instead of answering 409 at once, a delivery whose event is in flight
    /// waits up to `max` for the first delivery to finish (checking every
    /// 25 ms, or `max / 10` if shorter): then it is answered as a duplicate
    /// (first succeeded), processed (first failed and released the key), or
    /// 409 if the first is still running.
    ///
    /// Waiting uses tokio's timer: the runtime must have time enabled (as
    /// `#[tokio::main]` does).
    pub fn wait_for_in_flight(self, max: Duration) -> Self {
        let poll = (max / 10).clamp(Duration::from_millis(1), Duration::from_millis(25));
        self.edit(|c| c.in_flight = InFlightPolicy::Wait { max, poll })
    }

    /// What to do when the store cannot be reached (default
    /// [`FailMode::Closed`]: 503).
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.edit(|c| c.fail_mode = mode)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.config.store
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.clone()
    }
}

fn check_millis(setting: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d < Duration::from_millis(1) {
        return Err(ConfigError::InvalidSetting {
            setting,
            reason: format!("{d:?} is shorter than the smallest allowed value of 1 ms"),
        });
    }
    Ok(())
}

impl fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("IdempotencyLayer")
            .field("store", &c.store)
            .field("done_ttl", &c.done_ttl)
            .field("lease", &c.lease)
            .field("scope", &c.scope)
            .field("in_flight", &c.in_flight)
            .field("retry_after", &c.retry_after)
            .field("fail_mode", &c.fail_mode)
            .finish()
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::from_config(inner, self.config())
    }
}
