use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::body::Body;
use http::Response;
use tower_layer::Layer;

use super::diagnosis::{DiagnoseConfig, Diagnoser};
use super::drain::Drain;
use super::summary::{DEFAULT_REJECTION_SUMMARY_INTERVAL, RejectionSummary};
use super::telemetry::VerifyMetrics;
use super::{Verify, verified::Verifier};
use crate::error::{ConfigError, VerifyError};
use crate::replay::{Clock, ReplayWindow};
use crate::scheme::{Scheme, SchemeName};
use crate::secret::{MIN_SECRET_LEN, SecretSet};

/// Default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

pub(crate) type RejectFn = dyn Fn(&VerifyError) -> Response<Body> + Send + Sync;

pub(crate) struct Config {
    pub(crate) verifier: Verifier,
    pub(crate) body_limit: usize,
    pub(crate) drain: Drain,
    pub(crate) on_rejection: Arc<RejectFn>,
    pub(crate) rejections: Arc<RejectionSummary>,
    pub(crate) metrics: VerifyMetrics,
    pub(crate) diagnoser: Option<Arc<Diagnoser>>,
}

/// A tower [`Layer`] that lets through only authentic, fresh webhooks.
///
/// For each request it:
///
/// 1. refuses a `Content-Length` above the body limit with 413 before reading
///    anything, and enforces the same limit while streaming bodies without a
///    length; the rest of a refused body is then read and discarded, within
///    bounds, so that the client reads the 413 (see
///    [`drain_rejected_body`](Self::drain_rejected_body));
/// 2. buffers the raw body once;
/// 3. verifies the signature in constant time against every active secret;
/// 4. checks the signed timestamp against the [`ReplayWindow`];
/// 5. puts a [`Verified`](crate::Verified) in the request extensions and hands
///    the very same bytes to the inner service.
///
/// A failure is answered with an RFC 9457 problem response (401, 413 for size)
/// and the inner service is not called. The inner service's error type is
/// passed through untouched. The response says what to check, never how the
/// receiver is configured (how many secrets, whether public keys are set).
///
/// Each rejection is logged at `debug` level (kind, detail and
/// [receiver detail](VerifyError::receiver_detail)); at `warn` level a layer
/// writes at most one summary per
/// [`rejection_summary_interval`](Self::rejection_summary_interval) (10 s by
/// default), so a flood of forged requests does not flood the log. Turn on
/// `debug` for `webhook_guard` to see each one.
///
/// Secrets are taken as the provider gives them. When the layer is first
/// applied it logs a warning (`tracing`, once per layer) for a secret under
/// [`MIN_SECRET_LEN`] bytes of key, and, under [`Scheme::standard`], for a
/// text secret that is not `whsec_<base64>` (it is then used as its bytes,
/// while the Standard Webhooks libraries would base64-decode it). The
/// warnings name the secret by its index, never by its content.
///
/// It records metrics through the [`metrics`](https://docs.rs/metrics)
/// facade: requests by outcome, the time of each check, and which secret
/// matched with when it was last used; see [`metric_names`](super::metric_names).
/// Each metric is registered with the recorder the first time the layer
/// records it, and its handle is kept, so a request does not look its metrics
/// up in the recorder; a recorder installed after the layer was applied, or
/// a different thread-local one, gets its own registration. A recorder that
/// drops idle metrics (the Prometheus exporter's `idle_timeout`) would drop
/// a kept handle's series for good, so leave it off for these metrics.
/// [`diagnose_failures`](Self::diagnose_failures) adds the likely cause of
/// rejections.
///
/// The layer bounds how much of a body it reads, not how long the client may
/// take to send it: put a body-read timeout in front of it (tower-http's
/// `RequestBodyTimeoutLayer`, or your server's own), as for any route that
/// reads a body, so a client that stalls mid-body does not hold its
/// connection and buffer for ever.
///
/// ```
/// use axum::{Router, routing::post};
/// use webhook_guard::{SecretSet, Verified, VerifyLayer};
///
/// async fn handle(verified: Verified) -> &'static str {
///     println!("event {} verified", verified.id());
///     "ok"
/// }
///
/// let app: Router = Router::new()
///     .route("/webhooks", post(handle))
///     .layer(VerifyLayer::new(SecretSet::single("my-secret")?));
/// # Ok::<(), webhook_guard::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct VerifyLayer {
    verifier: Verifier,
    body_limit: usize,
    drain: Drain,
    on_rejection: Arc<RejectFn>,
    rejections: Arc<RejectionSummary>,
    diagnoser: Option<Arc<Diagnoser>>,
    warned: Arc<Once>,
}

impl VerifyLayer {
    /// A layer for the [`native`](Scheme::native) scheme accepting any of
    /// `secrets`, with a 300 s replay window each way and a 1 MiB body limit.
    pub fn new(secrets: SecretSet) -> Self {
        Self::from_verifier(Verifier::new(Scheme::native(), secrets))
    }

    /// A layer around a ready [`Verifier`].
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self {
            verifier,
            body_limit: DEFAULT_BODY_LIMIT,
            drain: Drain::default(),
            on_rejection: Arc::new(crate::problem::default_rejection),
            rejections: Arc::new(RejectionSummary::new(DEFAULT_REJECTION_SUMMARY_INTERVAL)),
            diagnoser: None,
            warned: Arc::new(Once::new()),
        }
    }

    /// Uses another wire format.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.verifier = self.verifier.with_scheme(scheme);
        self
    }

    /// Names the sender this layer verifies, for deduplication keys that
    /// stay the same across secret rotations. See [`Verifier::tenant`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use axum::{Router, routing::post};
    /// use webhook_guard::idempotency::{IdempotencyLayer, IdempotencyStore, MokaStore};
    /// use webhook_guard::{ConfigError, SecretSet, VerifyLayer};
    ///
    /// // One store for every tenant (a `RedisStore` when receivers run on
    /// // several machines); each tenant's keys stay its own.
    /// let store: Arc<dyn IdempotencyStore> = Arc::new(MokaStore::default());
    /// let tenant = |name: &str, secret: &str| -> Result<Router, ConfigError> {
    ///     Ok(Router::new()
    ///         .route("/webhooks", post(|| async { "ok" }))
    ///         .layer(IdempotencyLayer::from_arc(store.clone()))
    ///         .layer(VerifyLayer::new(SecretSet::single(secret)?).tenant(name)?))
    /// };
    /// let app: Router = Router::new()
    ///     .nest("/acme", tenant("acme", "acme-secret")?)
    ///     .nest("/globex", tenant("globex", "globex-secret")?);
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty name or one longer than
    /// 256 bytes.
    pub fn tenant(mut self, name: impl AsRef<str>) -> Result<Self, ConfigError> {
        self.verifier = self.verifier.tenant(name)?;
        Ok(self)
    }

    /// Replaces the replay window (tolerance, future skew and clock).
    pub fn replay_window(mut self, window: ReplayWindow) -> Self {
        self.verifier = self.verifier.replay_window(window);
        self
    }

    /// Sets how old a signed timestamp may be (default 300 s).
    pub fn tolerance(self, tolerance: Duration) -> Self {
        let window = self.verifier.window().clone().tolerance(tolerance);
        self.replay_window(window)
    }

    /// Sets how far in the future a signed timestamp may be (default 300 s).
    pub fn future_skew(self, skew: Duration) -> Self {
        let window = self.verifier.window().clone().future_skew(skew);
        self.replay_window(window)
    }

    /// Reads "now" from `clock` instead of the system clock.
    pub fn clock(self, clock: impl Clock) -> Self {
        let window = self.verifier.window().clone().clock(clock);
        self.replay_window(window)
    }

    /// Sets the largest body accepted, in bytes (default 1 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Bounds how much of a body refused as too large (413) is read and
    /// discarded after the answer: at most `max_bytes` more bytes, for at most
    /// `max_time` (defaults [`DEFAULT_DRAIN_BYTES`](super::DEFAULT_DRAIN_BYTES),
    /// 4 MiB, and [`DEFAULT_DRAIN_TIME`](super::DEFAULT_DRAIN_TIME), 5 s).
    /// `0` or [`Duration::ZERO`] turns draining off.
    ///
    /// Many clients (Python's `http.client`, most senders) write the whole
    /// request before reading the answer. An HTTP/1 server that answers
    /// without reading the body closes the connection, and the bytes the client
    /// is still writing make the kernel reset it: the client sees
    /// `Broken pipe` or `Connection reset` instead of the 413. As nginx does,
    /// the layer answers at once and meanwhile reads the rest of the body in a
    /// task of its own, keeping none of it, until the body ends, `max_bytes`
    /// were read or `max_time` passed; then the body is dropped and a
    /// connection whose body did not end is closed. A client cannot make the
    /// server read more than `body_limit + max_bytes` bytes of one request nor
    /// hold the task longer than `max_time`.
    ///
    /// A body whose declared `Content-Length` exceeds `max_bytes` is not read
    /// at all (its tail would be reset anyway), nor is a body announced with
    /// `Expect: 100-continue` (the server then never asks for it, and the
    /// client reads the 413 without sending it). Draining needs a Tokio
    /// runtime with timers enabled, as axum's server has; without a runtime
    /// the body is dropped at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_guard::{SecretSet, VerifyLayer};
    ///
    /// let layer = VerifyLayer::new(SecretSet::single("s")?)
    ///     .body_limit(256 * 1024)
    ///     .drain_rejected_body(1024 * 1024, Duration::from_secs(2));
    /// # Ok::<(), webhook_guard::ConfigError>(())
    /// ```
    pub fn drain_rejected_body(mut self, max_bytes: usize, max_time: Duration) -> Self {
        self.drain = Drain {
            max_bytes: max_bytes as u64,
            max_time,
        };
        self
    }

    /// Replaces the rejection response. The closure gets the error (whose
    /// message holds no secret) and returns the response to send.
    ///
    /// ```
    /// use axum::body::Body;
    /// use http::{Response, StatusCode};
    /// use webhook_guard::{SecretSet, VerifyLayer};
    ///
    /// let layer = VerifyLayer::new(SecretSet::single("s")?).on_rejection(|err| {
    ///     let mut res = Response::new(Body::from(err.kind().as_str()));
    ///     *res.status_mut() = StatusCode::FORBIDDEN;
    ///     res
    /// });
    /// # Ok::<(), webhook_guard::ConfigError>(())
    /// ```
    pub fn on_rejection<F>(mut self, f: F) -> Self
    where
        F: Fn(&VerifyError) -> Response<Body> + Send + Sync + 'static,
    {
        self.on_rejection = Arc::new(f);
        self
    }

    /// Sets the shortest time between two `warn`-level summaries of
    /// rejections (default 10 s,
    /// [`DEFAULT_REJECTION_SUMMARY_INTERVAL`](super::DEFAULT_REJECTION_SUMMARY_INTERVAL)).
    /// Each summary counts the rejections since the previous one, by kind;
    /// it is written by the first rejection after the interval, so a burst
    /// that has ended is reported with the next rejection.
    /// `Duration::ZERO` writes one `warn` line per rejection.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_guard::{SecretSet, VerifyLayer};
    ///
    /// let layer = VerifyLayer::new(SecretSet::single("s")?)
    ///     .rejection_summary_interval(Duration::from_secs(60));
    /// # Ok::<(), webhook_guard::ConfigError>(())
    /// ```
    pub fn rejection_summary_interval(mut self, interval: Duration) -> Self {
        self.rejections = Arc::new(RejectionSummary::new(interval));
        self
    }

    /// Diagnoses rejected requests to find their likely cause: the body
    /// changed after signing (and how), the secret read another way, a clock
    /// off or a timestamp in milliseconds, another provider's headers (see
    /// [`diagnose`](crate::diagnose)). Each diagnosis is counted by
    /// [`FailureCause`](super::FailureCause) in
    /// [`DIAGNOSED_FAILURES`](super::metric_names::DIAGNOSED_FAILURES) and
    /// logged at `debug` level with the id the request claims (unverified,
    /// cut short and escaped). Neither holds a secret or an expected
    /// signature.
    ///
    /// Off by default. A diagnosis hashes the body many times (bounded by
    /// [`GUESS_BUDGET`](crate::diagnose::GUESS_BUDGET)), so it runs on
    /// Tokio's blocking threads, at most as often as `config` allows and
    /// only for bodies up to its size; the rejections it leaves out are
    /// counted in [`DIAGNOSES_SKIPPED`](super::metric_names::DIAGNOSES_SKIPPED).
    /// Without a Tokio runtime nothing is diagnosed. The response does not
    /// wait for the diagnosis and does not change.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_guard::verify::DiagnoseConfig;
    /// use webhook_guard::{SecretSet, VerifyLayer};
    ///
    /// let layer = VerifyLayer::new(SecretSet::single("s")?)
    ///     .diagnose_failures(DiagnoseConfig::new().at_most(1, Duration::from_secs(1)));
    /// # Ok::<(), webhook_guard::ConfigError>(())
    /// ```
    pub fn diagnose_failures(mut self, config: DiagnoseConfig) -> Self {
        self.diagnoser = Some(Arc::new(Diagnoser::new(config)));
        self
    }

    /// The verifier this layer applies.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::new(Config {
            verifier: self.verifier.clone(),
            body_limit: self.body_limit,
            drain: self.drain,
            on_rejection: self.on_rejection.clone(),
            rejections: self.rejections.clone(),
            metrics: VerifyMetrics::new(self.verifier.scheme(), self.verifier.secrets()),
            diagnoser: self.diagnoser.clone(),
        })
    }
}

impl fmt::Debug for VerifyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("verifier", &self.verifier)
            .field("body_limit", &self.body_limit)
            .field("rejection_summary_interval", &self.rejections.interval())
            .field("drain_max_bytes", &self.drain.max_bytes)
            .field("drain_max_time", &self.drain.max_time)
            .field(
                "diagnose_failures",
                &self.diagnoser.as_ref().map(|d| d.config()),
            )
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = Verify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.warned.call_once(|| {
            warn_about_secrets(self.verifier.scheme(), self.verifier.secrets());
            warn_about_key_labels(self.verifier.scheme());
        });
        Verify::from_config(inner, self.config())
    }
}

/// Logs what makes a receiver's secrets weak or likely misread.
fn warn_about_secrets(scheme: &Scheme, secrets: &SecretSet) {
    let standard = scheme.name() == SchemeName::Standard;
    for (index, secret) in secrets.iter().enumerate() {
        let decoded = secret.decode_whsec_text().and_then(Result::ok);
        if standard && secret.is_text() && decoded.is_none() {
            tracing::warn!(
                secret_index = index,
                "secret #{index} is text that is not `whsec_` followed by base64, so the standard \
                 scheme uses its bytes as they are, while the Standard Webhooks and Svix libraries \
                 base64-decode a secret; if the provider printed `whsec_...`, pass the whole text"
            );
        }
        let len = match (&decoded, standard) {
            (Some(key), true) => key.expose_bytes().len(),
            _ => secret.expose_bytes().len(),
        };
        if len < MIN_SECRET_LEN {
            tracing::warn!(
                secret_index = index,
                "secret #{index} has {len} bytes of key, under {MIN_SECRET_LEN}: a short secret can be \
                 guessed offline from one signed request; ask the provider for a longer one"
            );
        }
    }
}

/// Logs public keys that would share a name in metrics (secrets are checked
/// when their set is built; public keys are added to a scheme one by one).
fn warn_about_key_labels(scheme: &Scheme) {
    let labels = scheme.ed25519_key_labels();
    if let Err(err) = crate::secret::check_unique_labels(labels.into_iter()) {
        tracing::warn!("ed25519 public keys: {err}; their metrics are added together");
    }
}
