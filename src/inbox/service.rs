//! [`InboxService`]: the service built by [`InboxLayer`](super::InboxLayer).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_service::Service;

use super::backpressure::retry_after_secs;
use super::store::{InboxStore, Insert, NewInboxEvent};
use super::{DUPLICATE_HEADER, Inbox, Shared, metric_names};
use crate::problem::{INBOX_FULL_TYPE, INBOX_UNAVAILABLE_TYPE, Problem, missing_verify_layer};
use crate::verify::Verified;

/// Stores each verified request in the inbox and answers it; the inner
/// service (the route's handler) is never called, so `poll_ready` does not
/// reserve capacity in it. Named after its job rather than `Inbox`, which
/// is the handle.
#[derive(Clone, Debug)]
pub struct InboxService<S, St> {
    inner: S,
    inbox: Inbox<St>,
}

impl<S, St> InboxService<S, St> {
    /// Wraps `inner` (never called) to store requests in `inbox`.
    pub fn new(inner: S, inbox: Inbox<St>) -> Self {
        Self { inner, inbox }
    }

    define_inner_service_accessors!();
}

impl<S, St, B> Service<Request<B>> for InboxService<S, St>
where
    S: Service<Request<B>>,
    St: InboxStore,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.inbox.shared);
        let verified = req.extensions().get::<Verified>().cloned();
        Box::pin(async move {
            let Some(verified) = verified else {
                return Ok(missing_verify_layer("InboxLayer"));
            };
            Ok(accept(&shared, &verified).await)
        })
    }
}

/// How often a full inbox reads its count back from the store before
/// refusing: at most one store read per interval, whatever the traffic.
const REFRESH_WHEN_FULL: std::time::Duration = std::time::Duration::from_secs(1);

/// Stores the request unless the inbox is full; answers accordingly.
async fn accept<St: InboxStore>(shared: &Shared<St>, verified: &Verified) -> Response<Body> {
    let over = |limit| shared.backlog.unprocessed() >= limit;
    if shared.config.max_pending.is_some_and(over)
        && shared.backlog.claim_refresh(REFRESH_WHEN_FULL)
    {
        // The count may be stale: on a shared store other instances drain
        // it, and an instance that only receives runs no workers to notice.
        if let Ok(n) = shared.store.unprocessed().await {
            shared.backlog.reconcile(n);
        }
    }
    if let Some(full) = refuse_when_full(shared) {
        return full;
    }
    let mut event = new_event(verified, shared.config.clock.now_millis());
    if let Some(key) = &shared.config.ordering_key {
        event.ordering_key = serde_json::from_slice(verified.body())
            .ok()
            .and_then(|body: serde_json::Value| key(&body));
    }
    match shared.store.insert(&event).await {
        Ok(Insert::Stored) => {
            shared.backlog.added(1);
            shared.wake.notify_one();
            tracing::debug!(id = %event.id, "webhook stored in the inbox");
            json_answer(
                shared.config.accepted_status,
                &serde_json::json!({ "accepted": true, "id": event.id }),
            )
        }
        Ok(Insert::Duplicate) => {
            metrics::counter!(metric_names::DUPLICATES).increment(1);
            tracing::info!(duplicate = true, id = %event.id, "webhook duplicate: already in the inbox");
            let mut res = json_answer(
                shared.config.accepted_status,
                &serde_json::json!({ "duplicate": true, "id": event.id, "status": "already received" }),
            );
            res.headers_mut()
                .insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
            res
        }
        Err(err) => {
            tracing::error!(id = %event.id, "inbox store failed, answered 503: {err}");
            let secs = shared.config.unavailable_retry_after.as_secs().max(1);
            problem_with_retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                INBOX_UNAVAILABLE_TYPE,
                "Inbox unavailable",
                format!(
                    "the receiver could not store this event; nothing was stored, retry in {secs} s"
                ),
                secs,
            )
        }
    }
}

/// The answer to give instead of storing when `max_pending` events or more
/// are unprocessed.
fn refuse_when_full<St>(shared: &Shared<St>) -> Option<Response<Body>> {
    let limit = shared.config.max_pending?;
    let unprocessed = shared.backlog.unprocessed();
    if unprocessed < limit {
        return None;
    }
    metrics::counter!(metric_names::REFUSED).increment(1);
    let excess = unprocessed - limit + 1;
    let secs = retry_after_secs(excess, shared.backlog.drain_rate());
    tracing::warn!(
        unprocessed,
        limit,
        retry_after = secs,
        "inbox full, delivery refused"
    );
    Some(problem_with_retry_after(
        shared.config.full_status,
        INBOX_FULL_TYPE,
        "Inbox full",
        format!(
            "{unprocessed} events are waiting to be processed (limit {limit}); retry in {secs} s"
        ),
        secs,
    ))
}

/// What the store keeps of a verified request.
fn new_event(verified: &Verified, now_ms: i64) -> NewInboxEvent {
    let mut event = NewInboxEvent::new(verified.id(), verified.body().clone(), now_ms);
    event.scheme = verified.scheme();
    event.signed_at = verified.timestamp();
    event.event_type = event_type(verified.body());
    event.traceparent = verified.traceparent().cloned();
    event
}

/// The `event` (this platform) or `type` (Standard Webhooks) field of a
/// JSON body; `None` for anything else.
fn event_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Fields {
        event: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let fields: Fields = serde_json::from_slice(body).ok()?;
    fields.event.or(fields.kind)
}

fn json_answer(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn problem_with_retry_after(
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    secs: u64,
) -> Response<Body> {
    let mut res = Problem::new(status, kind, title, detail).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

#[cfg(test)]
mod tests {
    use super::event_type;

    #[test]
    fn event_type_comes_from_the_body() {
        assert_eq!(
            event_type(br#"{"event":"kpi.alert","data":{}}"#).as_deref(),
            Some("kpi.alert")
        );
        assert_eq!(
            event_type(br#"{"type":"invoice.paid"}"#).as_deref(),
            Some("invoice.paid")
        );
        assert_eq!(event_type(b"not json"), None);
        assert_eq!(event_type(br#"{"event":5}"#), None);
    }
}
