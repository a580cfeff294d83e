//! The load generator shared by the load benches: keep-alive hyper
//! connections over loopback, every request a distinct event with a valid
//! native signature (signed by the client, per request), and the CPU-time
//! readings the benches divide by the requests answered.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use webhook_guard::idempotency::DUPLICATE_HEADER;
use webhook_guard::{Message, Scheme, SecretSet};

/// The signed timestamp of every event; the server's clock is fixed here.
pub(crate) const NOW: i64 = 1_700_000_000;
/// The body of every event.
pub(crate) const BODY: &[u8] = br#"{"event":"ingestion.completed","timestamp":"2023-11-14T22:13:20Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

/// The secret both sides share.
pub(crate) fn secrets() -> SecretSet {
    SecretSet::single("load-test-secret-of-24-bytes").unwrap()
}

/// A runtime with one worker thread.
pub(crate) fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Reads an environment setting, or the default.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the server answered.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    /// Answers the bench expects (see [`Load::expected`]).
    pub(crate) processed: u64,
    /// Any other answer.
    pub(crate) other: u64,
    /// Connection errors.
    pub(crate) errors: u64,
}

impl Tally {
    fn add(&mut self, t: Tally) {
        self.processed += t.processed;
        self.other += t.other;
        self.errors += t.errors;
    }
}

/// One run of the generator.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    /// Concurrent keep-alive connections.
    pub(crate) conns: u64,
    /// How long to send.
    pub(crate) secs: u64,
    /// `Some(gap)`: each connection waits `gap` between the starts of its
    /// requests (a paced load); `None`: back to back.
    pub(crate) pace: Option<Duration>,
    /// Whether an answer (status, headers, body) is the expected one.
    pub(crate) expected: fn(&http::response::Parts, &[u8]) -> bool,
}

/// `200`, not a duplicate, body `ok`: the answer of the load benches'
/// handlers.
pub(crate) fn answered_ok(parts: &http::response::Parts, body: &[u8]) -> bool {
    parts.status == 200 && parts.headers.get(DUPLICATE_HEADER).is_none() && body == b"ok"
}

/// Sends `load` to `addr` from the calling runtime; event ids start with
/// `tag`. Returns the tally, the seconds it took, and the CPU seconds of
/// the runtime's worker thread (the client's own cost).
pub(crate) async fn drive(addr: SocketAddr, tag: &str, load: Load) -> (Tally, f64, f64) {
    let cpu_before = tokio::spawn(async { thread_cpu_secs() }).await.unwrap();
    let started = Instant::now();
    let until = started + Duration::from_secs(load.secs);
    let tasks: Vec<_> = (0..load.conns)
        .map(|c| tokio::spawn(connection(addr, format!("{tag}_{c}"), until, load)))
        .collect();
    let mut total = Tally::default();
    for t in tasks {
        total.add(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = tokio::spawn(async { thread_cpu_secs() }).await.unwrap() - cpu_before;
    (total, elapsed, cpu)
}

async fn connection(addr: SocketAddr, tag: String, until: Instant, load: Load) -> Tally {
    let mut tally = Tally::default();
    let secrets = secrets();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut ticks = load.pace.map(|gap| {
        let mut t = tokio::time::interval(gap);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut n = 0u64;
    while Instant::now() < until {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        n += 1;
        let id = format!("evt_{tag}_{n}");
        let headers = Scheme::native()
            .sign(&secrets, &Message::new(&id, NOW, BODY))
            .unwrap();
        let mut req = Request::post("/webhooks")
            .header(header::HOST, "127.0.0.1")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(BODY)))
            .unwrap();
        req.headers_mut().extend(headers);
        if sender.ready().await.is_err() {
            tally.errors += 1;
            break;
        }
        let Ok(res) = sender.send_request(req).await else {
            tally.errors += 1;
            break;
        };
        let (parts, body) = res.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes());
        if body.is_ok_and(|b| (load.expected)(&parts, &b)) {
            tally.processed += 1;
        } else {
            tally.other += 1;
        }
    }
    tally
}

/// User + system CPU seconds from a `/proc/.../stat` line: fields 14 and
/// 15, plus 16 and 17 (reaped children) when `children` is set.
fn stat_cpu_secs(stat: &str, children: bool) -> f64 {
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let take = if children { 4 } else { 2 };
    let ticks: u64 = fields[11..11 + take]
        .iter()
        .map(|f| f.parse::<u64>().unwrap())
        .sum();
    // Clock ticks of 10 ms (USER_HZ = 100 on Linux).
    ticks as f64 / 100.0
}

/// CPU seconds of the calling thread.
pub(crate) fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc (Linux)");
    stat_cpu_secs(&stat, false)
}

/// CPU seconds of this whole process (every thread, live or ended).
pub(crate) fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc (Linux)");
    stat_cpu_secs(&stat, false)
}

/// CPU seconds of process `pid`, its reaped children and its live children
/// (for a PostgreSQL server: the postmaster and its backends).
pub(crate) fn process_tree_cpu_secs(pid: u32) -> f64 {
    let read = |p: &str| std::fs::read_to_string(format!("/proc/{p}/stat")).ok();
    let mut total = read(&pid.to_string()).map_or(0.0, |s| stat_cpu_secs(&s, true));
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(stat) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(read)
        else {
            continue;
        };
        let after_comm = &stat[stat.rfind(')').unwrap_or(0) + 2..];
        let ppid = after_comm.split_whitespace().nth(1);
        if ppid == Some(pid.to_string().as_str()) {
            total += stat_cpu_secs(&stat, true);
        }
    }
    total
}
