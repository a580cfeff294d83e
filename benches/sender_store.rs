//! The delivery stores side by side: one delivery's whole life in the store
//! (enqueue, claim, record a delivered attempt), in SQLite (a file, WAL,
//! `synchronous = NORMAL`) and in PostgreSQL (a server started for the
//! bench with `fsync=off`, `synchronous_commit=off`, over loopback TCP).
//! Neither waits for the disk on commit, so the comparison is of the
//! engines and the round trips. `_1` runs the cycles one after the other
//! from one task; `_16` from 16 concurrent tasks (SQLite groups their
//! commits; PostgreSQL runs them on 16 pooled connections). Throughput is in
//! deliveries (elements) per second. No HTTP.
//!
//! `cargo bench --features sqlite,postgres --bench sender_store -- --warm-up-time 1 --measurement-time 3`
// criterion's macros generate undocumented functions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use webhook_guard::sender::{
    AddressPolicy, DeliveryAttempt, DeliveryStore, NewDelivery, NewDestination, NextStep,
    OutgoingEvent, PgStore, Sender, SqliteStore,
};
use webhook_guard::{Clock as _, SystemClock};

const BATCH: usize = 400;
const BODY: &[u8] = br#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

/// One delivery through the store: enqueued, claimed (this one or another
/// task's) and recorded as delivered.
async fn cycle<S: DeliveryStore>(store: &S) {
    let now = SystemClock.now_millis();
    let e = OutgoingEvent::from_json("ingestion.completed", BODY).unwrap();
    let d = NewDelivery::new(e.id(), "dst", now);
    store.enqueue(&e, now, &[d]).await.unwrap();
    let lease = now + 60_000;
    for claimed in store.claim_due(now, 1, lease).await.unwrap() {
        let attempt = DeliveryAttempt::new(&claimed.id, 1, now);
        store
            .record_attempt(&attempt, lease, &NextStep::Delivered)
            .await
            .unwrap();
    }
}

async fn with_destination<S: DeliveryStore + Clone>(store: S) -> S {
    Sender::builder(store.clone())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .build()
        .unwrap()
        .add_destination(
            NewDestination::new("http://127.0.0.1:9/", "bench-secret-0123456789abcdef").id("dst"),
        )
        .await
        .unwrap();
    store
}

fn bench_store<S: DeliveryStore + Clone>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &S,
) {
    group.bench_function(format!("{name}_1"), |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    cycle(store).await;
                }
            });
        });
    });
    group.bench_function(format!("{name}_16"), |b| {
        b.iter(|| {
            rt.block_on(async {
                futures_util::stream::iter(0..BATCH)
                    .map(|_| cycle(store))
                    .buffer_unordered(16)
                    .collect::<Vec<()>>()
                    .await;
            });
        });
    });
}

fn stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pg = postgres_server::PostgresServer::start();
    let url = pg.create_database("bench");
    let (sqlite, postgres) = rt.block_on(async {
        let sqlite = SqliteStore::open(dir.path().join("bench.db")).unwrap();
        let postgres = PgStore::connect(&url).await.unwrap();
        (
            with_destination(sqlite).await,
            with_destination(postgres).await,
        )
    });
    let mut group = c.benchmark_group("store_cycle");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    bench_store(&mut group, &rt, "sqlite", &sqlite);
    bench_store(&mut group, &rt, "postgres", &postgres);
    group.finish();
}

criterion_group!(benches, stores);
criterion_main!(benches);
