//! The console's `GET /api/health` over HTTP with 1,000,000 deliveries in
//! the history: 20 destinations, a week of deliveries (about 143,000 in
//! the last day), 6 % failed, 1 % pending. The history is loaded in bulk in
//! each store's own schema (SQLite: a file, one transaction; PostgreSQL: a
//! server started for the bench, `generate_series`), and the health rollup
//! is filled by the same statements that fill it when a store is migrated
//! with history in it. Prints how long each load took, then measures one
//! health request (the figures of every destination) per iteration.
//!
//! `cargo bench --features console,sqlite,postgres --bench console_health -- --warm-up-time 1 --measurement-time 3`
// criterion's macros generate undocumented functions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use webhook_guard::sender::console::Console;
use webhook_guard::sender::{
    AddressPolicy, DeliveryStore, NewDestination, PgStore, Sender, SqliteStore,
};
use webhook_guard::{Clock as _, SystemClock};

const DELIVERIES: i64 = 1_000_000;
const DESTINATIONS: i64 = 20;
/// The history spans a week, newest first.
const SPAN_MS: i64 = 7 * 24 * 3_600_000;

/// The rows of delivery `i`, as SQL expressions over `i` and `{now}`:
/// created at `t`, pending (1 %), dead-lettered (5 %) or delivered; one
/// attempt each, failed for the first 6 of every 100.
fn history_sql(series: &str, now: i64, pg: bool) -> String {
    let (dst, text) = if pg {
        ("'dst_' || lpad((i % 20)::text, 2, '0')", "::text")
    } else {
        ("'dst_' || printf('%02d', i % 20)", "")
    };
    let t = format!("({now} - i * {SPAN_MS} / {DELIVERIES})");
    let (events, deliveries, attempts) = if pg {
        ("sender_events", "sender_deliveries", "sender_attempts")
    } else {
        ("events", "deliveries", "attempts")
    };
    let seq = if pg { "" } else { "seq, " };
    let seq_value = if pg { "" } else { "i + 1, " };
    let (body, n) = if pg {
        ("'\\x7b7d'::bytea", "")
    } else {
        ("X'7B7D'", "1, ")
    };
    let n_col = if pg { "" } else { "n, " };
    format!(
        "INSERT INTO {events} (id, event_type, body, created_at_ms) \
         SELECT 'evt_' || i{text}, 'kpi.alert', {body}, {t} FROM {series};
         INSERT INTO {deliveries} ({seq}id, event_id, destination_id, status, attempts, \
             next_attempt_at_ms, created_at_ms, updated_at_ms, delivered_at_ms, \
             dead_lettered_at_ms, last_error) \
         SELECT {seq_value}'dlv_' || i{text}, 'evt_' || i{text}, {dst}, \
             CASE WHEN i % 100 = 0 THEN 'pending' WHEN i % 100 < 6 THEN 'dead_lettered' \
             ELSE 'delivered' END, 1, \
             CASE WHEN i % 100 = 0 THEN {t} + 60000 * (i % 7) - 180000 END, {t}, {t}, \
             CASE WHEN i % 100 >= 6 THEN {t} END, \
             CASE WHEN i % 100 BETWEEN 1 AND 5 THEN {t} END, \
             CASE WHEN i % 100 < 6 THEN 'the endpoint answered 500' END \
         FROM {series};
         INSERT INTO {attempts} (delivery_id, {n_col}attempt, started_at_ms, duration_ms, \
             status_code, error_class, error) \
         SELECT 'dlv_' || i{text}, {n}1, {t}, \
             CASE WHEN i % 100 < 6 THEN 100 + (i * 31) % 15000 ELSE 3 + (i * 7919) % 997 END, \
             CASE WHEN i % 100 < 6 AND i % 2 = 1 THEN NULL WHEN i % 100 < 6 THEN 500 ELSE 200 END, \
             CASE WHEN i % 100 < 6 AND i % 2 = 1 THEN 'connect' WHEN i % 100 < 6 THEN 'status' END, \
             CASE WHEN i % 100 < 6 THEN 'the endpoint answered 500' END \
         FROM {series};"
    )
}

/// The statements of a rollup migration that fill it from the history.
fn backfill(migration: &str, first: &str) -> String {
    let at = migration.find(first).expect("the backfill statements");
    migration[at..].to_owned()
}

async fn add_destinations<S: DeliveryStore + Clone>(store: &S) {
    let sender = Sender::builder(store.clone())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .build()
        .unwrap();
    for i in 0..DESTINATIONS {
        let url = format!("http://127.0.0.1:9/{i}");
        let new =
            NewDestination::new(url, "bench-secret-0123456789abcdef").id(format!("dst_{i:02}"));
        sender.add_destination(new).await.unwrap();
    }
}

fn load_sqlite(path: &std::path::Path, now: i64) {
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    let series = format!(
        "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {}) \
         SELECT i FROM s)",
        DELIVERIES - 1
    );
    tx.execute_batch(&history_sql(&series, now, false)).unwrap();
    let rollup = include_str!("../src/sender/store/schema/4.sql");
    tx.execute_batch(&backfill(rollup, "INSERT INTO attempt_minutes"))
        .unwrap();
    tx.commit().unwrap();
    eprintln!(
        "sqlite: loaded {DELIVERIES} deliveries in {:?}",
        started.elapsed()
    );
}

async fn load_postgres(url: &str, now: i64) {
    let started = Instant::now();
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let series = format!("generate_series(0::bigint, {}) AS s(i)", DELIVERIES - 1);
    let rollup = include_str!("../migrations/postgres/sender/0004_health_rollup.sql");
    let sql = format!(
        "BEGIN; {} {} COMMIT; ANALYZE;",
        history_sql(&series, now, true),
        backfill(rollup, "INSERT INTO sender_attempt_minutes")
    );
    client.batch_execute(&sql).await.unwrap();
    eprintln!(
        "postgres: loaded {DELIVERIES} deliveries in {:?}",
        started.elapsed()
    );
}

/// Serves the console over `store` on loopback; the health API's URL.
async fn serve_console<S: DeliveryStore + Clone>(store: S) -> String {
    let sender = Sender::builder(store).build().unwrap();
    let app = Console::new(sender).allow_unauthenticated().router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/api/health")
}

async fn get_health(client: &reqwest::Client, url: &str) -> usize {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().len()
}

fn health(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let now = SystemClock.now_millis();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("health.db");
    let pg = postgres_server::PostgresServer::start();
    let pg_url = pg.create_database("health");
    let (sqlite_api, pg_api) = rt.block_on(async {
        let sqlite = SqliteStore::open(&path).unwrap();
        add_destinations(&sqlite).await;
        drop(sqlite);
        load_sqlite(&path, now);
        let postgres = PgStore::connect(&pg_url).await.unwrap();
        add_destinations(&postgres).await;
        load_postgres(&pg_url, now).await;
        let sqlite = SqliteStore::open(&path).unwrap();
        (serve_console(sqlite).await, serve_console(postgres).await)
    });
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("console_health_1m");
    group.sample_size(20);
    for (name, url) in [("sqlite", &sqlite_api), ("postgres", &pg_api)] {
        let bytes = rt.block_on(get_health(&client, url));
        eprintln!("{name}: GET /api/health answers {bytes} bytes");
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(get_health(&client, url)));
        });
        // For scale on a loaded machine: the plain destination list.
        let list = url.replace("/api/health", "/api/destinations");
        group.bench_function(format!("{name}_destinations_list"), |b| {
            b.iter(|| rt.block_on(get_health(&client, &list)));
        });
    }
    group.finish();
}

criterion_group!(benches, health);
criterion_main!(benches);
