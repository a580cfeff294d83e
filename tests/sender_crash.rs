//! A sender process killed mid-delivery and restarted loses nothing: every
//! event ends delivered (processed once by a receiver that deduplicates on
//! the event id) or in the dead letter queue.
//!
//! The parent test re-runs this test binary as a child process (the ignored
//! `crash_child` test, selected by name) that runs a sender on a SQLite file.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, NewDestination, OutgoingEvent, RetryPolicy,
    Sender, SqliteStore,
};
use webhook_guard::{SecretSet, Verified, VerifyLayer};

const EVENTS: usize = 200;
const SECRET: &str = "crash-secret-0123456789abcdef";

/// Events whose number is a multiple of this always fail: they must end in
/// the dead letter queue.
const FAILING_EVERY: usize = 10;

#[test]
#[ignore = "run as a child process by sender_survives_being_killed_mid_delivery"]
fn crash_child() {
    let db = std::env::var("WG_DB").expect("WG_DB");
    let url = std::env::var("WG_URL").expect("WG_URL");
    let publish: usize = std::env::var("WG_PUBLISH")
        .expect("WG_PUBLISH")
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sender = Sender::builder(SqliteStore::open(&db).unwrap())
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .poll_interval(Duration::from_millis(20))
            .lease(Duration::from_secs(1))
            .per_destination_concurrency(8)
            .circuit_breaker(1_000, Duration::from_secs(1))
            .retry(
                RetryPolicy::new([
                    Duration::from_millis(50),
                    Duration::from_millis(100),
                    Duration::from_millis(200),
                ])
                .jitter(0.2)
                .unwrap(),
            )
            .build()
            .unwrap();
        if publish > 0 {
            sender
                .add_destination(NewDestination::new(url, SECRET).id("dst_crash"))
                .await
                .unwrap();
            for n in 0..publish {
                let e = OutgoingEvent::new("crash.test", &serde_json::json!({ "n": n }))
                    .unwrap()
                    .with_id(format!("evt_{n}"))
                    .unwrap();
                sender.publish(e).await.unwrap();
            }
        }
        let _workers = sender.start();
        std::future::pending::<()>().await;
    });
}

#[derive(Clone, Default)]
struct Dedup {
    /// How many times each event id was processed (first sight only).
    processed: Arc<Mutex<HashMap<String, usize>>>,
    /// Every verified request, duplicates included.
    requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
}

async fn receive(State(r): State<Dedup>, v: Verified) -> StatusCode {
    r.requests.fetch_add(1, Ordering::SeqCst);
    let n: usize = v.id().trim_start_matches("evt_").parse().unwrap();
    if n % FAILING_EVERY == 0 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let first = {
        let mut p = r.processed.lock().unwrap();
        let seen = p.contains_key(v.id());
        if !seen {
            p.insert(v.id().to_owned(), 1);
        }
        !seen
    };
    if first {
        // Processing takes a while, so the kill lands mid-delivery.
        r.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        r.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    StatusCode::OK
}

fn spawn_child(db: &std::path::Path, url: &str, publish: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WG_DB", db)
        .env("WG_URL", url)
        .env("WG_PUBLISH", publish.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pending_count(db: &std::path::Path) -> usize {
    let store = SqliteStore::open(db).unwrap();
    let sender = Sender::builder(store).build().unwrap();
    let q = DeliveryQuery::new()
        .status(DeliveryStatus::Pending)
        .limit(1000);
    sender.deliveries(&q).await.unwrap().items.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_survives_being_killed_mid_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sender.db");
    let rx = Dedup::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(rx.clone())
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // First life: publish everything, start delivering, die mid-flight.
    let mut first = spawn_child(&db, &url, EVENTS);
    let processed_len = || rx.processed.lock().unwrap().len();
    wait_until("a third of the events", Duration::from_secs(60), || {
        processed_len() >= EVENTS / 3 && rx.in_flight.load(Ordering::SeqCst) > 0
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = processed_len();
    assert!(
        at_kill < EVENTS - EVENTS / FAILING_EVERY,
        "killed before the end"
    );

    // Second life: no publishing, just the store.
    let mut second = spawn_child(&db, &url, 0);
    let start = Instant::now();
    loop {
        if pending_count(&db).await == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "deliveries still pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();

    // Every event accounted for: delivered and processed once, or dead-lettered.
    let sender = Sender::builder(SqliteStore::open(&db).unwrap())
        .build()
        .unwrap();
    let all = sender
        .deliveries(&DeliveryQuery::new().limit(1000))
        .await
        .unwrap()
        .items;
    assert_eq!(
        all.len(),
        EVENTS,
        "one delivery per event, none lost or doubled"
    );
    let processed = rx.processed.lock().unwrap().clone();
    let mut delivered = HashSet::new();
    let mut dead = HashSet::new();
    for d in &all {
        let n: usize = d.event_id.trim_start_matches("evt_").parse().unwrap();
        match d.status {
            DeliveryStatus::Delivered => {
                assert_ne!(n % FAILING_EVERY, 0);
                delivered.insert(d.event_id.clone());
            }
            DeliveryStatus::DeadLettered => {
                assert_eq!(n % FAILING_EVERY, 0, "{d:?}");
                assert!(d.last_error.as_deref().unwrap().contains("500"));
                dead.insert(d.event_id.clone());
            }
            other => panic!("{} ended {other:?}", d.event_id),
        }
    }
    assert_eq!(dead.len(), EVENTS / FAILING_EVERY);
    assert_eq!(delivered.len(), EVENTS - EVENTS / FAILING_EVERY);
    let processed_ids: HashSet<String> = processed.keys().cloned().collect();
    assert_eq!(
        processed_ids, delivered,
        "the receiver processed exactly the delivered events"
    );
    assert!(processed.values().all(|&c| c == 1));
    let requests = rx.requests.load(Ordering::SeqCst);
    eprintln!(
        "crash test: killed after {at_kill} processed; {requests} requests in all \
         ({} processed, {} answered 500, the rest re-sent after the kill and deduplicated)",
        processed.len(),
        (EVENTS / FAILING_EVERY) * 4
    );
}
