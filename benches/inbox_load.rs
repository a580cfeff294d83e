//! The inbox under load, over real HTTP on loopback, with the generator of
//! `benches/load.rs` (every request a distinct, validly signed event).
//!
//! Per round, one after the other in one run:
//!
//! 1. **accept**: requests per second and server CPU per request for a bare
//!    axum endpoint (`plain`), `VerifyLayer` only (`verify`), and
//!    `VerifyLayer` + `InboxLayer` over SQLite (a file, WAL,
//!    `synchronous = NORMAL`) and over PostgreSQL (a real server started
//!    for the run, as the tests start it). The inbox workers are not running
//!    here: this is the cost of taking an event in.
//! 2. **process**: the workers (concurrency 8) then drain what was accepted
//!    with an empty handler: events per second and CPU per event.
//! 3. **latency**: a paced load (`LOAD_LATENCY_RATE` events/s, default 500)
//!    with the workers running; the time from the inbox's receipt of the
//!    verified request (the start of its insert, when `received_at` is
//!    taken) to the handler's start, p50 and p99.
//!
//! Server and client share the process, each with one tokio worker thread;
//! "server CPU" is the process's CPU time (every thread: the server's
//! runtime, SQLite's store thread and checkpointer) minus the client
//! thread's, divided by the requests answered. PostgreSQL's own CPU (its
//! postmaster and backends) is reported beside it.
//!
//! Settings (environment): `LOAD_SECS` per mode (default 3), `LOAD_ROUNDS`
//! (default 2), `LOAD_CONNS` (default 32), `LOAD_LATENCY_RATE` (default
//! 500), `LOAD_ONLY=plain|verify|sqlite|postgres` one mode only.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use webhook_guard::inbox::store::{Insert, NewInboxEvent, Settle};
use webhook_guard::inbox::{
    Inbox, InboxDepth, InboxEntry, InboxEvent, InboxQuery, InboxStore, InboxStoreError,
    PgInboxStore, ReplaySelection, SqliteInboxStore,
};
use webhook_guard::{FixedClock, VerifyLayer};

#[path = "support/load_client.rs"]
#[allow(dead_code)]
mod load_client;

#[path = "../tests/support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;

use load_client::{
    Load, NOW, Tally, answered_ok, drive, env_u64, one_worker, process_cpu_secs,
    process_tree_cpu_secs, secrets,
};
use postgres_server::PostgresServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Verify,
    Sqlite,
    Postgres,
}

const MODES: [Mode; 4] = [Mode::Plain, Mode::Verify, Mode::Sqlite, Mode::Postgres];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Verify => "verify",
            Mode::Sqlite => "sqlite",
            Mode::Postgres => "postgres",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "bare axum",
            Mode::Verify => "verify only",
            Mode::Sqlite => "verify + inbox (SQLite)",
            Mode::Postgres => "verify + inbox (PostgreSQL)",
        }
    }
}

/// A stored inbox answers `{"accepted":true,..}`.
fn accepted(parts: &http::response::Parts, body: &[u8]) -> bool {
    parts.status == 200
        && parts
            .headers
            .get(webhook_guard::inbox::DUPLICATE_HEADER)
            .is_none()
        && body.starts_with(br#"{"accepted":true"#)
}

fn verify() -> VerifyLayer {
    VerifyLayer::new(secrets()).clock(FixedClock::at(NOW))
}

/// The empty handler of the `plain` and `verify` modes; never called under
/// the inbox, which answers itself.
fn app() -> Router {
    Router::new().route(
        "/webhooks",
        post(|body: Bytes| async move { if body.is_empty() { "empty" } else { "ok" } }),
    )
}

fn router<S: InboxStore>(mode: Mode, inbox: Option<&Inbox<S>>) -> Router {
    match (mode, inbox) {
        (Mode::Plain, _) => app(),
        (_, None) => app().layer(verify()),
        (_, Some(inbox)) => app().layer(inbox.layer()).layer(verify()),
    }
}

/// Serves `router` on the runtime `server`; returns the address.
fn serve(server: &tokio::runtime::Runtime, router: Router) -> SocketAddr {
    server.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    })
}

/// Stops a server runtime and waits until its tasks are gone: the store's
/// pooled PostgreSQL connections it opened are then seen as closed, not
/// handed to the next phase to fail there with "connection closed".
fn stop_server(server: tokio::runtime::Runtime) {
    server.shutdown_timeout(Duration::from_secs(5));
}

/// The figures of one mode in one round.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    rps: f64,
    cpu_us: f64,
    pg_cpu_us: f64,
    processed_per_sec: f64,
    process_cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// CPU seconds of the server side: this process, and PostgreSQL's.
struct CpuMeter {
    postgres: Option<u32>,
}

impl CpuMeter {
    fn read(&self) -> (f64, f64) {
        let pg = self.postgres.map_or(0.0, process_tree_cpu_secs);
        (process_cpu_secs(), pg)
    }
}

/// Accept phase: load on `router`; requests/s and CPU µs per request.
fn accept_phase(router: Router, load: Load, tag: &str, meter: &CpuMeter) -> (Figures, Tally) {
    let server = one_worker();
    let addr = serve(&server, router);
    let client = one_worker();
    let (cpu0, pg0) = meter.read();
    let (tally, elapsed, client_cpu) = client.block_on(drive(addr, tag, load));
    let (cpu1, pg1) = meter.read();
    client.shutdown_background();
    stop_server(server);
    let n = tally.processed.max(1) as f64;
    let figures = Figures {
        rps: n / elapsed,
        cpu_us: (cpu1 - cpu0 - client_cpu) * 1e6 / n,
        pg_cpu_us: (pg1 - pg0) * 1e6 / n,
        ..Figures::default()
    };
    (figures, tally)
}

/// Process phase: the workers drain `pending` events with an empty
/// handler; events/s and CPU µs per event (this process and PostgreSQL).
fn process_phase<S: InboxStore>(store: S, pending: u64, meter: &CpuMeter) -> (f64, f64) {
    let rt = one_worker();
    let done = Arc::new(AtomicU64::new(0));
    let (cpu0, pg0) = meter.read();
    let started = Instant::now();
    rt.block_on(async {
        let inbox = Inbox::builder(store).build().await.unwrap();
        assert_eq!(inbox.unprocessed(), pending);
        let seen = Arc::clone(&done);
        let workers = inbox.start(move |_: InboxEvent<serde_json::Value>| {
            seen.fetch_add(1, Ordering::Relaxed);
            async { Ok::<(), std::convert::Infallible>(()) }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < pending && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        workers.shutdown().await;
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, pg1) = meter.read();
    let n = done.load(Ordering::Relaxed);
    assert_eq!(n, pending, "the workers processed {n} of {pending} events");
    let n = n.max(1) as f64;
    (n / elapsed, ((cpu1 - cpu0) + (pg1 - pg0)) * 1e6 / n)
}

/// A store that notes when each event reached it (the inbox has verified
/// the request and asks the store to insert it), for the latency phase;
/// every call goes to the store it wraps.
#[derive(Clone)]
struct Timed<S> {
    store: S,
    stored_at: Arc<Mutex<HashMap<String, Instant>>>,
}

impl<S: InboxStore> InboxStore for Timed<S> {
    async fn insert(&self, event: &NewInboxEvent) -> Result<Insert, InboxStoreError> {
        // Noted before the insert: a worker may claim the event before this
        // call has returned.
        let received = Instant::now();
        self.stored_at
            .lock()
            .unwrap()
            .insert(event.id.clone(), received);
        self.store.insert(event).await
    }
    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<InboxEntry>, InboxStoreError> {
        self.store.claim_due(now_ms, limit, lease_until_ms).await
    }
    async fn settle(
        &self,
        id: &str,
        lease: i64,
        settle: &Settle,
        now_ms: i64,
    ) -> Result<bool, InboxStoreError> {
        self.store.settle(id, lease, settle, now_ms).await
    }
    async fn renew_lease(
        &self,
        id: &str,
        lease: i64,
        new_lease: i64,
    ) -> Result<bool, InboxStoreError> {
        self.store.renew_lease(id, lease, new_lease).await
    }
    async fn replay(&self, s: &ReplaySelection, now_ms: i64) -> Result<u64, InboxStoreError> {
        self.store.replay(s, now_ms).await
    }
    async fn unprocessed(&self) -> Result<u64, InboxStoreError> {
        self.store.unprocessed().await
    }
    async fn event(&self, id: &str) -> Result<Option<InboxEntry>, InboxStoreError> {
        self.store.event(id).await
    }
    async fn events(&self, q: &InboxQuery) -> Result<Vec<InboxEntry>, InboxStoreError> {
        self.store.events(q).await
    }
    async fn depth(&self) -> Result<InboxDepth, InboxStoreError> {
        self.store.depth().await
    }
    async fn wait_for_work(&self, max: Duration) {
        self.store.wait_for_work(max).await;
    }
}

/// Latency phase: a paced load with the workers running; p50 and p99 in
/// ms from the insert's start (the inbox's receipt) to the handler's start.
fn latency_phase<S: InboxStore>(store: S, secs: u64, tag: &str) -> (f64, f64) {
    let rate = env_u64("LOAD_LATENCY_RATE", 500).max(1);
    let conns = 8u64;
    let timed = Timed {
        store,
        stored_at: Arc::default(),
    };
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let server = one_worker();
    let (inbox, workers) = server.block_on(async {
        let inbox = Inbox::builder(timed.clone()).build().await.unwrap();
        let (stored_at, latencies) = (Arc::clone(&timed.stored_at), Arc::clone(&latencies));
        let workers = inbox.start(move |event: InboxEvent<serde_json::Value>| {
            let at = stored_at.lock().unwrap().remove(&event.id);
            if let Some(at) = at {
                latencies.lock().unwrap().push(at.elapsed());
            }
            async { Ok::<(), std::convert::Infallible>(()) }
        });
        (inbox, workers)
    });
    let addr = serve(&server, router(Mode::Sqlite, Some(&inbox)));
    let load = Load {
        conns,
        secs,
        pace: Some(Duration::from_secs_f64(conns as f64 / rate as f64)),
        expected: accepted,
    };
    let client = one_worker();
    let (tally, _, _) = client.block_on(drive(addr, tag, load));
    let deadline = Instant::now() + Duration::from_secs(30);
    while (latencies.lock().unwrap().len() as u64) < tally.processed && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.block_on(workers.shutdown());
    client.shutdown_background();
    stop_server(server);
    let mut all = latencies.lock().unwrap().clone();
    assert_eq!(
        all.len() as u64,
        tally.processed,
        "not every accepted event reached the handler"
    );
    all.sort();
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

/// A fresh, empty store for `mode` (SQLite: a new file; PostgreSQL: a new
/// database on the shared server).
enum Fresh {
    Sqlite(SqliteInboxStore, tempfile::TempDir),
    Postgres(PgInboxStore),
}

fn fresh_store(mode: Mode, pg: Option<&PostgresServer>, name: &str) -> Option<Fresh> {
    let rt = one_worker();
    match mode {
        Mode::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteInboxStore::open(dir.path().join("inbox.db")).unwrap();
            Some(Fresh::Sqlite(store, dir))
        }
        Mode::Postgres => {
            let url = pg.expect("postgres server").create_database(name);
            let store = rt.block_on(PgInboxStore::connect(&url)).unwrap();
            Some(Fresh::Postgres(store))
        }
        _ => None,
    }
}

/// All three phases for an inbox store.
fn inbox_mode<S: InboxStore>(
    store: S,
    load: Load,
    tag: &str,
    meter: &CpuMeter,
) -> (Figures, Tally) {
    let inbox = one_worker()
        .block_on(Inbox::builder(store.clone()).build())
        .unwrap();
    let (mut figures, tally) = accept_phase(router(Mode::Sqlite, Some(&inbox)), load, tag, meter);
    let (rate, cpu) = process_phase(store.clone(), tally.processed, meter);
    figures.processed_per_sec = rate;
    figures.process_cpu_us = cpu;
    let (p50, p99) = latency_phase(store, load.secs, &format!("{tag}_latency"));
    figures.p50_ms = p50;
    figures.p99_ms = p99;
    (figures, tally)
}

fn run_mode(mode: Mode, round: u64, load: Load, pg: Option<&PostgresServer>) -> (Figures, Tally) {
    let tag = format!("{round}_{}", mode.name());
    let meter = CpuMeter {
        postgres: pg
            .filter(|_| mode == Mode::Postgres)
            .map(PostgresServer::pid),
    };
    match fresh_store(mode, pg, &format!("inbox_load_{round}")) {
        None => {
            let router = router::<SqliteInboxStore>(mode, None);
            accept_phase(
                router,
                Load {
                    expected: answered_ok,
                    ..load
                },
                &tag,
                &meter,
            )
        }
        Some(Fresh::Sqlite(store, _dir)) => inbox_mode(store, load, &tag, &meter),
        Some(Fresh::Postgres(store)) => inbox_mode(store, load, &tag, &meter),
    }
}

fn print_round(mode: Mode, round: &str, f: &Figures, tally: &Tally) {
    print!(
        "{round}, {:>28}: {:>8.0} req/s ({} requests), server CPU {:.2} us/request",
        mode.label(),
        f.rps,
        tally.processed,
        f.cpu_us
    );
    if mode == Mode::Postgres {
        print!(" + PostgreSQL {:.2} us", f.pg_cpu_us);
    }
    if f.processed_per_sec > 0.0 {
        print!(
            "; processed {:.0} events/s, CPU {:.2} us/event; accept-to-handler p50 {:.2} ms, p99 {:.2} ms",
            f.processed_per_sec, f.process_cpu_us, f.p50_ms, f.p99_ms
        );
    }
    println!();
}

fn main() {
    let secs = env_u64("LOAD_SECS", 3);
    let rounds = env_u64("LOAD_ROUNDS", 2);
    let conns = env_u64("LOAD_CONNS", 32);
    let only = std::env::var("LOAD_ONLY").ok();
    let modes: Vec<Mode> = MODES
        .into_iter()
        .filter(|m| only.as_deref().is_none_or(|o| o == m.name()))
        .collect();
    assert!(
        !modes.is_empty(),
        "LOAD_ONLY must be plain, verify, sqlite or postgres"
    );
    println!(
        "inbox load: {conns} connections, {secs} s per mode, {rounds} round(s), \
         1 server + 1 client worker thread; latency at {} events/s",
        env_u64("LOAD_LATENCY_RATE", 500)
    );
    let pg = modes.contains(&Mode::Postgres).then(PostgresServer::start);
    let load = Load {
        conns,
        secs,
        pace: None,
        expected: accepted,
    };
    let mut sums: HashMap<&str, Figures> = HashMap::new();
    for round in 0..rounds {
        for &mode in &modes {
            let (f, tally) = run_mode(mode, round, load, pg.as_ref());
            assert_eq!(
                tally.other + tally.errors,
                0,
                "{}: unexpected answers: {tally:?}",
                mode.name()
            );
            print_round(mode, &format!("round {round}"), &f, &tally);
            let s = sums.entry(mode.name()).or_default();
            s.rps += f.rps;
            s.cpu_us += f.cpu_us;
            s.pg_cpu_us += f.pg_cpu_us;
            s.processed_per_sec += f.processed_per_sec;
            s.process_cpu_us += f.process_cpu_us;
            s.p50_ms += f.p50_ms;
            s.p99_ms += f.p99_ms;
        }
    }
    summarize(&modes, &sums, rounds as f64);
}

fn summarize(modes: &[Mode], sums: &HashMap<&str, Figures>, rounds: f64) {
    println!("mean of {rounds} round(s):");
    for &mode in modes {
        let mut f = sums[mode.name()];
        f.rps /= rounds;
        f.cpu_us /= rounds;
        f.pg_cpu_us /= rounds;
        f.processed_per_sec /= rounds;
        f.process_cpu_us /= rounds;
        f.p50_ms /= rounds;
        f.p99_ms /= rounds;
        print_round(mode, "mean", &f, &Tally::default());
    }
    let Some(verify) = sums.get("verify") else {
        return;
    };
    for mode in [Mode::Sqlite, Mode::Postgres] {
        if let Some(s) = sums.get(mode.name()) {
            println!(
                "{} / verify only: req/s {:.3}, capacity (1/server CPU) {:.3}",
                mode.label(),
                s.rps / verify.rps,
                verify.cpu_us / s.cpu_us
            );
        }
    }
}
