//! The `DeliveryStore` contract, run against every store, and SQLite's
//! survival across restarts.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::Clock as _;
use webhook_guard::SystemClock;
use webhook_guard::sender::{
    AddressPolicy, DeliveryAttempt, DeliveryQuery, DeliveryStatus, DeliveryStore,
    DestinationHealth, ErrorClass, ManualClock, MemoryStore, NewDelivery, NewDestination, NextStep,
    OutgoingEvent, QueueStats, RetryPolicy, Sender, SenderError, SqliteStore,
};

#[cfg(feature = "postgres")]
mod support;

async fn add_destination<S: DeliveryStore + Clone>(store: S, id: &str) -> S {
    let sender = Sender::builder(store.clone())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .clock(ManualClock::at(0))
        .build()
        .unwrap();
    sender
        .add_destination(
            NewDestination::new("http://127.0.0.1:9/", "s-0123456789abcdef0123456789").id(id),
        )
        .await
        .unwrap();
    store
}

fn attempt(id: &str, n: u32, at: i64, ok: bool) -> DeliveryAttempt {
    let mut a = DeliveryAttempt::new(id, n, at);
    a.duration_ms = 5;
    if ok {
        a.status_code = Some(200);
    } else {
        a.status_code = Some(500);
        a.error_class = Some(ErrorClass::Status);
        a.error = Some("the endpoint answered 500".into());
    }
    a
}

/// The queue's figures: every pending delivery counts towards the depth;
/// the oldest due time is that of the earliest delivery a claim could
/// take (not under a live lease, of an enabled destination). Disabling
/// reports only the call that disabled.
async fn queue_figures<S: DeliveryStore + Clone>(store: S) {
    assert_eq!(store.queue_stats(0).await.unwrap(), QueueStats::default());
    let store = add_destination(store, "dst_q").await;
    let store = add_destination(store, "dst_r").await;
    let mut news = Vec::new();
    for (due, dest) in [
        (3_000, "dst_q"),
        (1_000, "dst_q"),
        (2_000, "dst_r"),
        (9_000, "dst_q"),
    ] {
        let e = OutgoingEvent::new("kpi.alert", &due).unwrap();
        let mut d = NewDelivery::new(e.id(), dest, 500);
        d.next_attempt_at_ms = due;
        store
            .enqueue(&e, 500, std::slice::from_ref(&d))
            .await
            .unwrap();
        news.push(d);
    }
    let stats = store.queue_stats(1_500).await.unwrap();
    assert_eq!((stats.pending, stats.oldest_due_at_ms), (4, Some(1_000)));
    assert_eq!(stats.oldest_due_age_ms(1_500), 500);
    // The oldest is claimed (leased until 5 000): the next one is oldest.
    let claimed = store.claim_due(1_500, 1, 5_000).await.unwrap();
    assert_eq!(claimed[0].id, news[1].id);
    let stats = store.queue_stats(1_600).await.unwrap();
    assert_eq!((stats.pending, stats.oldest_due_at_ms), (4, Some(2_000)));
    // Its lease expired: it is waiting again.
    assert_eq!(
        store.queue_stats(5_000).await.unwrap().oldest_due_at_ms,
        Some(1_000)
    );
    // A disabled destination's deliveries wait, but are not due for a claim.
    assert!(store.disable_destination("dst_r", "gone").await.unwrap());
    assert!(!store.disable_destination("dst_r", "gone").await.unwrap());
    assert!(!store.disable_destination("dst_none", "gone").await.unwrap());
    let r = store.destination("dst_r").await.unwrap().unwrap();
    assert!(!r.enabled);
    assert_eq!(r.disabled_reason.as_deref(), Some("gone"));
    let stats = store.queue_stats(1_600).await.unwrap();
    assert_eq!((stats.pending, stats.oldest_due_at_ms), (4, Some(3_000)));
    // Not due yet: an age of zero.
    assert_eq!(stats.oldest_due_age_ms(1_600), 0);
    // Finished deliveries leave the queue.
    let held = store.claim_due(5_000, 10, 6_000).await.unwrap();
    for d in &held {
        let next = NextStep::Delivered;
        store
            .record_attempt(&attempt(&d.id, 1, 5_000, true), 6_000, &next)
            .await
            .unwrap();
    }
    let stats = store.queue_stats(5_100).await.unwrap();
    assert_eq!(stats.pending, 4 - held.len() as u64);
    assert_eq!(stats.oldest_due_at_ms, Some(9_000));
}

/// Claims, leases, attempts, retries, dead letters and replays, as every
/// store must do them.
async fn contract<S: DeliveryStore + Clone>(store: S) {
    let store = add_destination(store, "dst_a").await;
    let e1 = OutgoingEvent::new("kpi.alert", &1).unwrap();
    let e2 = OutgoingEvent::new("kpi.alert", &2).unwrap();
    let d1 = NewDelivery::new(e1.id(), "dst_a", 1_000);
    let mut d2 = NewDelivery::new(e2.id(), "dst_a", 1_000);
    d2.next_attempt_at_ms = 5_000;
    store
        .enqueue(&e1, 1_000, std::slice::from_ref(&d1))
        .await
        .unwrap();
    store
        .enqueue(&e2, 1_000, std::slice::from_ref(&d2))
        .await
        .unwrap();
    assert!(matches!(
        store.enqueue(&e1, 1_000, &[]).await,
        Err(SenderError::DuplicateEvent { .. })
    ));

    // Only what is due, and leased: a second claim gets nothing.
    let claimed = store.claim_due(1_000, 10, 2_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, d1.id);
    assert_eq!(claimed[0].body.as_ref(), b"1");
    assert_eq!(claimed[0].lease_until_ms, Some(2_000));
    assert!(store.claim_due(1_500, 10, 3_000).await.unwrap().is_empty());
    // The worker died: after the lease expires it is due again.
    let again = store.claim_due(2_000, 10, 3_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, d1.id);

    // The first worker, whose lease (2 000) expired and was claimed again,
    // finishes late: its attempt joins the history, but only the current
    // holder (lease 3 000) moves the delivery on.
    store
        .record_attempt(
            &attempt(&d1.id, 1, 1_000, false),
            2_000,
            &NextStep::DeadLetter("late".into()),
        )
        .await
        .unwrap();
    store.reschedule(&d1.id, 2_000, 99_000).await.unwrap();
    store
        .dead_letter(&d1.id, 2_000, 2_100, "late")
        .await
        .unwrap();
    let d = store.delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.next_attempt_at_ms, d.lease_until_ms),
        (DeliveryStatus::Pending, Some(1_000), Some(3_000)),
        "a stale lease moved the delivery"
    );

    // A failed attempt schedules a retry and releases the lease.
    store
        .record_attempt(
            &attempt(&d1.id, 1, 2_000, false),
            3_000,
            &NextStep::RetryAt(4_000),
        )
        .await
        .unwrap();
    let d = store.delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at_ms, d.lease_until_ms),
        (DeliveryStatus::Pending, 1, Some(4_000), None)
    );
    assert!(store.claim_due(3_999, 10, 9_000).await.unwrap().is_empty());
    // Both due at 5 000: earliest due first, limit respected.
    let both = store.claim_due(5_000, 1, 9_000).await.unwrap();
    assert_eq!(both[0].id, d1.id);
    let rest = store.claim_due(5_000, 10, 9_000).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, d2.id);

    store
        .record_attempt(
            &attempt(&d1.id, 2, 5_000, true),
            9_000,
            &NextStep::Delivered,
        )
        .await
        .unwrap();
    store
        .record_attempt(
            &attempt(&d2.id, 1, 5_000, false),
            9_000,
            &NextStep::DeadLetter("gave up".into()),
        )
        .await
        .unwrap();
    let d = store.delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.delivered_at_ms, Some(5_005));
    // A late worker's failure after another delivered it changes nothing
    // but the history.
    store
        .record_attempt(
            &attempt(&d1.id, 2, 5_100, false),
            9_000,
            &NextStep::RetryAt(6_000),
        )
        .await
        .unwrap();
    let d = store.delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.next_attempt_at_ms),
        (DeliveryStatus::Delivered, None)
    );
    assert_eq!(store.attempts(&d1.id).await.unwrap().len(), 4);
    let dead = store.delivery(&d2.id).await.unwrap().unwrap();
    assert_eq!(dead.status, DeliveryStatus::DeadLettered);
    assert_eq!(dead.last_error.as_deref(), Some("gave up"));
    let attempts = store.attempts(&d1.id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 1, 2, 2]
    );
    assert_eq!(
        attempts[1].error.as_deref(),
        Some("the endpoint answered 500")
    );

    // Replay: a new delivery, the original marked, a second replay refused.
    let mut r = NewDelivery::new(e2.id(), "dst_a", 6_000);
    r.replay_of = Some(d2.id.clone());
    let replay = store.replay(&d2.id, &r).await.unwrap().unwrap();
    assert_eq!(replay.event_id, e2.id());
    assert_eq!(replay.status, DeliveryStatus::Pending);
    let orig = store.delivery(&d2.id).await.unwrap().unwrap();
    assert_eq!(orig.status, DeliveryStatus::Replayed);
    assert_eq!(orig.replayed_as.as_deref(), Some(replay.id.as_str()));
    assert_eq!(store.attempts(&d2.id).await.unwrap().len(), 1, "kept");
    let r2 = NewDelivery::new(e2.id(), "dst_a", 6_000);
    assert!(store.replay(&d2.id, &r2).await.unwrap().is_none());

    // Reschedule without an attempt, then a disabled destination holds it.
    let c = store.claim_due(6_000, 10, 9_000).await.unwrap();
    assert_eq!(c.len(), 1);
    store.reschedule(&replay.id, 1, 7_000).await.unwrap();
    assert_eq!(
        store
            .delivery(&replay.id)
            .await
            .unwrap()
            .unwrap()
            .lease_until_ms,
        Some(9_000),
        "a reschedule with another lease changed nothing"
    );
    store.reschedule(&replay.id, 9_000, 7_000).await.unwrap();
    let mut dest = store.destination("dst_a").await.unwrap().unwrap();
    dest.enabled = false;
    store.save_destination(&dest).await.unwrap();
    assert!(store.claim_due(8_000, 10, 9_000).await.unwrap().is_empty());
    dest.enabled = true;
    store.save_destination(&dest).await.unwrap();
    assert_eq!(store.claim_due(8_000, 10, 9_000).await.unwrap().len(), 1);
    assert_eq!(store.destinations().await.unwrap().len(), 1);

    // Queries.
    let all = store.deliveries(&DeliveryQuery::new()).await.unwrap();
    assert_eq!(all.items.len(), 3);
    let dead_q = DeliveryQuery::new().status(DeliveryStatus::Replayed);
    assert_eq!(store.deliveries(&dead_q).await.unwrap().items.len(), 1);
    let page = store
        .deliveries(&DeliveryQuery::new().limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let next = store
        .deliveries(&DeliveryQuery::new().limit(2).after_page(&page))
        .await
        .unwrap();
    assert_eq!(next.items.len(), 1);
    assert!(next.next_cursor.is_none());

    // Deleting dead-letters what is pending.
    assert!(
        store
            .delete_destination("dst_a", 9_000, "deleted")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_destination("dst_a", 9_000, "deleted")
            .await
            .unwrap()
    );
    let gone = store.delivery(&replay.id).await.unwrap().unwrap();
    assert_eq!(gone.status, DeliveryStatus::DeadLettered);
    assert_eq!(gone.last_error.as_deref(), Some("deleted"));
    // Delivered history stays.
    assert_eq!(
        store.delivery(&d1.id).await.unwrap().unwrap().status,
        DeliveryStatus::Delivered
    );
}

const HOUR: i64 = 3_600_000;
/// 30 s into an hour: the health window ends with this minute.
const NOW: i64 = 500 * HOUR + 30_000;

/// Stores an event for `destination` and one delivery of it, leased, and
/// records one attempt of it that started at `at` and took `duration_ms`:
/// a 2xx, or a failure with `code` and `error`.
async fn attempt_once<S: DeliveryStore>(
    store: &S,
    destination: &str,
    at: i64,
    duration_ms: u64,
    failure: Option<(Option<u16>, &str)>,
    next: NextStep,
) {
    let e = OutgoingEvent::new("kpi.alert", &at).unwrap();
    let mut d = NewDelivery::new(e.id(), destination, at);
    d.lease_until_ms = Some(at + 10_000);
    store.enqueue(&e, at, &[d.clone()]).await.unwrap();
    let mut a = DeliveryAttempt::new(&d.id, 1, at);
    a.duration_ms = duration_ms;
    match failure {
        None => a.status_code = Some(200),
        Some((code, error)) => {
            a.status_code = code;
            a.error_class = Some(if code.is_some() {
                ErrorClass::Status
            } else {
                ErrorClass::Connect
            });
            a.error = Some(error.to_owned());
        }
    }
    store.record_attempt(&a, at + 10_000, &next).await.unwrap();
}

/// Pending deliveries of `destination` due at each of `due`.
async fn queue_up<S: DeliveryStore>(store: &S, destination: &str, due: &[i64]) {
    for &at in due {
        let e = OutgoingEvent::new("kpi.alert", &at).unwrap();
        let mut d = NewDelivery::new(e.id(), destination, NOW - HOUR);
        d.next_attempt_at_ms = at;
        store.enqueue(&e, NOW - HOUR, &[d]).await.unwrap();
    }
}

/// Success counts, percentiles, hourly slots, the last error and the queue
/// of each destination, from the history, as every store must give them.
async fn health_contract<S: DeliveryStore + Clone>(store: S) {
    let store = add_destination(store, "dst_a").await;
    let store = add_destination(store, "dst_b").await;
    let store = add_destination(store, "dst_c").await;
    let long = "é".repeat(300);
    let a = |at, ms, failure, next| attempt_once(&store, "dst_a", at, ms, failure, next);
    // The last hour: 4 ms, 40 ms, 90 ms (a 503), 4 ms 59 minutes ago.
    a(NOW - 1_000, 4, None, NextStep::Delivered).await;
    a(NOW - 2_000, 40, None, NextStep::Delivered).await;
    let retry = NextStep::RetryAt(NOW + 60_000);
    a(NOW - 3_000, 90, Some((Some(503), long.as_str())), retry).await;
    a(NOW - 30_000 - 59 * 60_000, 4, None, NextStep::Delivered).await;
    // Earlier today: 700 ms 23 hours ago; a refused connection (2 s) five
    // hours ago, recorded last but older than the 503. Yesterday: ignored.
    a(NOW - 23 * HOUR, 700, None, NextStep::Delivered).await;
    let gone = NextStep::DeadLetter("gave up".into());
    a(
        NOW - 5 * HOUR,
        2_000,
        Some((None, "connection refused")),
        gone,
    )
    .await;
    a(NOW - 25 * HOUR, 1, None, NextStep::Delivered).await;
    // The day's first minute, before the first hourly slot: counted in the
    // day, in no slot. The minute before it: not in the day.
    a(NOW + 30_000 - 24 * HOUR, 7, None, NextStep::Delivered).await;
    a(NOW - 24 * HOUR, 1, None, NextStep::Delivered).await;
    queue_up(
        &store,
        "dst_b",
        &[NOW - 10_000, NOW + 60_000, NOW - 5_000, NOW],
    )
    .await;

    let health = store.destination_health(NOW).await.unwrap();
    let ids: Vec<&str> = health.iter().map(|h| h.destination_id.as_str()).collect();
    assert_eq!(ids, ["dst_a", "dst_b", "dst_c"], "registration order");
    let [a, b, c]: [DestinationHealth; 3] = health.try_into().unwrap();

    let hour = (a.last_hour.attempts, a.last_hour.successes);
    assert_eq!(hour, (4, 3));
    assert_eq!(
        (a.last_hour.p50_ms, a.last_hour.p99_ms),
        (Some(5), Some(90))
    );
    assert_eq!((a.last_day.attempts, a.last_day.successes), (7, 5));
    assert_eq!(
        (a.last_day.p50_ms, a.last_day.p99_ms),
        (Some(50), Some(2_000))
    );
    // 24 clock hours, the last one the hour of NOW.
    assert_eq!(a.hourly.len(), 24);
    assert_eq!(a.hourly[0].start_ms, NOW - 30_000 - 23 * HOUR);
    assert_eq!(a.hourly[23].start_ms, NOW - 30_000);
    let busy: Vec<(usize, u64, u64, Option<u64>)> = a
        .hourly
        .iter()
        .enumerate()
        .filter(|(_, s)| s.attempts > 0)
        .map(|(i, s)| (i, s.attempts, s.successes, s.p50_ms))
        .collect();
    assert_eq!(
        busy,
        [
            (0, 1, 1, Some(700)),
            (18, 1, 0, Some(2_000)),
            (22, 1, 1, Some(4)),
            (23, 3, 2, Some(50))
        ]
    );
    let error = a.last_error.unwrap();
    assert_eq!((error.at_ms, error.status_code), (NOW - 3_000, Some(503)));
    assert_eq!(error.message, "é".repeat(200), "cut to 200 characters");
    assert_eq!(
        (a.queue.pending, a.queue.due, a.queue.oldest_due_at_ms),
        (1, 0, None)
    );

    assert_eq!(b.last_day.attempts, 0);
    assert_eq!(b.last_error, None);
    let queue = (b.queue.pending, b.queue.due, b.queue.oldest_due_at_ms);
    assert_eq!(queue, (4, 3, Some(NOW - 10_000)));

    assert_eq!(
        (c.last_hour.attempts, c.last_hour.p50_ms, c.last_day.p99_ms),
        (0, None, None)
    );
    assert!(
        c.hourly
            .iter()
            .all(|s| s.attempts == 0 && s.p50_ms.is_none())
    );
    assert_eq!((c.queue.pending, &c.last_error), (0, &None));
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["lastHour"]["p50Ms"], serde_json::Value::Null, "{json}");
}

/// Records attempts two days and one day before, and at, the first minute
/// of an hour (its first attempt) for `dst_a`; the rollup's minute rows
/// older than two days are then gone, the others kept.
async fn attempts_across_days<S: DeliveryStore + Clone>(store: S) -> S {
    let store = add_destination(store, "dst_a").await;
    for at in [NOW - 49 * HOUR, NOW - 47 * HOUR, NOW - 24 * HOUR, NOW] {
        attempt_once(&store, "dst_a", at, 3, None, NextStep::Delivered).await;
    }
    store
}

/// The minute rows the pruning must leave: two days back, at most.
const KEPT_MINUTES: [i64; 3] = [
    NOW - 30_000 - 47 * HOUR,
    NOW - 30_000 - 24 * HOUR,
    NOW - 30_000,
];

#[tokio::test]
async fn sqlite_rollup_drops_minute_rows_older_than_two_days() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prune.db");
    let store = attempts_across_days(SqliteStore::open(&path).unwrap()).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let minutes: Vec<i64> = conn
        .prepare("SELECT minute_ms FROM attempt_minutes ORDER BY minute_ms")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(minutes, KEPT_MINUTES);
    let hours: i64 = conn
        .query_row("SELECT COUNT(*) FROM attempt_hours", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hours, 4, "hour rows are kept");
    let day = &store.destination_health(NOW).await.unwrap()[0].last_day;
    assert_eq!(day.attempts, 1, "the day holds only the attempt of NOW");
}

#[tokio::test]
async fn memory_store_meets_the_health_contract() {
    health_contract(MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_meets_the_health_contract() {
    let dir = tempfile::tempdir().unwrap();
    health_contract(SqliteStore::open(dir.path().join("h.db")).unwrap()).await;
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    contract(MemoryStore::new()).await;
    queue_figures(MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(SqliteStore::open(dir.path().join("q.db")).unwrap()).await;
    contract(SqliteStore::open_in_memory().unwrap()).await;
    queue_figures(SqliteStore::open(dir.path().join("queue.db")).unwrap()).await;
}

#[tokio::test]
async fn sqlite_schema_is_versioned_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = add_destination(SqliteStore::open(&path).unwrap(), "dst_a").await;
    let e = OutgoingEvent::new("kpi.alert", &serde_json::json!({"a": 1})).unwrap();
    store
        .enqueue(&e, 1, &[NewDelivery::new(e.id(), "dst_a", 1)])
        .await
        .unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    let d = reopened.destination("dst_a").await.unwrap().unwrap();
    assert_eq!(d.secrets[0].expose_bytes(), b"s-0123456789abcdef0123456789");
    assert_eq!(
        reopened
            .deliveries(&DeliveryQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    drop(reopened);
    let conn = rusqlite_version(&path);
    assert_eq!(conn, (4, "wal".to_owned()));
}

fn rusqlite_version(path: &std::path::Path) -> (i64, String) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mode = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    (version, mode)
}

/// Restart: pending deliveries resume and a scheduled retry keeps its due
/// time.
#[tokio::test]
async fn sqlite_restart_resumes_pending_and_keeps_retry_due_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (h, s) = (healthy.clone(), seen.clone());
    let app = Router::new().route(
        "/",
        post(move || {
            let (h, s) = (h.clone(), s.clone());
            async move {
                s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if h.load(std::sync::atomic::Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let build = |store: SqliteStore| {
        Sender::builder(store)
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .poll_interval(Duration::from_millis(10))
            .retry(
                RetryPolicy::new([Duration::from_millis(1500)])
                    .jitter(0.0)
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let first = build(SqliteStore::open(&path).unwrap());
    first
        .add_destination(NewDestination::new(
            format!("http://{addr}/"),
            "s-0123456789abcdef0123456789",
        ))
        .await
        .unwrap();
    let retried = first
        .publish(OutgoingEvent::new("a", &1).unwrap())
        .await
        .unwrap();
    let w = first.start();
    // Wait for the first (failing) attempt, then stop.
    loop {
        if first
            .delivery_history(&retried[0].id)
            .await
            .unwrap()
            .attempts
            .len()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.shutdown().await;
    let before = first
        .delivery_history(&retried[0].id)
        .await
        .unwrap()
        .delivery;
    let due = before.next_attempt_at_ms.unwrap();
    // Published while no worker runs.
    let waiting = first
        .publish(OutgoingEvent::new("b", &2).unwrap())
        .await
        .unwrap();
    drop(first);

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = build(SqliteStore::open(&path).unwrap());
    let after = second
        .delivery_history(&retried[0].id)
        .await
        .unwrap()
        .delivery;
    assert_eq!(after.next_attempt_at_ms, Some(due), "the due time survived");
    let _w = second.start();
    for id in [&retried[0].id, &waiting[0].id] {
        loop {
            let d = second.delivery_history(id).await.unwrap().delivery;
            if d.status == DeliveryStatus::Delivered {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let h = second.delivery_history(&retried[0].id).await.unwrap();
    assert_eq!(h.attempts.len(), 2);
    assert!(
        h.attempts[1].started_at_ms >= due,
        "the retry waited for its due time"
    );
    assert!(SystemClock.now_millis() >= due);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// Calls queued together commit in one transaction. A call in the group that
/// fails (a duplicate event id) must roll back alone: the others commit,
/// and the failed one leaves nothing behind.
#[tokio::test]
async fn sqlite_a_failing_call_in_a_commit_group_rolls_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = add_destination(SqliteStore::open(dir.path().join("q.db")).unwrap(), "dst_a").await;
    let taken = OutgoingEvent::new("kpi.alert", &0).unwrap();
    store
        .enqueue(&taken, 1, &[NewDelivery::new(taken.id(), "dst_a", 1)])
        .await
        .unwrap();
    // 64 calls queued at once (the store thread groups whatever has queued
    // while it was busy), every eighth one a duplicate of `taken` carrying
    // a delivery of its own that must not be stored.
    let calls = (0..64).map(|i| {
        let store = store.clone();
        let event = if i % 8 == 3 {
            taken.clone()
        } else {
            OutgoingEvent::new("kpi.alert", &i).unwrap()
        };
        async move {
            let new = NewDelivery::new(event.id(), "dst_a", 2);
            let id = new.id.clone();
            (id, store.enqueue(&event, 2, &[new]).await)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut stored = 0;
    for (i, (delivery_id, result)) in results.into_iter().enumerate() {
        if i % 8 == 3 {
            assert!(
                matches!(result, Err(SenderError::DuplicateEvent { .. })),
                "call {i}: {result:?}"
            );
            assert!(store.delivery(&delivery_id).await.unwrap().is_none());
        } else {
            assert_eq!(result.unwrap()[0].id, delivery_id, "call {i}");
            assert!(store.delivery(&delivery_id).await.unwrap().is_some());
            stored += 1;
        }
    }
    assert_eq!(stored, 56);
    let all = store
        .deliveries(&DeliveryQuery::new().limit(500))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 57, "56 new and the first one");
}

/// A database written with schema version 1 is migrated on open: its
/// destination, events, deliveries (pending, delivered, dead-lettered) and
/// attempts survive, in order, and the store goes on working with them.
#[tokio::test]
async fn sqlite_schema_1_is_migrated_with_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../src/sender/store/schema/1.sql"))
            .unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO destinations VALUES ('dst_a', 'http://127.0.0.1:9/', 'native', '{\"kind\":\"all\"}',
                 1, NULL, 1, '[{\"key\":\"cw==\",\"expiresAt\":null}]', 1);
             INSERT INTO events VALUES ('evt_1', 'kpi.alert', X'7B7D', 10), ('evt_2', 'kpi.alert', X'5B5D', 20);
             INSERT INTO deliveries (id, event_id, destination_id, status, attempts, next_attempt_at_ms,
                 created_at_ms, updated_at_ms, delivered_at_ms, dead_lettered_at_ms, last_error)
             VALUES ('dlv_done', 'evt_1', 'dst_a', 'delivered', 2, NULL, 10, 30, 30, NULL, NULL),
                    ('dlv_dead', 'evt_2', 'dst_a', 'dead_lettered', 1, NULL, 20, 40, NULL, 40, 'gave up'),
                    ('dlv_wait', 'evt_2', 'dst_a', 'pending', 1, 5000, 21, 41, NULL, NULL, 'the endpoint answered 500');
             INSERT INTO attempts (delivery_id, attempt, started_at_ms, duration_ms, status_code, error_class, error)
             VALUES ('dlv_done', 1, 11, 1, 500, 'status', 'the endpoint answered 500'),
                    ('dlv_done', 2, 25, 5, 200, NULL, NULL),
                    ('dlv_dead', 1, 39, 1, 500, 'status', 'gave up'),
                    ('dlv_wait', 1, 40, 1, 500, 'status', 'the endpoint answered 500');",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(rusqlite_version(&path).0, 4);
    let d = store.destination("dst_a").await.unwrap().unwrap();
    assert_eq!(d.secrets[0].expose_bytes(), b"s");
    let all = store.deliveries(&DeliveryQuery::new()).await.unwrap();
    assert_eq!(
        all.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["dlv_wait", "dlv_dead", "dlv_done"],
        "newest first, sequence numbers kept"
    );
    assert_eq!(all.items[2].body.as_ref(), b"{}");
    assert!(all.items.iter().all(|d| d.traceparent.is_none()));
    let dead = store
        .deliveries(&DeliveryQuery::new().status(DeliveryStatus::DeadLettered))
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].last_error.as_deref(), Some("gave up"));
    let history = store.attempts("dlv_done").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|a| (a.attempt, a.status_code))
            .collect::<Vec<_>>(),
        [(1, Some(500)), (2, Some(200))]
    );

    // The health rollup is filled from the migrated history.
    let health = store.destination_health(1_000).await.unwrap();
    let hour = &health[0].last_hour;
    assert_eq!((hour.attempts, hour.successes), (4, 1));
    assert_eq!((hour.p50_ms, hour.p99_ms), (Some(1), Some(5)));
    let error = health[0].last_error.clone().unwrap();
    assert_eq!((error.at_ms, error.status_code), (40, Some(500)));
    assert_eq!(error.message, "the endpoint answered 500");
    assert_eq!((health[0].queue.pending, health[0].queue.due), (1, 0));

    // The pending one is claimed when due, and its next attempt appends to
    // the migrated history.
    assert!(store.claim_due(4_999, 10, 9_000).await.unwrap().is_empty());
    let claimed = store.claim_due(5_000, 10, 9_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "dlv_wait");
    store
        .record_attempt(
            &attempt("dlv_wait", 2, 5_000, true),
            9_000,
            &NextStep::Delivered,
        )
        .await
        .unwrap();
    assert_eq!(store.attempts("dlv_wait").await.unwrap().len(), 2);
    // New deliveries get sequence numbers after the migrated ones.
    let e = OutgoingEvent::new("kpi.alert", &3).unwrap();
    let created = store
        .enqueue(&e, 6_000, &[NewDelivery::new(e.id(), "dst_a", 6_000)])
        .await
        .unwrap();
    assert!(created[0].seq > all.items[0].seq);
    // A duplicate event id is still refused by the rebuilt events table.
    let again = OutgoingEvent::from_json("kpi.alert", "{}")
        .unwrap()
        .with_id("evt_1")
        .unwrap();
    assert!(matches!(
        store.enqueue(&again, 6_000, &[]).await,
        Err(SenderError::DuplicateEvent { .. })
    ));
}

/// Another connection holding the write lock: a call waits for it (and
/// goes through as soon as it is released), and after about five seconds
/// gives up with an error that says the database is locked.
/// A destination row whose scheme is no known name (written by hand, or by
/// a newer version) is a clear store error when read, naming the column's
/// text, not a panic and not a destination that fails on every delivery.
#[tokio::test]
async fn sqlite_unknown_stored_scheme_is_a_clear_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheme.db");
    let store = add_destination(SqliteStore::open(&path).unwrap(), "dst_a").await;
    drop(store);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE destinations SET scheme = 'carrier-pigeon'", [])
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let err = store.destination("dst_a").await.unwrap_err();
    assert!(
        err.message().contains("unknown scheme `carrier-pigeon`"),
        "{err}"
    );
    let err = store.destinations().await.unwrap_err();
    assert!(err.message().contains("carrier-pigeon"), "{err}");
}

#[tokio::test]
async fn sqlite_waits_for_a_lock_held_elsewhere_then_gives_up_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = add_destination(SqliteStore::open(&path).unwrap(), "dst_a").await;
    let other = rusqlite::Connection::open(&path).unwrap();

    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
        other
    });
    let e = OutgoingEvent::new("kpi.alert", &1).unwrap();
    let started = std::time::Instant::now();
    store
        .enqueue(&e, 1, &[NewDelivery::new(e.id(), "dst_a", 1)])
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(
        waited < Duration::from_millis(1_500),
        "went through soon after the release: {waited:?}"
    );

    let other = release.join().unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = OutgoingEvent::new("kpi.alert", &2).unwrap();
    let started = std::time::Instant::now();
    let refused = store
        .enqueue(&e, 2, &[NewDelivery::new(e.id(), "dst_a", 2)])
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(8),
        "one wait of about five seconds for the whole call: {waited:?}"
    );
    assert!(refused.to_string().contains("locked"), "{refused}");
    other.execute_batch("ROLLBACK").unwrap();
    // Nothing of the refused call was stored; the store works again.
    assert_eq!(
        store
            .deliveries(&DeliveryQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[cfg(feature = "postgres")]
mod postgres {
    use webhook_guard::sender::{
        DeliveryQuery, DeliveryStore, DeliveryStoreError, NewDelivery, OutgoingEvent, PgStore,
        SecretSeal,
    };
    use zeroize::Zeroizing;

    use super::support::postgres_server::PostgresServer;
    use super::{add_destination, contract, health_contract, queue_figures};

    #[tokio::test]
    async fn postgres_store_meets_the_contract() {
        let pg = PostgresServer::start();
        let url = pg.create_database("contract");
        contract(PgStore::connect(&url).await.unwrap()).await;
        let url = pg.create_database("queue");
        queue_figures(PgStore::connect(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_rollup_drops_minute_rows_older_than_two_days() {
        let pg = PostgresServer::start();
        let url = pg.create_database("prune");
        let store = super::attempts_across_days(PgStore::connect(&url).await.unwrap()).await;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let minutes: Vec<i64> = client
            .query(
                "SELECT minute_ms FROM sender_attempt_minutes ORDER BY minute_ms",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(minutes, super::KEPT_MINUTES);
        let hours: i64 = client
            .query_one("SELECT COUNT(*) FROM sender_attempt_hours", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(hours, 4, "hour rows are kept");
        let day = &store.destination_health(super::NOW).await.unwrap()[0].last_day;
        assert_eq!(day.attempts, 1, "the day holds only the attempt of NOW");
    }

    #[tokio::test]
    async fn postgres_store_meets_the_health_contract() {
        let pg = PostgresServer::start();
        let url = pg.create_database("health");
        health_contract(PgStore::connect(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_nodes_starting_together_migrate_once() {
        let pg = PostgresServer::start();
        let url = pg.create_database("race");
        let (a, b, c) = tokio::join!(
            PgStore::connect(&url),
            PgStore::connect(&url),
            PgStore::connect(&url)
        );
        let (a, b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert_eq!(
            pg.psql(
                "race",
                "SELECT version FROM webhook_guard_schema WHERE component = 'sender'"
            ),
            "4"
        );
        // One schema, shared: what one node stores, another reads.
        let a = add_destination(a, "dst_a").await;
        assert_eq!(b.destinations().await.unwrap()[0].id, "dst_a");
        drop(a);
    }

    #[tokio::test]
    async fn postgres_refuses_a_schema_newer_than_it_knows() {
        let pg = PostgresServer::start();
        let url = pg.create_database("newer");
        drop(PgStore::connect(&url).await.unwrap());
        pg.psql(
            "newer",
            "UPDATE webhook_guard_schema SET version = 99 WHERE component = 'sender'",
        );
        let err = PgStore::connect(&url).await.unwrap_err().to_string();
        assert!(
            err.contains("version 99") && err.contains("newer") && err.contains("upgrade"),
            "{err}"
        );
    }

    /// Stands in for a KMS: XOR with a pad.
    struct Pad;

    impl SecretSeal for Pad {
        fn seal(&self, key: &[u8]) -> Result<Vec<u8>, DeliveryStoreError> {
            Ok(key.iter().map(|k| k ^ 0x5a).collect())
        }
        fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, DeliveryStoreError> {
            Ok(Zeroizing::new(self.seal(sealed)?))
        }
    }

    #[tokio::test]
    async fn postgres_data_survives_reconnecting_and_secrets_are_sealed() {
        let pg = PostgresServer::start();
        pg.create_database("survive");
        // Trust authentication ignores the password; it must appear nowhere.
        let url = format!(
            "postgres://postgres:hunter2-password@127.0.0.1:{}/survive",
            pg.port()
        );
        let store = PgStore::connect(&url).await.unwrap().with_secret_seal(Pad);
        assert!(!format!("{store:?}").contains("hunter2"), "{store:?}");
        let store = add_destination(store, "dst_a").await;
        let e = OutgoingEvent::new("kpi.alert", &serde_json::json!({"a": 1})).unwrap();
        store
            .enqueue(&e, 1, &[NewDelivery::new(e.id(), "dst_a", 1)])
            .await
            .unwrap();
        drop(store);

        let stored = pg.psql("survive", "SELECT secrets FROM sender_destinations");
        // base64 of the key's first bytes, in the clear, would start so.
        assert!(!stored.contains("cy0wMTIz"), "{stored}");
        assert!(stored.contains("\"sealed\":true"), "{stored}");
        let unsealed = PgStore::connect(&url).await.unwrap();
        let err = unsealed.destination("dst_a").await.unwrap_err().to_string();
        assert!(err.contains("SecretSeal"), "{err}");

        let reopened = PgStore::connect(&url).await.unwrap().with_secret_seal(Pad);
        let d = reopened.destination("dst_a").await.unwrap().unwrap();
        assert_eq!(d.secrets[0].expose_bytes(), b"s-0123456789abcdef0123456789");
        let all = reopened.deliveries(&DeliveryQuery::new()).await.unwrap();
        assert_eq!(all.items.len(), 1);
        assert_eq!(all.items[0].body.as_ref(), br#"{"a":1}"#);

        let refused = PgStore::connect("postgres://postgres:hunter2-password@127.0.0.1:1/survive")
            .await
            .unwrap_err()
            .to_string();
        assert!(!refused.contains("hunter2"), "{refused}");
    }
}
