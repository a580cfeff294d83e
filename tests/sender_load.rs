//! Load: 10,000 events to 10 destinations over SQLite, 2 of the destinations
//! failing half of the time; every delivery ends delivered or dead-lettered,
//! and the receivers processed exactly the delivered ones.
//!
//! About 5 s in a debug build; for figures use a release build:
//! `cargo test --release --all-features --test sender_load -- --nocapture`
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, EventFilter, NewDestination, OutgoingEvent,
    RetryPolicy, Sender, SqliteStore,
};
use webhook_guard::{SecretSet, Verified, VerifyLayer};

const EVENTS: usize = 10_000;
const DESTINATIONS: usize = 10;
const FLAKY: usize = 2;

#[derive(Clone, Default)]
struct Receivers {
    /// (destination index, event id) -> times processed.
    processed: Arc<Mutex<HashMap<(usize, String), usize>>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

async fn receive(State(r): State<Receivers>, Path(dest): Path<usize>, v: Verified) -> StatusCode {
    r.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = (dest, v.id().to_owned());
    let mut p = r.processed.lock().unwrap();
    if p.contains_key(&key) {
        return StatusCode::OK; // duplicate: already processed
    }
    if dest < FLAKY && fastrand::bool() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    p.insert(key, 1);
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_to_ten_destinations_all_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receivers::default();
    let app = Router::new()
        .route("/hook/{dest}", post(receive))
        .with_state(rx.clone())
        .layer(VerifyLayer::new(
            SecretSet::single("load-secret-0123456789abcdef").unwrap(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sender = Sender::builder(SqliteStore::open(dir.path().join("load.db")).unwrap())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(10))
        .per_destination_concurrency(8)
        .max_in_flight(64)
        .circuit_breaker(8, Duration::from_millis(50))
        .retry(
            RetryPolicy::new([
                Duration::from_millis(10),
                Duration::from_millis(20),
                Duration::from_millis(40),
            ])
            .jitter(0.2)
            .unwrap(),
        )
        .build()
        .unwrap();
    // Destination k receives event types `load.k`: 1,000 events each.
    for k in 0..DESTINATIONS {
        sender
            .add_destination(
                NewDestination::new(
                    format!("http://{addr}/hook/{k}"),
                    "load-secret-0123456789abcdef",
                )
                .id(format!("dst_{k}"))
                .events(EventFilter::only([format!("load.{k}")])),
            )
            .await
            .unwrap();
    }
    let started = Instant::now();
    let workers = sender.start();
    for n in 0..EVENTS {
        let e = OutgoingEvent::new(
            format!("load.{}", n % DESTINATIONS),
            &serde_json::json!({"n": n}),
        )
        .unwrap();
        assert_eq!(sender.publish(e).await.unwrap().len(), 1);
    }
    let published = started.elapsed();
    loop {
        let pending = DeliveryQuery::new()
            .status(DeliveryStatus::Pending)
            .limit(1);
        if sender.deliveries(&pending).await.unwrap().items.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "still pending after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = started.elapsed();
    workers.shutdown().await;

    // Account for everything.
    let mut delivered = HashSet::new();
    let mut dead = 0usize;
    let mut dead_on_healthy = 0usize;
    let mut total = 0usize;
    let mut query = DeliveryQuery::new().limit(1000);
    loop {
        let page = sender.deliveries(&query).await.unwrap();
        for d in &page.items {
            total += 1;
            let k: usize = d.destination_id.trim_start_matches("dst_").parse().unwrap();
            match d.status {
                DeliveryStatus::Delivered => {
                    delivered.insert((k, d.event_id.clone()));
                }
                DeliveryStatus::DeadLettered => {
                    dead += 1;
                    if k >= FLAKY {
                        dead_on_healthy += 1;
                    }
                }
                other => panic!("{} ended {other:?}", d.id),
            }
        }
        if page.next_cursor.is_none() {
            break;
        }
        query = query.after_page(&page);
    }
    let processed = rx.processed.lock().unwrap().clone();
    assert_eq!(total, EVENTS);
    assert_eq!(delivered.len() + dead, EVENTS);
    assert_eq!(dead_on_healthy, 0);
    assert!(processed.values().all(|&c| c == 1));
    let processed: HashSet<_> = processed.into_keys().collect();
    assert_eq!(processed, delivered);
    let requests = rx.requests.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "load: {EVENTS} events, {DESTINATIONS} destinations ({FLAKY} failing half the time): \
         published in {published:?}, all settled in {finished:?} ({:.0} deliveries/s); \
         {} delivered, {dead} dead-lettered, {requests} requests",
        EVENTS as f64 / finished.as_secs_f64(),
        delivered.len()
    );
}
