//! Load test over real HTTP on loopback: the same axum server and handler
//! in four modes, measured one after the other in one run.
//!
//! - `plain`: no verification, no deduplication;
//! - `verify`: `VerifyLayer` (native scheme), no metrics recorder installed,
//!   so its metrics go to the facade's no-op recorder;
//! - `verify+metrics`: the same stack as `verify`, with a real Prometheus
//!   recorder (`metrics-exporter-prometheus`) installed on the server's
//!   threads only (thread-local, so the other modes in this process record
//!   nothing); `verify+metrics/verify` is what the metrics cost;
//! - `verify+dedup`: `VerifyLayer` + `IdempotencyLayer` over a `MokaStore`.
//!
//! Every request carries a distinct, validly signed event id (the client
//! signs each one; it does so in every mode, so client cost is equal), so
//! `verify+dedup` takes the full new-event path: begin, handler, complete.
//!
//! The load generator is a small hyper client in this binary rather than
//! wrk: wrk's Lua cannot compute HMAC-SHA256 per request at speed, and a
//! pool of pre-signed requests would repeat ids, so the dedup mode would
//! measure the (cheaper) duplicate path. Server and client each get one
//! tokio worker thread, the two cores of the test machine.
//!
//! Settings (environment): `LOAD_SECS` per mode and round (default 3),
//! `LOAD_ROUNDS` (default 2), `LOAD_CONNS` concurrent connections (default
//! 32). `LOAD_SERVE=plain|verify|metrics|dedup` instead serves that mode on
//! `LOAD_PORT` (default 8088) until killed, and `LOAD_PRINT_HEADERS=1` prints
//! the headers of one signed request, for an external tool such as wrk.
//! `LOAD_WORK=empty|json` runs one handler only and
//! `LOAD_ONLY=plain|verify|verify+metrics|verify+dedup` one mode only (for
//! profiling).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use webhook_guard::idempotency::{IdempotencyLayer, MokaStore};
use webhook_guard::verify::metric_names::REQUESTS;
use webhook_guard::{FixedClock, Message, Scheme, VerifyLayer};

#[path = "support/load_client.rs"]
#[allow(dead_code)]
mod load_client;

use load_client::{
    BODY, Load, NOW, Tally, answered_ok, drive, env_u64, one_worker, secrets, thread_cpu_secs,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Verify,
    VerifyMetrics,
    Dedup,
}

impl Mode {
    /// Every mode, in the order measured (and reported).
    const ALL: [Mode; 4] = [Mode::Plain, Mode::Verify, Mode::VerifyMetrics, Mode::Dedup];

    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Verify => "verify",
            Mode::VerifyMetrics => "verify+metrics",
            Mode::Dedup => "verify+dedup",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// The handler only takes the body.
    Empty,
    /// The handler parses the event, as every real handler does.
    ParseJson,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Empty => "empty handler",
            Work::ParseJson => "JSON-parsing handler",
        }
    }
}

fn router(mode: Mode, work: Work) -> Router {
    let app = match work {
        Work::Empty => Router::new().route(
            "/webhooks",
            post(|body: Bytes| async move { if body.is_empty() { "empty" } else { "ok" } }),
        ),
        Work::ParseJson => Router::new().route(
            "/webhooks",
            post(|body: Bytes| async move {
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(event) if event["data"]["rowsIngested"].is_u64() => "ok",
                    _ => "bad event",
                }
            }),
        ),
    };
    let verify = VerifyLayer::new(secrets()).clock(FixedClock::at(NOW));
    match mode {
        Mode::Plain => app,
        Mode::Verify | Mode::VerifyMetrics => app.layer(verify),
        Mode::Dedup => app
            .layer(IdempotencyLayer::new(MokaStore::new(4_000_000)))
            .layer(verify),
    }
}

/// The server's runtime: one worker thread; in `verify+metrics` mode with a
/// fresh Prometheus recorder installed as the thread-local recorder of every
/// thread the runtime starts (and of no other thread), and its handle.
fn server_runtime(mode: Mode) -> (tokio::runtime::Runtime, Option<PrometheusHandle>) {
    if mode != Mode::VerifyMetrics {
        return (one_worker(), None);
    }
    // Leaked (one per measurement) so the threads can hold it until they end.
    let recorder: &'static _ = Box::leak(Box::new(PrometheusBuilder::new().build_recorder()));
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || std::mem::forget(metrics::set_default_local_recorder(recorder)))
        .build()
        .unwrap();
    (runtime, Some(handle))
}

/// Panics unless the recorder counted the accepted requests (else the
/// `verify+metrics` figures would measure nothing).
fn check_recorded(handle: &PrometheusHandle, processed: u64) {
    let text = handle.render();
    let counted: u64 = text
        .lines()
        .filter(|l| l.starts_with(REQUESTS) && l.contains(r#"outcome="accepted""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        counted >= processed,
        "the recorder counted {counted} accepted requests of {processed}:\n{text}"
    );
}

/// Requests per second, server CPU microseconds per request, and the tally.
fn measure(mode: Mode, work: Work, round: u64, secs: u64, conns: u64) -> (f64, f64, Tally) {
    let (server, recorded) = server_runtime(mode);
    let addr = server.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(mode, work)).await.unwrap() });
        addr
    });
    // The server's only worker thread runs the spawned task.
    let server_cpu = || {
        server
            .block_on(server.spawn(async { thread_cpu_secs() }))
            .unwrap()
    };
    let cpu_before = server_cpu();
    let client = one_worker();
    let tag = format!("{round}_{mode:?}_{work:?}");
    let load = Load {
        conns,
        secs,
        pace: None,
        expected: answered_ok,
    };
    let (tally, elapsed, _) = client.block_on(drive(addr, &tag, load));
    let cpu = server_cpu() - cpu_before;
    client.shutdown_background();
    server.shutdown_background();
    if let Some(handle) = recorded {
        check_recorded(&handle, tally.processed);
    }
    let processed = tally.processed.max(1) as f64;
    (processed / elapsed, cpu * 1e6 / processed, tally)
}

fn serve_forever(mode: Mode) {
    let port = env_u64("LOAD_PORT", 8088);
    let rt = one_worker();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16))
            .await
            .unwrap();
        println!(
            "serving {} on http://{}/webhooks",
            mode.name(),
            listener.local_addr().unwrap()
        );
        axum::serve(listener, router(mode, Work::ParseJson))
            .await
            .unwrap();
    });
}

fn main() {
    if std::env::var_os("LOAD_PRINT_HEADERS").is_some() {
        let headers = Scheme::native()
            .sign(&secrets(), &Message::new("evt_fixed", NOW, BODY))
            .unwrap();
        for (name, value) in &headers {
            println!("{name}: {}", value.to_str().unwrap());
        }
        return;
    }
    if let Ok(mode) = std::env::var("LOAD_SERVE") {
        let mode = match mode.as_str() {
            "plain" => Mode::Plain,
            "verify" => Mode::Verify,
            "metrics" => {
                PrometheusBuilder::new()
                    .install_recorder()
                    .expect("install the Prometheus recorder");
                Mode::VerifyMetrics
            }
            "dedup" => Mode::Dedup,
            other => panic!("LOAD_SERVE must be plain, verify, metrics or dedup, not {other:?}"),
        };
        serve_forever(mode);
        return;
    }
    let secs = env_u64("LOAD_SECS", 3);
    let rounds = env_u64("LOAD_ROUNDS", 2);
    let conns = env_u64("LOAD_CONNS", 32);
    println!(
        "load: {conns} connections, {secs} s per mode, {rounds} round(s), 1 server + 1 client worker thread"
    );
    let works: Vec<Work> = match std::env::var("LOAD_WORK").as_deref() {
        Ok("empty") => vec![Work::Empty],
        Ok("json") => vec![Work::ParseJson],
        _ => vec![Work::Empty, Work::ParseJson],
    };
    for work in works {
        let mut sums = [0.0f64; 4];
        let mut cpu_sums = [0.0f64; 4];
        for round in 0..rounds {
            let mut rps = [0.0f64; 4];
            for (i, mode) in Mode::ALL.into_iter().enumerate() {
                if std::env::var("LOAD_ONLY").is_ok_and(|only| only != mode.name()) {
                    continue;
                }
                let (r, cpu, tally) = measure(mode, work, round, secs, conns);
                let name = mode.name();
                assert_eq!(tally.other, 0, "{name}: unexpected answers: {tally:?}");
                assert_eq!(tally.errors, 0, "{name}: connection errors: {tally:?}");
                rps[i] = r;
                sums[i] += r;
                cpu_sums[i] += cpu;
                println!(
                    "{}, round {round}, {name:>14}: {r:>9.0} req/s ({} requests), server CPU {cpu:.2} us/request",
                    work.name(),
                    tally.processed
                );
            }
            println!("{}, round {round}: {}", work.name(), ratios(&rps));
        }
        let r = rounds as f64;
        let means = |sums: &[f64; 4], unit: &str| {
            let parts: Vec<String> = Mode::ALL
                .iter()
                .zip(sums)
                .map(|(mode, sum)| format!("{} {:.2}{unit}", mode.name(), sum / r))
                .collect();
            parts.join(", ")
        };
        println!(
            "{}, mean of {rounds} round(s): {}; {}",
            work.name(),
            means(&sums, " req/s"),
            ratios(&sums)
        );
        // Capacity is the inverse of CPU per request.
        let capacity = cpu_sums.map(|cpu| 1.0 / cpu);
        println!(
            "{}, mean server CPU per request: {}; capacity (1/CPU) {}",
            work.name(),
            means(&cpu_sums, " us"),
            ratios(&capacity)
        );
    }
}

/// The ratios of interest between the modes' figures (higher is faster).
fn ratios(per_mode: &[f64; 4]) -> String {
    let [plain, verify, metrics, dedup] = *per_mode;
    format!(
        "verify/plain {:.3}, verify+metrics/verify {:.3}, verify+dedup/plain {:.3}, verify+dedup/verify {:.3}",
        verify / plain,
        metrics / verify,
        dedup / plain,
        dedup / verify
    )
}
