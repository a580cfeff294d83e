//! The sender's counters and histograms, read through a debugging recorder.
#![cfg(feature = "sender")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, MemoryStore, NewDestination, OutgoingEvent,
    RetryPolicy, Sender, metric_names,
};

#[tokio::test]
async fn counters_and_latency_histograms_are_emitted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    // /ok answers 200 after one 500; /bad always 500.
    let app = Router::new()
        .route(
            "/ok",
            post(move || {
                let c = c.clone();
                async move {
                    if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .route("/bad", post(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sender = Sender::builder(MemoryStore::new())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(5))
        .retry(
            RetryPolicy::new([Duration::from_millis(5)])
                .jitter(0.0)
                .unwrap(),
        )
        .build()
        .unwrap();
    for path in ["ok", "bad"] {
        sender
            .add_destination(NewDestination::new(
                format!("http://{addr}/{path}"),
                "s-0123456789abcdef0123456789",
            ))
            .await
            .unwrap();
    }
    sender
        .publish(OutgoingEvent::new("a", &1).unwrap())
        .await
        .unwrap();
    let _w = sender.start();
    loop {
        let pending = DeliveryQuery::new().status(DeliveryStatus::Pending);
        if sender.deliveries(&pending).await.unwrap().items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut counters = std::collections::HashMap::new();
    let mut histograms = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(v) => {
                histograms.insert(name, v.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    // ok: 500 then 200 (1 retry, 1 delivered); bad: 500, 500 (1 retry, 1 dead letter).
    assert_eq!(
        counters.get(metric_names::DELIVERED),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        counters.get(metric_names::RETRIED),
        Some(&2),
        "{counters:?}"
    );
    assert_eq!(
        counters.get(metric_names::DEAD_LETTERED),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(histograms.get(metric_names::ATTEMPT_SECONDS), Some(&4));
    assert_eq!(histograms.get(metric_names::DELIVERY_SECONDS), Some(&1));
}
