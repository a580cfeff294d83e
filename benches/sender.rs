//! Sender throughput and latency against a local axum receiver.
//!
//! `sender_sqlite_publish_1` publishes a batch of events (persisted in
//! SQLite) from one task, one after the other, and waits until the receiver
//! has every one; `sender_sqlite_publish_16` publishes the same batch from 16
//! concurrent tasks (as request handlers of a platform would), whose commits
//! the store groups; `plain_reqwest_loop` POSTs the
//! same bodies one after the other with reqwest; `plain_reqwest_16` keeps 16
//! POSTs in flight, as the sender does. Throughput is in deliveries
//! (elements) per second. After the throughput group, publish-to-receive
//! latency percentiles are printed for a paced and a burst load.
//!
//! The plain loop waits for each response before the next request, so its
//! rate follows how fast an idle CPU wakes up: on a small virtual machine it
//! is several times higher while something else keeps the CPUs busy (try
//! `nice -n 19 sh -c 'while :; do :; done' &` beside the bench). BENCHMARKS.md
//! reports both conditions.
//!
//! `cargo bench --features sqlite --bench sender -- --warm-up-time 1 --measurement-time 3`
// criterion's macros generate undocumented functions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use webhook_guard::sender::{
    AddressPolicy, NewDestination, OutgoingEvent, Sender, SenderHandle, SqliteStore,
};

const BATCH: usize = 1_000;
const BODY: &[u8] = br#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

#[derive(Clone, Default)]
struct Receiver {
    count: Arc<AtomicUsize>,
    /// `wait_for` is woken when `count` reaches this.
    target: Arc<AtomicUsize>,
    reached: Arc<tokio::sync::Notify>,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    record: Arc<std::sync::atomic::AtomicBool>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    if r.record.load(Ordering::Relaxed) {
        if let Some(id) = headers.get("x-webhook-id").and_then(|v| v.to_str().ok()) {
            r.arrivals
                .lock()
                .unwrap()
                .insert(id.to_owned(), Instant::now());
        }
    }
    let n = r.count.fetch_add(1, Ordering::AcqRel) + 1;
    if n >= r.target.load(Ordering::Acquire) {
        r.reached.notify_one();
    }
    StatusCode::OK
}

struct Rig {
    rt: tokio::runtime::Runtime,
    url: String,
    rx: Receiver,
    sender: Sender<SqliteStore>,
    _workers: SenderHandle,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::default();
    let (url, sender, workers) = rt.block_on(async {
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let sender = Sender::builder(SqliteStore::open(dir.path().join("bench.db")).unwrap())
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .per_destination_concurrency(16)
            .max_in_flight(16)
            .build()
            .unwrap();
        sender
            .add_destination(NewDestination::new(
                url.clone(),
                "bench-secret-0123456789abcdef",
            ))
            .await
            .unwrap();
        let workers = sender.start();
        (url, sender, workers)
    });
    Rig {
        rt,
        url,
        rx,
        sender,
        _workers: workers,
        _dir: dir,
    }
}

/// Waits until the receiver has had `target` requests in all (woken by the
/// receiver itself: a sleep-and-poll loop would add a timer tick, 1 ms in
/// tokio, to every iteration).
async fn wait_for(rx: &Receiver, target: usize) {
    rx.target.store(target, Ordering::Release);
    while rx.count.load(Ordering::Acquire) < target {
        rx.reached.notified().await;
    }
}

fn throughput(c: &mut Criterion) {
    let rig = rig();
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("deliveries");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);

    group.bench_function("plain_reqwest_loop", |b| {
        b.iter(|| {
            rig.rt.block_on(async {
                for _ in 0..BATCH {
                    let r = client.post(&rig.url).body(BODY).send().await.unwrap();
                    assert!(r.status().is_success());
                }
            });
        });
    });

    group.bench_function("plain_reqwest_16", |b| {
        b.iter(|| {
            rig.rt.block_on(async {
                futures_util::stream::iter(0..BATCH)
                    .map(|_| client.post(&rig.url).body(BODY).send())
                    .buffer_unordered(16)
                    .for_each(|r| async move { assert!(r.unwrap().status().is_success()) })
                    .await;
            });
        });
    });

    group.bench_function("sender_sqlite_publish_1", |b| {
        b.iter(|| {
            rig.rt.block_on(async {
                let target = rig.rx.count.load(Ordering::Acquire) + BATCH;
                for _ in 0..BATCH {
                    let e = OutgoingEvent::from_json("ingestion.completed", BODY).unwrap();
                    rig.sender.publish(e).await.unwrap();
                }
                wait_for(&rig.rx, target).await;
            });
        });
    });

    group.bench_function("sender_sqlite_publish_16", |b| {
        b.iter(|| {
            rig.rt.block_on(async {
                let target = rig.rx.count.load(Ordering::Acquire) + BATCH;
                futures_util::stream::iter(0..BATCH)
                    .map(|_| {
                        let e = OutgoingEvent::from_json("ingestion.completed", BODY).unwrap();
                        rig.sender.publish(e)
                    })
                    .buffer_unordered(16)
                    .for_each(|r| async move {
                        r.unwrap();
                    })
                    .await;
                wait_for(&rig.rx, target).await;
            });
        });
    });
    group.finish();

    latency(
        &rig,
        "paced (1 event / 2 ms)",
        500,
        Some(Duration::from_millis(2)),
    );
    latency(&rig, "burst (1,000 at once)", 1_000, None);
}

/// Publishes `n` events (paced or all at once) and prints the
/// publish-to-receive percentiles.
fn latency(rig: &Rig, label: &str, n: usize, pace: Option<Duration>) {
    rig.rx.arrivals.lock().unwrap().clear();
    rig.rx.record.store(true, Ordering::Relaxed);
    let published = rig.rt.block_on(async {
        let target = rig.rx.count.load(Ordering::Acquire) + n;
        let mut published = HashMap::with_capacity(n);
        for _ in 0..n {
            let e = OutgoingEvent::from_json("ingestion.completed", BODY).unwrap();
            let id = e.id().to_owned();
            published.insert(id, Instant::now());
            rig.sender.publish(e).await.unwrap();
            if let Some(p) = pace {
                tokio::time::sleep(p).await;
            }
        }
        wait_for(&rig.rx, target).await;
        published
    });
    rig.rx.record.store(false, Ordering::Relaxed);
    let arrivals = rig.rx.arrivals.lock().unwrap();
    let mut ms: Vec<f64> = published
        .iter()
        .map(|(id, at)| (arrivals[id] - *at).as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    eprintln!(
        "publish-to-receive latency, {label}, n={n}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        ms[ms.len() - 1]
    );
}

criterion_group!(benches, throughput);
criterion_main!(benches);
