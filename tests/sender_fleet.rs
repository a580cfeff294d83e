//! Limits that hold for the whole fleet of sender nodes sharing one
//! PostgreSQL: the per-destination concurrency limit, the circuit breaker
//! (one probe for the fleet) and 410-disabling, with two real nodes (two
//! stores, two pools) delivering over loopback.
#![cfg(all(feature = "postgres", feature = "sender"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::sender::{
    AddressPolicy, CircuitChange, DeliveryAttempt, DeliveryStatus, DeliveryStore, ErrorClass,
    FleetPolicy, NewDelivery, NewDestination, NextStep, OutgoingEvent, PgStore, RetryPolicy,
    Sender, SenderBuilder,
};

use support::postgres_server::PostgresServer;

const SECRET: &str = "fleet-test-secret-0123456789abcdef";

/// A node on `store` polling every 50 ms, retrying every 20 ms (30 times).
fn node(store: PgStore) -> SenderBuilder<PgStore> {
    Sender::builder(store)
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(50))
        .busy_delay(Duration::from_millis(10))
        .retry(
            RetryPolicy::new([Duration::from_millis(20); 30])
                .jitter(0.0)
                .unwrap(),
        )
}

/// What a receiver saw: requests, the most at once, and the answer to give.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    now: AtomicUsize,
    max: AtomicUsize,
    /// The status every request gets.
    status: std::sync::atomic::AtomicU16,
}

/// A receiver on 127.0.0.1:0 holding each request `hold`, answering with
/// `seen.status`.
async fn receiver(hold: Duration, status: StatusCode) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    seen.status.store(status.as_u16(), Ordering::SeqCst);
    let s = Arc::clone(&seen);
    let app = Router::new().route(
        "/hook",
        post(move || {
            let s = Arc::clone(&s);
            async move {
                s.requests.fetch_add(1, Ordering::SeqCst);
                let now = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                s.max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(hold).await;
                s.now.fetch_sub(1, Ordering::SeqCst);
                StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not after {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn two_stores(pg: &PostgresServer, db: &str) -> (PgStore, PgStore) {
    let url = pg.create_database(db);
    (
        PgStore::connect(&url).await.unwrap(),
        PgStore::connect(&url).await.unwrap(),
    )
}

fn event(n: usize) -> OutgoingEvent {
    OutgoingEvent::new("kpi.alert", &n).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_exceed_the_per_destination_limit_together() {
    let pg = PostgresServer::start();
    let (a, b) = two_stores(&pg, "concurrency").await;
    let (url, seen) = receiver(Duration::from_millis(200), StatusCode::OK).await;
    let build = |s| node(s).per_destination_concurrency(2).build().unwrap();
    let (a, b) = (build(a), build(b));
    a.add_destination(NewDestination::new(url, SECRET).id("slow"))
        .await
        .unwrap();
    let (_ra, _rb) = (a.start(), b.start());
    for n in 0..20 {
        let sender = if n % 2 == 0 { &a } else { &b };
        sender.publish(event(n)).await.unwrap();
    }
    wait_until("20 requests", Duration::from_secs(20), || {
        seen.requests.load(Ordering::SeqCst) >= 20 && seen.now.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
    assert_eq!(
        seen.max.load(Ordering::SeqCst),
        2,
        "two nodes together sent more than two requests at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_circuit_opens_for_the_fleet_and_one_probe_decides() {
    let pg = PostgresServer::start();
    let (a, b) = two_stores(&pg, "circuit").await;
    let (url, seen) = receiver(Duration::ZERO, StatusCode::INTERNAL_SERVER_ERROR).await;
    let cooldown = Duration::from_millis(1_000);
    let build = |s| {
        node(s)
            .per_destination_concurrency(1)
            .circuit_breaker(3, cooldown)
            .build()
            .unwrap()
    };
    let (a, b) = (build(a), build(b));
    a.add_destination(NewDestination::new(url, SECRET).id("flaky"))
        .await
        .unwrap();
    let (_ra, _rb) = (a.start(), b.start());
    let mut ids = Vec::new();
    for n in 0..6 {
        let sender = if n % 2 == 0 { &a } else { &b };
        ids.extend(
            sender
                .publish(event(n))
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id),
        );
    }
    let requests = || seen.requests.load(Ordering::SeqCst);
    wait_until("3 failures", Duration::from_secs(5), || requests() >= 3).await;
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(requests(), 3, "a node sent while the circuit was open");
    assert!(a.is_paused("flaky") && b.is_paused("flaky"));

    // Half open: one probe for the whole fleet; it fails and reopens.
    wait_until("the first probe", cooldown * 2, || requests() >= 4).await;
    assert!(opened.elapsed() >= Duration::from_millis(900));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(requests(), 4, "more than one probe went out");

    // The next probe succeeds and both nodes resume.
    seen.status.store(200, Ordering::SeqCst);
    wait_until("the second probe", cooldown * 2, || requests() >= 5).await;
    for id in &ids {
        let store = a.store();
        let start = Instant::now();
        while store.delivery(id).await.unwrap().unwrap().status != DeliveryStatus::Delivered {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{id} not delivered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(
        requests(),
        4 + ids.len(),
        "each delivery once after the probe"
    );
    assert!(!a.is_paused("flaky") && !b.is_paused("flaky"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_410_on_one_node_stops_the_other_at_once() {
    let pg = PostgresServer::start();
    let (a, b) = two_stores(&pg, "gone").await;
    let (url, seen) = receiver(Duration::ZERO, StatusCode::GONE).await;
    let ttl = Duration::from_secs(30);
    let a = node(a).destination_cache(ttl).build().unwrap();
    let b = node(b).destination_cache(ttl).build().unwrap();
    a.add_destination(NewDestination::new(url, SECRET).id("gone"))
        .await
        .unwrap();
    // B reads the destination (enabled) into its cache, before A starts.
    b.publish(event(0)).await.unwrap();
    let _ra = a.start();
    let disabled = || async { !a.destination("gone").await.unwrap().enabled };
    let start = Instant::now();
    while !disabled().await {
        assert!(start.elapsed() < Duration::from_secs(5), "not disabled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);

    // B, its cache still saying enabled, publishes and runs: nothing goes.
    let _rb = b.start();
    let pending = b.publish(event(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        1,
        "node B sent to a destination node A disabled"
    );
    for d in pending {
        let now = b.store().delivery(&d.id).await.unwrap().unwrap();
        assert_eq!(now.status, DeliveryStatus::Pending);
        assert_eq!(now.attempts, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_two_stores_respect_the_limit() {
    let pg = PostgresServer::start();
    let (mut a, mut b) = two_stores(&pg, "claims").await;
    for id in ["d1", "d2"] {
        node(a.clone())
            .build()
            .unwrap()
            .add_destination(NewDestination::new("http://127.0.0.1:9/", SECRET).id(id))
            .await
            .unwrap();
    }
    for n in 0..60 {
        let e = event(n);
        let dst = if n % 2 == 0 { "d1" } else { "d2" };
        a.enqueue(&e, 1_000, &[NewDelivery::new(e.id(), dst, 1_000)])
            .await
            .unwrap();
    }
    let policy = FleetPolicy::new(3, 5, 1_000);
    a.set_fleet_policy(policy);
    b.set_fleet_policy(policy);

    // Six claimers on two stores, started together, claiming until the
    // claims come back empty several times in a row. Every lease is live
    // for the whole test, so each destination gives out three in all.
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let mut tasks = Vec::new();
    for (n, store) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let (store, barrier) = (store.clone(), Arc::clone(&barrier));
        let on_a = n % 2 == 0;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            let mut empty = 0;
            while empty < 5 {
                let batch = store.claim_due(1_000, 2, 1_000_000).await.unwrap();
                empty = if batch.is_empty() { empty + 1 } else { 0 };
                mine.extend(batch);
            }
            mine.into_iter().map(move |d| (on_a, d)).collect::<Vec<_>>()
        }));
    }
    let mut by_store = Vec::new();
    for t in tasks {
        by_store.extend(t.await.unwrap());
    }
    let claimed: Vec<_> = by_store.iter().map(|(_, d)| d.clone()).collect();
    let ids: HashSet<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), claimed.len(), "a delivery was claimed twice");
    for dst in ["d1", "d2"] {
        let n = claimed.iter().filter(|d| d.destination_id == dst).count();
        assert_eq!(n, 3, "{dst}: {n} leases live at once");
    }

    // A released slot is one more claim, and only one. The lease is fenced
    // by its owner too, so the store that claimed it releases it.
    let (on_a, d) = by_store
        .iter()
        .find(|(_, d)| d.destination_id == "d1")
        .unwrap();
    let owner = if *on_a { &a } else { &b };
    owner.reschedule(&d.id, 1_000_000, 2_000).await.unwrap();
    let again = b.claim_due(1_000, 10, 1_000_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].destination_id, "d1");
}

/// Twelve failed attempts of one destination recorded at once by two
/// nodes: the circuit opens once, and the one node whose attempt opened
/// it is told; then one success closes it, told once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_circuit_change_is_reported_once_across_the_fleet() {
    let pg = PostgresServer::start();
    let (mut a, mut b) = two_stores(&pg, "changes").await;
    node(a.clone())
        .build()
        .unwrap()
        .add_destination(NewDestination::new("http://127.0.0.1:9/", SECRET).id("d"))
        .await
        .unwrap();
    for n in 0..13 {
        let e = event(n);
        a.enqueue(&e, 1_000, &[NewDelivery::new(e.id(), "d", 1_000)])
            .await
            .unwrap();
    }
    let policy = FleetPolicy::new(100, 3, 60_000);
    a.set_fleet_policy(policy);
    b.set_fleet_policy(policy);
    let claimed = a.claim_due(1_000, 100, 1_000_000).await.unwrap();
    assert_eq!(claimed.len(), 13);
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let mut tasks = Vec::new();
    for (n, d) in claimed.iter().take(12).enumerate() {
        // Either node may record an attempt: fenced out or not, it counts.
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let (id, barrier) = (d.id.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let mut attempt = DeliveryAttempt::new(id, 1, 1_000);
            attempt.status_code = Some(500);
            attempt.error_class = Some(ErrorClass::Status);
            barrier.wait().await;
            let next = NextStep::RetryAt(2_000);
            store
                .record_attempt(&attempt, 1_000_000, &next)
                .await
                .unwrap()
        }));
    }
    let mut changes = Vec::new();
    for t in tasks {
        changes.extend(t.await.unwrap());
    }
    assert_eq!(changes, [CircuitChange::Opened]);
    let mut ok = DeliveryAttempt::new(claimed[12].id.clone(), 1, 1_000);
    ok.status_code = Some(200);
    let next = NextStep::Delivered;
    let closed = b.record_attempt(&ok, 1_000_000, &next).await.unwrap();
    assert_eq!(closed, Some(CircuitChange::Closed));
    let again = a.record_attempt(&ok, 1_000_000, &next).await.unwrap();
    assert_eq!(again, None);
}
