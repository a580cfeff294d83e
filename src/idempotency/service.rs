use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_service::Service;

use super::DUPLICATE_HEADER;
use super::future::ResponseFuture;
use super::layer::{Config, FailMode, IdempotencyLayer, InFlightPolicy};
use super::store::{Begin, IdempotencyStore, LeaseToken};
use super::telemetry::Outcome;
use crate::problem::{IN_FLIGHT_TYPE, Problem, STORE_UNAVAILABLE_TYPE, missing_verify_layer};
use crate::scheme::SchemeName;
use crate::verify::Verified;

/// The service built by [`IdempotencyLayer`]: calls `S` at most once per
/// event (until the done TTL passes) and only marks an event processed when
/// `S` answered 2xx.
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Idempotency<S> {
    /// Wraps `inner` with the settings of `layer`.
    pub fn new(inner: S, layer: &IdempotencyLayer) -> Self {
        Self::from_config(inner, layer.config())
    }

    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// An [`IdempotencyLayer`] builder; same as [`IdempotencyLayer::new`].
    pub fn layer(store: impl IdempotencyStore) -> IdempotencyLayer {
        IdempotencyLayer::new(store)
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("store", &self.config.store)
            .field("done_ttl", &self.config.done_ttl)
            .field("lease", &self.config.lease)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Idempotency<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness and leave a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(Box::pin(handle(self.config.clone(), inner, req)))
    }
}

async fn handle<S, B, ResBody>(
    config: Arc<Config>,
    inner: S,
    req: Request<B>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(verified) = req.extensions().get::<Verified>() else {
        return Ok(missing_verify_layer("IdempotencyLayer"));
    };
    let id: Arc<str> = verified.id().into();
    let key = config.key(&req, verified);
    let scheme = verified.scheme();

    let token = match begin(&config, &key, &id, scheme).await {
        Ok(token) => token,
        Err(answer) => return Ok(answer),
    };
    let Some(token) = token else {
        let mut inner = inner;
        return inner.call(req).await.map(|res| res.map(Body::new));
    };

    let guard = LeaseGuard {
        store: config.store.clone(),
        key,
        id,
        token,
        on_drop: Some(Finish::Release),
    };
    // The call itself runs inside `catch_unwind` too: a service may panic
    // in `call` as well as in its future.
    let outcome = AssertUnwindSafe(async move {
        let mut inner = inner;
        inner.call(req).await
    })
    .catch_unwind()
    .await;
    settle(&config, guard, outcome).await
}

/// Takes the key's lease: `Ok(Some)` to call the handler under it,
/// `Ok(None)` to call it without one (the store failed, fail-open), or the
/// answer to give instead of calling it (a duplicate, in flight past the
/// wait, or the store failed, fail-closed).
async fn begin(
    config: &Config,
    key: &str,
    id: &str,
    scheme: SchemeName,
) -> Result<Option<LeaseToken>, Response<Body>> {
    let count = |outcome| config.metrics.count(scheme, outcome);
    let started = tokio::time::Instant::now();
    loop {
        match config.store.begin(key, config.lease).await {
            Ok(Begin::New(token)) => {
                count(Outcome::New);
                return Ok(Some(token));
            }
            Ok(Begin::Done) => {
                count(Outcome::Duplicate);
                tracing::info!(duplicate = true, id = %id, "webhook duplicate: already processed, handler not called");
                return Err(duplicate_response(id));
            }
            Ok(Begin::InFlight) => {
                if let InFlightPolicy::Wait { max, poll } = config.in_flight {
                    if started.elapsed() < max {
                        tokio::time::sleep(poll).await;
                        continue;
                    }
                }
                count(Outcome::InFlight);
                tracing::info!(duplicate = true, id = %id, "webhook duplicate: still in flight, answered 409");
                return Err(in_flight_response(config, id));
            }
            Err(err) => match config.fail_mode {
                FailMode::Closed => {
                    count(Outcome::StoreUnavailable);
                    tracing::error!(id = %id, "idempotency store unavailable, answered 503 (fail-closed): {err}");
                    return Err(store_unavailable_response(config));
                }
                FailMode::Open => {
                    count(Outcome::Unprotected);
                    tracing::warn!(id = %id, "idempotency store unavailable, processing without deduplication (fail-open): {err}");
                    return Ok(None);
                }
            },
        }
    }
}

/// Finishes the lease by what the handler came to: completed on a 2xx,
/// released on anything else (another status, an error, a panic, which is
/// resumed once the lease is released).
async fn settle<ResBody, E>(
    config: &Config,
    mut guard: LeaseGuard,
    outcome: std::thread::Result<Result<Response<ResBody>, E>>,
) -> Result<Response<Body>, E>
where
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match outcome {
        Ok(Ok(res)) if res.status().is_success() => {
            guard.finish(Finish::Complete(config.done_ttl)).await;
            Ok(res.map(Body::new))
        }
        Ok(Ok(res)) => {
            tracing::info!(id = %guard.id, status = res.status().as_u16(), "webhook handler failed, key released for the retry");
            guard.finish(Finish::Release).await;
            Ok(res.map(Body::new))
        }
        Ok(Err(err)) => {
            tracing::info!(id = %guard.id, "webhook service errored, key released for the retry");
            guard.finish(Finish::Release).await;
            Err(err)
        }
        Err(panic) => {
            tracing::error!(id = %guard.id, "webhook handler panicked, key released for the retry");
            guard.finish(Finish::Release).await;
            std::panic::resume_unwind(panic)
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Finish {
    Complete(Duration),
    Release,
}

/// Owns an in-flight lease until the outcome is written to the store. If the
/// response future is dropped first (client disconnect, timeout), `Drop`
/// finishes the lease on a spawned task: released while the handler ran,
/// completed if the handler had already succeeded.
struct LeaseGuard {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    id: Arc<str>,
    token: LeaseToken,
    on_drop: Option<Finish>,
}

impl LeaseGuard {
    async fn finish(&mut self, action: Finish) {
        self.on_drop = Some(action);
        run_finish(&*self.store, &self.key, &self.id, self.token, action).await;
        self.on_drop = None;
    }
}

async fn run_finish(
    store: &dyn IdempotencyStore,
    key: &str,
    id: &str,
    token: LeaseToken,
    action: Finish,
) {
    let (what, result) = match action {
        Finish::Complete(ttl) => ("complete", store.complete(key, token, ttl).await),
        Finish::Release => ("release", store.release(key, token).await),
    };
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            id = %id,
            "could not {what} the idempotency key: its lease had expired (the handler ran longer than the lease); \
             another delivery of this event may be processed"
        ),
        Err(err) => tracing::error!(
            id = %id,
            "could not {what} the idempotency key, it stays in flight until its lease expires: {err}"
        ),
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some(action) = self.on_drop.take() else {
            return;
        };
        let store = self.store.clone();
        let key = std::mem::take(&mut self.key);
        let id = self.id.clone();
        let token = self.token;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                tracing::info!(id = %id, "webhook request cancelled before it finished; finishing its idempotency key");
                handle.spawn(async move { run_finish(&*store, &key, &id, token, action).await });
            }
            Err(_) => tracing::error!(
                id = %id,
                "webhook request cancelled outside a tokio runtime; its idempotency key stays in flight until the lease expires"
            ),
        }
    }
}

fn duplicate_response(id: &str) -> Response<Body> {
    let body = serde_json::json!({ "duplicate": true, "id": id, "status": "already processed" });
    let mut res = Response::new(Body::from(body.to_string()));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
    res
}

fn in_flight_response(config: &Config, id: &str) -> Response<Body> {
    let secs = config.retry_after_secs();
    let mut res = Problem::new(
        StatusCode::CONFLICT,
        IN_FLIGHT_TYPE,
        "Webhook event already in flight",
        format!(
            "event `{id}` is being processed by another delivery; retry in {secs} s \
             (it is then either processed or answered as a duplicate)"
        ),
    )
    .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res.headers_mut()
        .insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
    res
}

fn store_unavailable_response(config: &Config) -> Response<Body> {
    let secs = config.retry_after_secs();
    let mut res = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        STORE_UNAVAILABLE_TYPE,
        "Idempotency store unavailable",
        format!(
            "the receiver cannot check whether this event was already processed; \
             it was not processed, retry in {secs} s"
        ),
    )
    .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}
