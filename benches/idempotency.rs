//! Cost of the idempotency store operations per event.
//!
//! - `moka/begin+complete (new key)`: what the layer does for a new event
//!   (the key text is formatted inside the loop, as the layer does).
//! - `moka/begin (done key)`: what a duplicate delivery costs.
//! - `moka/baseline: plain insert (new key)`: one bare `moka::future::Cache`
//!   insert of a new key with the same key text, for a ratio on a shared,
//!   noisy machine.
//! - Each moka benchmark runs twice: `wall` (elapsed time) and `cpu`
//!   (CPU time of the benchmark thread, which leaves out the time the
//!   thread waits while other processes run on a shared machine).
//! - with `--features redis`, the same two against a local `redis-server`
//!   over loopback (round trips dominate); with `--features postgres`, the
//!   same against a local PostgreSQL (the test server: `fsync` and
//!   `synchronous_commit` off, so commits do not wait for the disk), in the
//!   same run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use webhook_guard::idempotency::{Begin, IdempotencyStore, MokaStore};

#[cfg(feature = "redis")]
#[path = "../tests/support/redis_server.rs"]
#[allow(unreachable_pub)]
mod redis_server;

#[cfg(feature = "postgres")]
#[path = "../tests/support/postgres_server.rs"]
#[allow(unreachable_pub, dead_code)]
mod postgres_server;

/// Scope and verifier parts of a real key, as `IdempotencyLayer` writes
/// them for the route `/webhooks` and one HMAC secret.
const KEY_PREFIX: &str = "9:/webhooks:37:hmac:0123456789abcdef0123456789abcdef:";

/// CPU time of the calling thread. The runtime is current-thread, so the
/// store's work (moka's housekeeping included) all runs on it.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, start: Self::Intermediate) -> Self::Value {
        start.elapsed()
    }
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

const LEASE: Duration = Duration::from_secs(300);
const TTL: Duration = Duration::from_secs(86_400);

async fn begin_complete(store: &dyn IdempotencyStore, n: u64) {
    let key = format!("{KEY_PREFIX}evt_{n}");
    let Begin::New(token) = store.begin(&key, LEASE).await.unwrap() else {
        panic!("distinct keys are new")
    };
    assert!(store.complete(&key, token, TTL).await.unwrap());
}

fn bench_store<M: Measurement + 'static>(
    c: &mut Criterion<M>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: &dyn IdempotencyStore,
) {
    let mut group = c.benchmark_group(name);
    let next = AtomicU64::new(0);
    group.bench_function("begin+complete (new key)", |b| {
        b.to_async(rt)
            .iter(|| begin_complete(store, next.fetch_add(1, Ordering::Relaxed)));
    });
    rt.block_on(begin_complete(store, u64::MAX));
    let done_key = format!("{KEY_PREFIX}evt_{}", u64::MAX);
    group.bench_function("begin (done key)", |b| {
        b.to_async(rt).iter(|| async {
            assert_eq!(store.begin(&done_key, LEASE).await.unwrap(), Begin::Done);
        });
    });
    group.finish();
}

fn moka_side_by_side<M: Measurement + 'static>(c: &mut Criterion<M>, clock: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let moka = MokaStore::new(1_000_000);
    bench_store(c, &format!("moka ({clock})"), &rt, &moka);

    let plain: moka::future::Cache<String, u64> = moka::future::Cache::builder()
        .max_capacity(1_000_000)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .time_to_live(TTL)
        .build();
    let next = AtomicU64::new(0);
    c.bench_function(
        &format!("moka ({clock})/baseline: plain insert (new key)"),
        |b| {
            b.to_async(&rt).iter(|| async {
                let n = next.fetch_add(1, Ordering::Relaxed);
                plain.insert(format!("{KEY_PREFIX}evt_{n}"), n).await;
            });
        },
    );
}

fn moka_wall(c: &mut Criterion) {
    moka_side_by_side(c, "wall");
}

fn moka_cpu(c: &mut Criterion<ThreadCpu>) {
    moka_side_by_side(c, "cpu");
}

/// The shared stores side by side in one run, each against its own local
/// server over loopback: Redis with `--features redis`, PostgreSQL with
/// `--features postgres`.
fn shared_stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    #[cfg(feature = "redis")]
    {
        let server = redis_server::RedisServer::start();
        let redis = rt
            .block_on(webhook_guard::idempotency::RedisStore::connect(
                &server.url(),
            ))
            .unwrap();
        bench_store(c, "redis (wall)", &rt, &redis);
    }
    #[cfg(feature = "postgres")]
    {
        let server = postgres_server::PostgresServer::start();
        let postgres = rt
            .block_on(webhook_guard::idempotency::PgIdempotencyStore::connect(
                &server.url(),
            ))
            .unwrap();
        bench_store(c, "postgres (wall)", &rt, &postgres);
    }
    let _ = (c, &rt);
}

criterion_group!(wall, moka_wall, shared_stores);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = moka_cpu
}
criterion_main!(wall, cpu);
