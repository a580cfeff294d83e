//! Load test over real HTTP on loopback: the same axum server and handler
//! in three modes, measured one after the other in one run.
//!
//! - `plain`: no verification, no deduplication;
//! - `verify`: `VerifyLayer` (native scheme);
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
//! 32). `LOAD_SERVE=plain|verify|dedup` instead serves that mode on
//! `LOAD_PORT` (default 8088) until killed, and `LOAD_PRINT_HEADERS=1` prints
//! the headers of one signed request, for an external tool such as wrk.
//! `LOAD_WORK=empty|json` runs one handler only and
//! `LOAD_ONLY=plain|verify|verify+dedup` one mode only (for profiling).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use webhook_guard::idempotency::{IdempotencyLayer, MokaStore};
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
    Dedup,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Verify => "verify",
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
        Mode::Verify => app.layer(verify),
        Mode::Dedup => app
            .layer(IdempotencyLayer::new(MokaStore::new(4_000_000)))
            .layer(verify),
    }
}

/// Requests per second, server CPU microseconds per request, and the tally.
fn measure(mode: Mode, work: Work, round: u64, secs: u64, conns: u64) -> (f64, f64, Tally) {
    let server = one_worker();
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
            "dedup" => Mode::Dedup,
            other => panic!("LOAD_SERVE must be plain, verify or dedup, not {other:?}"),
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
        let mut sums = [0.0f64; 3];
        let mut cpu_sums = [0.0f64; 3];
        for round in 0..rounds {
            let mut rps = [0.0f64; 3];
            for (i, mode) in [Mode::Plain, Mode::Verify, Mode::Dedup]
                .into_iter()
                .enumerate()
            {
                if std::env::var("LOAD_ONLY").is_ok_and(|only| only != mode.name()) {
                    continue;
                }
                let (r, cpu, tally) = measure(mode, work, round, secs, conns);
                assert_eq!(
                    tally.other,
                    0,
                    "{}: unexpected answers: {tally:?}",
                    mode.name()
                );
                assert_eq!(
                    tally.errors,
                    0,
                    "{}: connection errors: {tally:?}",
                    mode.name()
                );
                rps[i] = r;
                sums[i] += r;
                cpu_sums[i] += cpu;
                println!(
                    "{}, round {round}, {:>12}: {r:>9.0} req/s ({} requests), server CPU {cpu:.2} us/request",
                    work.name(),
                    mode.name(),
                    tally.processed
                );
            }
            println!(
                "{}, round {round}: verify/plain {:.3}, verify+dedup/plain {:.3}, verify+dedup/verify {:.3}",
                work.name(),
                rps[1] / rps[0],
                rps[2] / rps[0],
                rps[2] / rps[1]
            );
        }
        println!(
            "{}, mean of {rounds} round(s): plain {:.0}, verify {:.0}, verify+dedup {:.0} req/s; \
             verify/plain {:.3}, verify+dedup/plain {:.3}, verify+dedup/verify {:.3}",
            work.name(),
            sums[0] / rounds as f64,
            sums[1] / rounds as f64,
            sums[2] / rounds as f64,
            sums[1] / sums[0],
            sums[2] / sums[0],
            sums[2] / sums[1]
        );
        let r = rounds as f64;
        println!(
            "{}, mean server CPU per request: plain {:.2} us, verify {:.2} us, verify+dedup {:.2} us; \
             capacity (1/CPU) verify/plain {:.3}, verify+dedup/plain {:.3}, verify+dedup/verify {:.3}",
            work.name(),
            cpu_sums[0] / r,
            cpu_sums[1] / r,
            cpu_sums[2] / r,
            cpu_sums[0] / cpu_sums[1],
            cpu_sums[0] / cpu_sums[2],
            cpu_sums[1] / cpu_sums[2]
        );
    }
}
