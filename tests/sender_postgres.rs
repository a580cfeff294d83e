//! Several sender nodes on one PostgreSQL queue: concurrent claims, lease
//! fencing across nodes, real deliveries over loopback, and idle nodes
//! woken by `LISTEN/NOTIFY`.
#![cfg(all(feature = "postgres", feature = "sender"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use webhook_guard::sender::{
    AddressPolicy, DeliveryAttempt, DeliveryStatus, DeliveryStore, NewDelivery, NewDestination,
    NextStep, OutgoingEvent, PgStore, RetryPolicy, Sender, SenderBuilder,
};
use webhook_guard::{Clock as _, SecretSet, SystemClock, Verified, VerifyLayer};

use support::postgres_server::PostgresServer;

const SECRET: &str = "pg-test-secret-0123456789abcdef";

fn loopback() -> AddressPolicy {
    AddressPolicy::new().allow("127.0.0.1").unwrap()
}

/// A sender on `store` that polls every `poll` and retries after 20 ms and
/// 40 ms.
fn node(store: PgStore, poll: Duration) -> SenderBuilder<PgStore> {
    Sender::builder(store)
        .address_policy(loopback())
        .poll_interval(poll)
        .busy_delay(Duration::from_millis(10))
        .retry(
            RetryPolicy::new([Duration::from_millis(20), Duration::from_millis(40)])
                .jitter(0.0)
                .unwrap(),
        )
}

/// A verifying receiver on 127.0.0.1:0 answering the n-th request
/// (0-based) with `respond(n)`; counts the requests.
async fn receiver(
    respond: impl Fn(usize) -> Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = Router::new()
        .route(
            "/hook",
            post(move |_: Verified| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let respond = respond.clone();
                async move { respond(n) }
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), calls)
}

async fn wait_status(store: &PgStore, id: &str, status: DeliveryStatus, within: Duration) {
    let start = Instant::now();
    loop {
        let d = store.delivery(id).await.unwrap().unwrap();
        if d.status == status {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{id} is {:?} after {within:?}, not {status:?}",
            d.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Saves destination `id` through a sender on `store` (never started).
async fn add_destination(store: &PgStore, id: &str, url: &str) {
    node(store.clone(), Duration::from_secs(1))
        .build()
        .unwrap()
        .add_destination(NewDestination::new(url, SECRET).id(id))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claiming_at_once_never_share_a_live_lease() {
    const DELIVERIES: usize = 150;
    let pg = PostgresServer::start();
    let url = pg.create_database("claims");
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    add_destination(&a, "dst", "http://127.0.0.1:9/").await;
    for n in 0..DELIVERIES {
        let e = OutgoingEvent::new("kpi.alert", &n).unwrap();
        let d = NewDelivery::new(e.id(), "dst", 1_000);
        a.enqueue(&e, 1_000, &[d]).await.unwrap();
    }

    // Three claimers per node, started together, each claiming small
    // batches until nothing is left. Every lease outlives the test.
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let mut tasks = Vec::new();
    for store in [&a, &b, &a, &b, &a, &b] {
        let (store, barrier) = (store.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(1_000, 3, 1_000_000).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|d| d.id));
            }
        }));
    }
    let mut all = Vec::new();
    let mut rounds_per_task = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        rounds_per_task.push(mine.len());
        all.extend(mine);
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a delivery was returned by two claims under live leases"
    );
    assert_eq!(all.len(), DELIVERIES, "every delivery claimed once");
    assert!(
        rounds_per_task.iter().filter(|&&n| n > 0).count() >= 2,
        "the claimers did not overlap: {rounds_per_task:?}"
    );
}

#[tokio::test]
async fn a_late_node_only_adds_history_once_its_lease_is_taken() {
    let pg = PostgresServer::start();
    let url = pg.create_database("fence");
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    add_destination(&a, "dst", "http://127.0.0.1:9/").await;
    let e = OutgoingEvent::new("kpi.alert", &1).unwrap();
    let d = NewDelivery::new(e.id(), "dst", 0);
    a.enqueue(&e, 0, std::slice::from_ref(&d)).await.unwrap();

    // Node A claims until 1 000 and stalls; node B takes over at 1 000.
    assert_eq!(a.claim_due(0, 10, 1_000).await.unwrap().len(), 1);
    assert!(b.claim_due(500, 10, 1_500).await.unwrap().is_empty());
    assert_eq!(b.claim_due(1_000, 10, 2_000).await.unwrap().len(), 1);

    let failed = |at| {
        let mut x = DeliveryAttempt::new(&d.id, 1, at);
        x.status_code = Some(500);
        x
    };
    // A finishes late under its expired lease...
    a.record_attempt(&failed(10), 1_000, &NextStep::DeadLetter("a".into()))
        .await
        .unwrap();
    // ...and, its clock running a second ahead, with the very lease value B
    // holds: the lease's owner fences it too.
    a.record_attempt(&failed(20), 2_000, &NextStep::DeadLetter("a".into()))
        .await
        .unwrap();
    a.reschedule(&d.id, 2_000, 99_000).await.unwrap();
    a.dead_letter(&d.id, 2_000, 1_100, "a").await.unwrap();
    let now = a.delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.lease_until_ms, now.next_attempt_at_ms),
        (DeliveryStatus::Pending, Some(2_000), Some(0)),
        "a taken lease moved the delivery"
    );
    assert_eq!(b.attempts(&d.id).await.unwrap().len(), 2, "history kept");

    // The holder moves it on.
    b.record_attempt(
        &DeliveryAttempt::new(&d.id, 2, 1_200),
        2_000,
        &NextStep::Delivered,
    )
    .await
    .unwrap();
    let done = b.delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.lease_until_ms, done.attempts),
        (DeliveryStatus::Delivered, None, 2)
    );
    assert_eq!(a.attempts(&d.id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_sender_on_postgres_delivers_retries_and_dead_letters() {
    let pg = PostgresServer::start();
    let url = pg.create_database("deliver");
    let (flaky, flaky_calls) = receiver(|n| {
        if n == 0 {
            (StatusCode::INTERNAL_SERVER_ERROR, "warming up").into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let (down, down_calls) = receiver(|_| StatusCode::BAD_GATEWAY.into_response()).await;
    let store = PgStore::connect(&url).await.unwrap();
    let sender = node(store.clone(), Duration::from_millis(20))
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(flaky, SECRET).id("flaky"))
        .await
        .unwrap();
    sender
        .add_destination(NewDestination::new(down, SECRET).id("down"))
        .await
        .unwrap();
    let _running = sender.start();
    let ds = sender
        .publish(OutgoingEvent::new("kpi.alert", &serde_json::json!({"kpi": "churn"})).unwrap())
        .await
        .unwrap();
    assert_eq!(ds.len(), 2);
    let of = |dst: &str| {
        ds.iter()
            .find(|d| d.destination_id == dst)
            .unwrap()
            .id
            .clone()
    };
    let (ok_id, dead_id) = (of("flaky"), of("down"));
    let within = Duration::from_secs(10);
    wait_status(&store, &ok_id, DeliveryStatus::Delivered, within).await;
    wait_status(&store, &dead_id, DeliveryStatus::DeadLettered, within).await;

    let ok = sender.delivery_history(&ok_id).await.unwrap();
    let codes: Vec<_> = ok.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(200)]);
    assert_eq!(flaky_calls.load(Ordering::SeqCst), 2);
    let dead = sender.delivery_history(&dead_id).await.unwrap();
    assert_eq!(dead.attempts.len(), 3, "the first attempt and two retries");
    assert_eq!(down_calls.load(Ordering::SeqCst), 3);
    let reason = dead.delivery.last_error.unwrap();
    assert!(reason.contains("502"), "{reason}");
}

#[tokio::test]
async fn an_idle_node_wakes_on_notify_when_another_node_enqueues() {
    let pg = PostgresServer::start();
    let url = pg.create_database("wake");
    let (hook, calls) = receiver(|_| StatusCode::OK.into_response()).await;
    // Node B polls every 30 s: only a notification can wake it in time.
    let b = PgStore::connect(&url).await.unwrap();
    let node_b = node(b.clone(), Duration::from_secs(30)).build().unwrap();
    node_b
        .add_destination(NewDestination::new(hook, SECRET).id("dst"))
        .await
        .unwrap();
    let _running = node_b.start();
    // B has made its first claim and is idle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Node A enqueues through its own store, as a node whose sender is not
    // running (or is busy) would: no local hand-over reaches B.
    let a = PgStore::connect(&url).await.unwrap();
    let e = OutgoingEvent::new("kpi.alert", &serde_json::json!({"n": 1})).unwrap();
    let now = SystemClock.now_millis();
    let d = NewDelivery::new(e.id(), "dst", now);
    let started = Instant::now();
    a.enqueue(&e, now, std::slice::from_ref(&d)).await.unwrap();
    wait_status(&a, &d.id, DeliveryStatus::Delivered, Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_node_whose_listen_connection_dropped_listens_again() {
    let pg = PostgresServer::start();
    let url = pg.create_database("relisten");
    let (hook, calls) = receiver(|_| StatusCode::OK.into_response()).await;
    let b = PgStore::connect(&url).await.unwrap();
    let node_b = node(b.clone(), Duration::from_secs(30)).build().unwrap();
    node_b
        .add_destination(NewDestination::new(hook, SECRET).id("dst"))
        .await
        .unwrap();
    let _running = node_b.start();
    let killed = pg.psql(
        "relisten",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    );
    assert_eq!(killed, "1", "B's LISTEN connection");
    // The listener connects again after a second.
    tokio::time::sleep(Duration::from_millis(2_000)).await;

    let a = PgStore::connect(&url).await.unwrap();
    let e = OutgoingEvent::new("kpi.alert", &1).unwrap();
    let now = SystemClock.now_millis();
    let d = NewDelivery::new(e.id(), "dst", now);
    a.enqueue(&e, now, std::slice::from_ref(&d)).await.unwrap();
    wait_status(&a, &d.id, DeliveryStatus::Delivered, Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_running_nodes_on_one_queue_deliver_each_event_once() {
    const EVENTS: usize = 60;
    let pg = PostgresServer::start();
    let url = pg.create_database("fleet");
    let (hook, calls) = receiver(|_| StatusCode::OK.into_response()).await;
    let stores = [
        PgStore::connect(&url).await.unwrap(),
        PgStore::connect(&url).await.unwrap(),
    ];
    add_destination(&stores[0], "dst", &hook).await;
    let nodes: Vec<_> = stores
        .iter()
        .map(|s| node(s.clone(), Duration::from_secs(30)).build().unwrap())
        .collect();
    let _running: Vec<_> = nodes.iter().map(Sender::start).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Published through a third store: neither node can hand them over
    // locally, both are woken and claim.
    let publisher = PgStore::connect(&url).await.unwrap();
    let now = SystemClock.now_millis();
    let mut ids = Vec::new();
    for n in 0..EVENTS {
        let e = OutgoingEvent::new("kpi.alert", &n).unwrap();
        let d = NewDelivery::new(e.id(), "dst", now);
        publisher
            .enqueue(&e, now, std::slice::from_ref(&d))
            .await
            .unwrap();
        ids.push(d.id);
    }
    for id in &ids {
        wait_status(
            &publisher,
            id,
            DeliveryStatus::Delivered,
            Duration::from_secs(10),
        )
        .await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), EVENTS, "each event once");
    for id in &ids {
        assert_eq!(publisher.attempts(id).await.unwrap().len(), 1);
    }
}
