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

#[tokio::test(flavor = "current_thread")]
async fn publish_in_a_span_sends_its_trace_and_the_receiver_continues_it() {
    let _guard = traced();

    let (url, seen) = flaky_receiver(SECRET, 0).await;
    let sender = Sender::builder(MemoryStore::new())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(&url, SECRET))
        .await
        .unwrap();

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
