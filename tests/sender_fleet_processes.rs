//! A fleet of sender processes (`examples/sender.rs` with
//! `WEBHOOK_DATABASE_URL`) on one PostgreSQL queue, delivering to
//! deduplicating receivers over loopback; one node is killed with SIGKILL
//! mid-run.
//!
//! Each event goes to one destination (event type `fleet.d{n % 10}`, one
//! destination per type), so 10,000 events are 10,000 deliveries. The
//! receivers are `VerifyLayer` -> a wire counter (which also answers 500
//! to about half the requests of the failing ones, by a hash of the event
//! id and the request's number for that id) -> `IdempotencyLayer` (moka)
//! -> a handler counting what it processes.
#![cfg(all(feature = "postgres", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
mod support;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use example_binary::example_binary;
use support::postgres_server::PostgresServer;
use webhook_guard::idempotency::{DUPLICATE_HEADER, IdempotencyLayer, MokaStore};
use webhook_guard::sender::{
    AddressPolicy, EventFilter, NewDestination, OutgoingEvent, PgStore, Sender,
};
use webhook_guard::{SecretSet, Verified, VerifyLayer};

const SECRET: &str = "fleet-test-secret-0123456789abcdef";

/// What the receivers saw of one event.
#[derive(Debug, Default, Clone)]
struct EventWire {
    /// Requests that verified.
    requests: u32,
    /// Requests that came while one for the event was in flight, or after
    /// one was answered 2xx: duplicates on the wire (a retry after a 500
    /// is not one).
    duplicate_requests: u32,
    /// Requests being answered now.
    in_flight: u32,
    /// Whether a request was answered 2xx.
    succeeded: bool,
    /// Answered 500 by the failure injection, before deduplication.
    injected_failures: u32,
    /// The handler ran (and answered 200).
    processed: u32,
    /// Answered 200 with `X-Webhook-Duplicate` by `IdempotencyLayer`.
    duplicate_answers: u32,
    /// Answered 409 by `IdempotencyLayer`: the event was in flight.
    in_flight_answers: u32,
    /// When each request came in and was answered, unix ms.
    intervals: Vec<(i64, i64)>,
}

type Wire = Arc<Mutex<HashMap<String, EventWire>>>;

#[derive(Clone)]
struct Receiver {
    /// Whether about half the requests are answered 500.
    failing: bool,
    wire: Wire,
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Whether the `n`-th request (0-based) for event `id` is answered 500:
/// about half of them, decided by a hash so that retries can succeed.
fn injected_failure(id: &str, n: u32) -> bool {
    let mut h = std::hash::DefaultHasher::new();
    (id, n).hash(&mut h);
    h.finish() % 2 == 0
}

/// Between `VerifyLayer` and `IdempotencyLayer`: counts every verified
/// request per event id, injects the failures, and notes how the
/// deduplication answered.
async fn on_the_wire(State(r): State<Receiver>, req: Request, next: Next) -> Response {
    let started = now_ms();
    let id = req
        .extensions()
        .get::<Verified>()
        .expect("behind VerifyLayer")
        .id()
        .to_owned();
    let n = {
        let mut wire = r.wire.lock().unwrap();
        let e = wire.entry(id.clone()).or_default();
        e.requests += 1;
        if e.in_flight > 0 || e.succeeded {
            e.duplicate_requests += 1;
        }
        e.in_flight += 1;
        e.requests - 1
    };
    let res = if r.failing && injected_failure(&id, n) {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    } else {
        next.run(req).await
    };
    let mut wire = r.wire.lock().unwrap();
    let e = wire.get_mut(&id).unwrap();
    e.intervals.push((started, now_ms()));
    e.in_flight -= 1;
    e.succeeded |= res.status().is_success();
    match res.status() {
        StatusCode::INTERNAL_SERVER_ERROR => e.injected_failures += 1,
        StatusCode::CONFLICT => e.in_flight_answers += 1,
        _ if res.headers().contains_key(DUPLICATE_HEADER) => e.duplicate_answers += 1,
        _ => {}
    }
    res
}

/// A receiver on 127.0.0.1:0: `VerifyLayer`, the wire counter, then
/// `IdempotencyLayer` (moka) around a handler that counts what it
/// processes. Returns its URL.
async fn receiver(failing: bool, wire: &Wire) -> String {
    let processed = Arc::clone(wire);
    let state = Receiver {
        failing,
        wire: Arc::clone(wire),
    };
    let app = Router::new()
        .route(
            "/hook",
            post(move |v: Verified| {
                processed
                    .lock()
                    .unwrap()
                    .entry(v.id().to_owned())
                    .or_default()
                    .processed += 1;
                async { StatusCode::OK }
            }),
        )
        .layer(IdempotencyLayer::new(MokaStore::new(100_000)))
        .layer(axum::middleware::from_fn_with_state(state, on_the_wire))
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    format!("http://{}/hook", support::serve(app).await)
}

/// A publisher on `url` that never starts workers: what it publishes waits
/// in the queue for the nodes.
async fn publisher(url: &str) -> Sender<PgStore> {
    Sender::builder(PgStore::connect(url).await.unwrap())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .build()
        .unwrap()
}

/// Publishes `events` events, event `n` of type `fleet.d{n % types}`, from
/// 8 tasks at once; returns how long it took.
async fn publish_all(sender: &Sender<PgStore>, events: usize, types: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let sender = sender.clone();
        tasks.spawn(async move {
            for n in (task..events).step_by(8) {
                let event_type = format!("fleet.d{}", n % types);
                let e = OutgoingEvent::new(event_type, &serde_json::json!({ "n": n })).unwrap();
                assert_eq!(sender.publish(e).await.unwrap().len(), 1);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

/// Adds destination `d{i}` for events of type `fleet.d{i}`.
async fn add_destination(sender: &Sender<PgStore>, i: usize, url: &str) {
    sender
        .add_destination(
            NewDestination::new(url, SECRET)
                .id(format!("d{i}"))
                .events(EventFilter::only([format!("fleet.d{i}")])),
        )
        .await
        .unwrap();
}

/// A sender node: the example with `WEBHOOK_EVENTS=0` on the shared queue,
/// its output in `logs`.
struct Node {
    child: Child,
    log: std::path::PathBuf,
}

impl Node {
    fn spawn(exe: &Path, db_url: &str, lease_secs: u32, logs: &Path, n: usize) -> Self {
        let log = logs.join(format!("node{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(exe)
            .env("WEBHOOK_DATABASE_URL", db_url)
            .env("WEBHOOK_EVENTS", "0")
            .env("WEBHOOK_LEASE_SECS", lease_secs.to_string())
            .env("WEBHOOK_ALLOW", "127.0.0.1")
            .env_remove("WEBHOOK_URL")
            .env_remove("WEBHOOK_SECRET")
            .env_remove("WEBHOOK_DB")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// Waits for the node to end by itself (nothing pending) and checks it
    /// succeeded.
    fn wait_success(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "node failed: {}", self.stderr());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node still running {within:?} after the queue emptied: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deliveries per status, straight from the database.
fn statuses(pg: &PostgresServer, db: &str) -> HashMap<String, usize> {
    pg.psql(
        db,
        "SELECT status, count(*) FROM sender_deliveries GROUP BY status",
    )
    .lines()
    .filter_map(|l| l.split_once('|'))
    .map(|(s, n)| (s.to_owned(), n.parse().unwrap()))
    .collect()
}

/// Waits until no delivery is pending; fails with the counts after
/// `within`.
async fn wait_settled(pg: &PostgresServer, db: &str, within: Duration, nodes: &[Node]) {
    let deadline = Instant::now() + within;
    loop {
        let now = statuses(pg, db);
        if !now.contains_key("pending") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending after {within:?}: {now:?}\n{}",
            nodes
                .iter()
                .map(Node::stderr)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every delivery's event id and status.
fn deliveries(pg: &PostgresServer, db: &str) -> Vec<(String, String)> {
    pg.psql(db, "SELECT event_id, status FROM sender_deliveries")
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(e, s)| (e.to_owned(), s.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_killed_deliver_every_event_once_to_deduplicating_receivers() {
    const EVENTS: usize = 10_000;
    const DESTINATIONS: usize = 10;
    const FAILING: [usize; 2] = [3, 7];
    let exe = example_binary("sender");
    let pg = PostgresServer::start();
    let url = pg.create_database("fleet");
    let wire: Wire = Arc::default();
    let sender = publisher(&url).await;
    for i in 0..DESTINATIONS {
        let hook = receiver(FAILING.contains(&i), &wire).await;
        add_destination(&sender, i, &hook).await;
    }
    let publishing = publish_all(&sender, EVENTS, DESTINATIONS).await;

    let started = Instant::now();
    let logs = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..3)
        .map(|n| Node::spawn(&exe, &url, 2, logs.path(), n))
        .collect();
    // SIGKILL node 0 after a few hundred requests.
    let total_requests = |w: &Wire| -> u32 { w.lock().unwrap().values().map(|e| e.requests).sum() };
    while total_requests(&wire) < 300 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no deliveries: {}",
            nodes[0].stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nodes[0].child.kill().unwrap();
    nodes[0].child.wait().unwrap();
    let (killed_at, killed_after) = (now_ms(), total_requests(&wire));

    wait_settled(&pg, "fleet", Duration::from_secs(180), &nodes).await;
    let elapsed = started.elapsed();
    for node in &mut nodes[1..] {
        node.wait_success(Duration::from_secs(10));
    }

    let counts = statuses(&pg, "fleet");
    let delivered = counts.get("delivered").copied().unwrap_or(0);
    let dead = counts.get("dead_lettered").copied().unwrap_or(0);
    assert_eq!(delivered + dead, EVENTS, "{counts:?}");
    let wire = wire.lock().unwrap().clone();
    let stored = deliveries(&pg, "fleet");
    let mut dead_but_processed = 0;
    for (event_id, status) in &stored {
        let processed = wire.get(event_id).map_or(0, |e| e.processed);
        match status.as_str() {
            "delivered" => assert_eq!(processed, 1, "{event_id}: {:?}", wire.get(event_id)),
            _ => {
                assert!(processed <= 1, "{event_id}: {:?}", wire.get(event_id));
                dead_but_processed += processed;
            }
        }
    }
    let known: HashSet<&String> = stored.iter().map(|(e, _)| e).collect();
    let strangers: Vec<_> = wire.keys().filter(|id| !known.contains(id)).collect();
    assert!(
        strangers.is_empty(),
        "processed, not in the store: {strangers:?}"
    );

    let sum = |f: fn(&EventWire) -> u32| -> u32 { wire.values().map(f).sum() };
    let requests = sum(|e| e.requests);
    let failures = sum(|e| e.injected_failures);
    let duplicates = sum(|e| e.duplicate_requests);
    // Duplicates of an event first sent before the SIGKILL: the killed
    // node's attempts in flight (or claimed), taken over after its lease.
    let around_kill: u32 = wire
        .values()
        .filter(|e| e.intervals.first().is_some_and(|i| i.0 <= killed_at))
        .map(|e| e.duplicate_requests)
        .sum();
    let attempts: usize = pg
        .psql("fleet", "SELECT count(*) FROM sender_attempts")
        .parse()
        .unwrap();
    println!(
        "fleet: {EVENTS} events to {DESTINATIONS} destinations ({} failing about half the time), \
         3 nodes, lease 2 s, node 0 SIGKILLed after {killed_after} requests\n\
         published in {publishing:?}; delivered in {elapsed:?} after the nodes started\n\
         delivered {delivered}, dead-lettered {dead} ({dead_but_processed} of them processed \
         by the receiver before the sender gave up)\n\
         requests on the wire {requests}: {failures} answered 500 by the failure injection \
         (retries, not duplicates), {duplicates} duplicate requests \
         ({around_kill} of them for events first sent before the SIGKILL; \
         {} answered as duplicates by IdempotencyLayer, {} answered 409 in flight, \
         the rest answered 500 by the failure injection)\n\
         attempts in the store {attempts}; requests on the wire the store has no attempt \
         for: {}",
        FAILING.len(),
        sum(|e| e.duplicate_answers),
        sum(|e| e.in_flight_answers),
        i64::from(requests) - i64::try_from(attempts).unwrap(),
    );
}

/// Logs every lease a claim hands out: the delivery, the lease's owner
/// and expiry, how many attempts the delivery had then, and when (unix ms
/// by PostgreSQL's clock, the machine clock the nodes read too).
const LEASE_LOG: &str = "\
    CREATE TABLE lease_log (n BIGSERIAL PRIMARY KEY, delivery_id TEXT NOT NULL, \
        owner TEXT NOT NULL, lease_until_ms BIGINT NOT NULL, attempts INT NOT NULL, \
        at_ms BIGINT NOT NULL); \
    CREATE FUNCTION log_lease() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
        INSERT INTO lease_log (delivery_id, owner, lease_until_ms, attempts, at_ms) \
        VALUES (NEW.id, NEW.lease_owner, NEW.lease_until_ms, NEW.attempts, \
            floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint); \
        RETURN NEW; END $$; \
    CREATE TRIGGER lease_log AFTER UPDATE OF lease_until_ms, lease_owner ON sender_deliveries \
        FOR EACH ROW WHEN (NEW.lease_owner IS NOT NULL) EXECUTE FUNCTION log_lease();";

/// One lease handed out by a claim, as the trigger logged it.
#[derive(Debug)]
struct Lease {
    n: i64,
    owner: String,
    attempts: u32,
    at_ms: i64,
}

fn leases(pg: &PostgresServer, db: &str) -> HashMap<String, Vec<Lease>> {
    let mut by_delivery: HashMap<String, Vec<Lease>> = HashMap::new();
    let rows = pg.psql(
        db,
        "SELECT n, delivery_id, owner, attempts, at_ms FROM lease_log ORDER BY n",
    );
    for row in rows.lines() {
        let f: Vec<&str> = row.split('|').collect();
        by_delivery.entry(f[1].to_owned()).or_default().push(Lease {
            n: f[0].parse().unwrap(),
            owner: f[2].to_owned(),
            attempts: f[3].parse().unwrap(),
            at_ms: f[4].parse().unwrap(),
        });
    }
    by_delivery
}

/// Whether the intervals, in the order given, each end before the next
/// starts (a millisecond of rounding allowed).
fn one_after_another(intervals: &[(i64, i64)]) -> bool {
    intervals.windows(2).all(|w| w[0].1 <= w[1].0 + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_together_never_attempt_a_delivery_twice_under_one_lease() {
    const EVENTS: usize = 1_000;
    let exe = example_binary("sender");
    let pg = PostgresServer::start();
    let url = pg.create_database("claims");
    let wire: Wire = Arc::default();
    let sender = publisher(&url).await;
    add_destination(&sender, 0, &receiver(true, &wire).await).await;
    add_destination(&sender, 1, &receiver(false, &wire).await).await;
    pg.psql("claims", LEASE_LOG);
    publish_all(&sender, EVENTS, 2).await;

    // Both nodes start together on the same due deliveries. A lease of
    // 60 s outlives the run: no lease expires, so no delivery may be
    // attempted by two nodes at once or twice under one claim.
    let logs = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..2)
        .map(|n| Node::spawn(&exe, &url, 60, logs.path(), n))
        .collect();
    wait_settled(&pg, "claims", Duration::from_secs(60), &nodes).await;
    for node in &mut nodes {
        node.wait_success(Duration::from_secs(10));
    }

    let leases = leases(&pg, "claims");
    let wire = wire.lock().unwrap().clone();
    let mut used: HashSet<i64> = HashSet::new();
    let mut attempts_by_owner: HashMap<String, usize> = HashMap::new();
    let mut attempts = 0;
    for (id, event_id) in pg
        .psql("claims", "SELECT id, event_id FROM sender_deliveries")
        .lines()
        .filter_map(|l| l.split_once('|'))
    {
        let history = sender.delivery_history(id).await.unwrap().attempts;
        attempts += history.len();
        let mut numbers: Vec<u32> = history.iter().map(|a| a.attempt).collect();
        numbers.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(history.len()).unwrap()).collect();
        assert_eq!(numbers, expected, "{id}: two attempts with one number");
        let mut spans: Vec<(i64, i64)> = history
            .iter()
            .map(|a| {
                (
                    a.started_at_ms,
                    a.started_at_ms + i64::try_from(a.duration_ms).unwrap(),
                )
            })
            .collect();
        spans.sort_unstable();
        assert!(
            one_after_another(&spans),
            "{id}: attempts overlap: {spans:?}"
        );
        let seen = &wire[event_id];
        assert_eq!(
            seen.requests as usize,
            history.len(),
            "{id}: requests vs attempts"
        );
        assert!(
            one_after_another(&seen.intervals),
            "{id}: requests overlap on the wire: {:?}",
            seen.intervals
        );
        // Each attempt ran under the last lease handed out before it
        // started; that lease was taken with the attempts before it
        // recorded, and served no other attempt.
        for a in &history {
            let lease = leases[id]
                .iter()
                .rev()
                .find(|l| l.at_ms <= a.started_at_ms)
                .unwrap_or_else(|| panic!("{id}: attempt {} without a lease", a.attempt));
            assert_eq!(lease.attempts + 1, a.attempt, "{id}: {lease:?}");
            assert!(used.insert(lease.n), "{id}: two attempts under {lease:?}");
            *attempts_by_owner.entry(lease.owner.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        attempts_by_owner.len(),
        2,
        "both nodes attempted: {attempts_by_owner:?}"
    );
    let claims: usize = leases.values().map(Vec::len).sum();
    println!(
        "two nodes, {EVENTS} deliveries: {claims} leases handed out, {attempts} attempts, \
         attempts per node {:?}",
        attempts_by_owner.values().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rides_out_a_database_that_refuses_connections() {
    const EVENTS: usize = 300;
    let exe = example_binary("sender");
    let pg = PostgresServer::start();
    let url = pg.create_database("outage");
    let wire: Wire = Arc::default();
    let sender = publisher(&url).await;
    add_destination(&sender, 0, &receiver(false, &wire).await).await;
    publish_all(&sender, EVENTS, 1).await;
    let logs = tempfile::tempdir().unwrap();
    let mut node = Node::spawn(&exe, &url, 2, logs.path(), 0);
    let total_requests = |w: &Wire| -> u32 { w.lock().unwrap().values().map(|e| e.requests).sum() };
    let started = Instant::now();
    while total_requests(&wire) < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            node.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The database goes away: every connection is cut and new ones are
    // refused.
    let at_outage = total_requests(&wire);
    pg.psql(
        "postgres",
        "ALTER DATABASE outage ALLOW_CONNECTIONS false; \
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = 'outage'",
    );
    let e = OutgoingEvent::new("fleet.d0", &serde_json::json!({ "n": "late" })).unwrap();
    let refused = sender.publish(e).await.unwrap_err().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = total_requests(&wire);
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the node ended while the database was away: {}",
        node.stderr()
    );

    pg.psql("postgres", "ALTER DATABASE outage ALLOW_CONNECTIONS true");
    wait_settled(
        &pg,
        "outage",
        Duration::from_secs(60),
        std::slice::from_ref(&node),
    )
    .await;
    node.wait_success(Duration::from_secs(10));
    let counts = statuses(&pg, "outage");
    assert_eq!(counts.get("delivered"), Some(&EVENTS), "{counts:?}");
    let wire = wire.lock().unwrap().clone();
    assert!(
        wire.values().all(|e| e.processed == 1),
        "each event processed once"
    );
    let log = node.stderr();
    println!(
        "publish while the database refused connections: {refused}\n\
         requests when it went away: {at_outage}, 3 s later: {during}; duplicate requests on the wire \
         after it came back: {}\n\
         node log lines during the outage: {}\n{}",
        wire.values().map(|e| e.duplicate_requests).sum::<u32>(),
        log.lines().count(),
        log.lines().take(6).collect::<Vec<_>>().join("\n")
    );
}
