//! With the `opentelemetry` feature and a `tracing-opentelemetry` layer,
//! `publish` inside a span sends that span's trace without any code, and
//! the receiver's `webhook.receive` span continues it: the handler runs in
//! the sender's trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flaky_receiver;

use std::time::{Duration, Instant};

use flaky_receiver::flaky_receiver;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;
use webhook_guard::sender::{AddressPolicy, MemoryStore, NewDestination, OutgoingEvent, Sender};
use webhook_guard::trace_context::TraceParent;

const SECRET: &str = "trace-context-otel-secret-0123456789";

/// OpenTelemetry spans for every `tracing` span of this thread, until the
/// guard drops (the tests run on a current-thread runtime).
fn traced() -> tracing::subscriber::DefaultGuard {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_default(subscriber)
}

/// A sender with one destination, `url` (on loopback), signing with
/// `SECRET`.
async fn sender_to(url: &str) -> Sender<MemoryStore> {
    let sender = Sender::builder(MemoryStore::new())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    sender
}

#[tokio::test(flavor = "current_thread")]
async fn publish_in_a_span_sends_its_trace_and_the_receiver_continues_it() {
    let _guard = traced();

    let (url, seen) = flaky_receiver(SECRET, 0).await;
    let sender = sender_to(&url).await;

    // Outside any span: no trace to send.
    assert_eq!(TraceParent::current(), None);
    let checkout = tracing::info_span!("checkout");
    let trace = TraceParent::of_span(&checkout).expect("the span has an OpenTelemetry trace");
    let event = OutgoingEvent::new("order.created", &serde_json::json!({"id": 42})).unwrap();
    let published = sender.publish(event).instrument(checkout).await.unwrap();
    assert_eq!(published[0].traceparent.as_ref(), Some(&trace));

    let workers = sender.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.shutdown().await;

    let seen = seen.lock().unwrap();
    let (headers, verified) = &seen[0];
    assert_eq!(headers["traceparent"], trace.as_str());
    assert_eq!(verified.traceparent(), Some(&trace));
}

/// The handler's own span is a child, in the sender's trace, of the span
/// that sent the request.
#[tokio::test(flavor = "current_thread")]
async fn the_handler_runs_in_the_senders_trace() {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    use webhook_guard::{Message, Scheme, SecretSet, Verified, VerifyLayer};

    let _guard = traced();

    let inside: Arc<Mutex<Option<TraceParent>>> = Arc::default();
    let i = Arc::clone(&inside);
    let app = Router::new()
        .route(
            "/hook",
            post(move |_: Verified| {
                let i = Arc::clone(&i);
                async move {
                    *i.lock().unwrap() = TraceParent::current();
                    StatusCode::OK
                }
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = br#"{"event":"kpi.alert"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new("evt_otel", now.try_into().unwrap(), body),
        )
        .unwrap();
    let response = reqwest::Client::new()
        .post(&url)
        .headers(headers)
        .header("traceparent", sent)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let inside = inside
        .lock()
        .unwrap()
        .clone()
        .expect("the handler is traced");
    assert_eq!(inside.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(inside.parent_id(), "00f067aa0ba902b7", "a span of its own");
}

/// With an inbox, the handler runs later in a worker, outside the request:
/// an event published inside a span travels sender -> receiver -> inbox
/// store -> worker, and the handler's span is in the sender's trace.
#[cfg(feature = "inbox")]
#[tokio::test(flavor = "current_thread")]
async fn the_inbox_handler_runs_in_the_senders_trace() {
    use std::sync::{Arc, Mutex};
    use webhook_guard::inbox::{Inbox, InboxEvent, MemoryInboxStore};
    use webhook_guard::{SecretSet, VerifyLayer};

    let _guard = traced();

    let inbox = Inbox::builder(MemoryInboxStore::new())
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(|| async {}))
        .layer(inbox.layer())
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // What the handler was given, and the trace it runs in.
    type Seen = Arc<Mutex<Option<(Option<TraceParent>, Option<TraceParent>)>>>;
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let inbox_workers = inbox.start(move |e: InboxEvent<serde_json::Value>| {
        *s.lock().unwrap() = Some((e.traceparent().cloned(), TraceParent::current()));
        async { Ok::<(), String>(()) }
    });

    let sender = sender_to(&url).await;
    let checkout = tracing::info_span!("checkout");
    let trace = TraceParent::of_span(&checkout).expect("the span has an OpenTelemetry trace");
    let event = OutgoingEvent::new("order.created", &serde_json::json!({"id": 42})).unwrap();
    sender.publish(event).instrument(checkout).await.unwrap();
    let sender_workers = sender.start();

    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the inbox handler never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sender_workers.shutdown().await;
    inbox_workers.shutdown().await;

    let (given, inside) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(given.as_ref(), Some(&trace), "the stored traceparent");
    let inside = inside.expect("the handler is traced");
    assert_eq!(inside.trace_id(), trace.trace_id(), "the sender's trace");
    assert_ne!(inside.parent_id(), trace.parent_id(), "a span of its own");
}
