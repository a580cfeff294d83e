//! W3C `traceparent` from publish to the receiving side: stored with the
//! delivery, sent as a header on every attempt (a retry after a restart
//! too, read back from SQLite), picked up by `VerifyLayer` into
//! `Verified::traceparent`; malformed headers are ignored, never an error.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flaky_receiver;
#[path = "log_capture/mod.rs"]
mod log_capture;

use flaky_receiver::{Seen, flaky_receiver};

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, NewDestination, OutgoingEvent, RetryPolicy,
    Sender, SqliteStore,
};
use webhook_guard::trace_context::TraceParent;
use webhook_guard::{Message, Scheme, SecretSet, Verified, VerifyLayer};

const SECRET: &str = "trace-context-secret-0123456789";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What the receiver saw on each verified request: the raw header and
/// what `Verified::traceparent` made of it.
fn traces(seen: &Seen) -> Vec<(Option<String>, Option<String>)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(headers, verified)| {
            let raw = headers
                .get("traceparent")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            (raw, verified.traceparent().map(ToString::to_string))
        })
        .collect()
}

fn sender(path: &std::path::Path, retry_after: Duration) -> Sender<SqliteStore> {
    Sender::builder(SqliteStore::open(path).unwrap())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(20))
        .retry(RetryPolicy::new([retry_after, Duration::from_millis(50)]))
        .build()
        .unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traceparent_travels_on_every_attempt_and_survives_a_restart() {
    let (url, seen) = flaky_receiver(SECRET, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");

    // First process: publishes, the first attempt fails, a retry is due
    // after the restart.
    let first = sender(&db, Duration::from_millis(300));
    first
        .add_destination(NewDestination::new(&url, SECRET))
        .await
        .unwrap();
    let event = OutgoingEvent::new("kpi.alert", &serde_json::json!({"kpi": "churn"}))
        .unwrap()
        .with_traceparent(TraceParent::parse(TRACEPARENT).unwrap());
    let published = first.publish(event).await.unwrap();
    assert_eq!(
        published[0].traceparent.as_ref().unwrap().as_str(),
        TRACEPARENT
    );
    let workers = first.start();
    until("the first attempt", || seen.lock().unwrap().len() == 1).await;
    workers.shutdown().await;
    drop(first);

    // Second process on the same file: only the store knows the trace.
    let second = sender(&db, Duration::from_millis(300));
    let stored = second
        .deliveries(&DeliveryQuery::new())
        .await
        .unwrap()
        .items;
    assert_eq!(
        stored[0].traceparent.as_ref().unwrap().as_str(),
        TRACEPARENT
    );
    let workers = second.start();
    until("the retry", || seen.lock().unwrap().len() == 2).await;
    workers.shutdown().await;
    let delivered = second
        .deliveries(&DeliveryQuery::new().status(DeliveryStatus::Delivered))
        .await
        .unwrap();
    assert_eq!(delivered.items.len(), 1);

    let expected = (Some(TRACEPARENT.to_owned()), Some(TRACEPARENT.to_owned()));
    assert_eq!(traces(&seen), vec![expected.clone(), expected]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_outside_a_trace_sends_no_traceparent() {
    let (url, seen) = flaky_receiver(SECRET, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let sender = sender(&dir.path().join("q.db"), Duration::from_millis(50));
    sender
        .add_destination(NewDestination::new(&url, SECRET))
        .await
        .unwrap();
    let event = OutgoingEvent::new("kpi.alert", &serde_json::json!({})).unwrap();
    assert!(event.traceparent().is_none());
    sender.publish(event).await.unwrap();
    let workers = sender.start();
    until("the delivery", || seen.lock().unwrap().len() == 1).await;
    workers.shutdown().await;
    assert_eq!(traces(&seen), vec![(None, None)]);
}

/// Malformed `traceparent` headers reach the handler as `None`; the
/// request is verified and answered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traceparent_headers_are_ignored_without_error() {
    let (url, seen) = flaky_receiver(SECRET, 0).await;
    let long = format!("{TRACEPARENT}{}", "0".repeat(10_000));
    let malformed = [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        &long,
    ];
    let secrets = SecretSet::single(SECRET).unwrap();
    let client = reqwest::Client::new();
    for (n, bad) in malformed.iter().enumerate() {
        let id = format!("evt_bad_{n}");
        let body = br#"{"event":"kpi.alert"}"#;
        let mut headers = Scheme::native()
            .sign(&secrets, &Message::new(&id, now(), body))
            .unwrap();
        headers.insert("traceparent", bad.parse().unwrap());
        let response = client
            .post(&url)
            .headers(headers)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{bad}");
    }
    let seen = traces(&seen);
    assert_eq!(seen.len(), malformed.len());
    for ((raw, parsed), bad) in seen.iter().zip(malformed) {
        assert_eq!(raw.as_deref(), Some(bad));
        assert_eq!(parsed, &None, "{bad}");
    }
}

/// The handler runs in the layer's `webhook.receive` span, which carries
/// the sender's trace id and span id.
#[tokio::test(flavor = "current_thread")]
async fn the_handler_runs_in_a_span_that_carries_the_senders_trace() {
    use tower::ServiceExt as _;
    let logs = log_capture::LogBuffer::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let app = Router::new()
        .route(
            "/hook",
            post(|_: Verified| async {
                tracing::info!("handled");
                StatusCode::OK
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let body = br#"{"event":"kpi.alert"}"#;
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new("evt_traced", now(), body),
        )
        .unwrap();
    let mut request = axum::http::Request::post("/hook")
        .header("traceparent", TRACEPARENT)
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    request.headers_mut().extend(headers);
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = logs.text();
    let line = text.lines().find(|l| l.contains("handled")).unwrap();
    assert!(line.contains("webhook.receive{"), "{line}");
    assert!(line.contains("id=evt_traced"), "{line}");
    assert!(
        line.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
        "{line}"
    );
    assert!(line.contains("parent_span_id=00f067aa0ba902b7"), "{line}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}
