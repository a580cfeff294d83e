//! The inbox end to end: real HTTP on loopback through `VerifyLayer` and
//! `InboxLayer`, a real SQLite file, real workers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/inbox_http.rs"]
#[allow(dead_code, unreachable_pub)]
mod inbox_http;
#[path = "support/slow_handler.rs"]
#[allow(unreachable_pub)]
mod slow_handler;

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use webhook_guard::inbox::{
    DUPLICATE_HEADER, Inbox, InboxEvent, InboxQuery, InboxStatus, ReplaySelection, RetryPolicy,
    SqliteInboxStore,
};
use webhook_guard::{Event, Message, Scheme, SchemeName, SecretSet, VerifyLayer};

const SECRET: &str = "inbox-test-secret-of-at-least-24-bytes";
const BODY: &str = r#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// Serves `inbox` behind `VerifyLayer` on a free loopback port; returns the
/// webhook URL. The route's own handler must never run.
async fn serve(inbox: &Inbox<SqliteInboxStore>) -> String {
    let app = Router::new()
        .route("/webhooks", post(never_called))
        .layer(inbox.layer())
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/webhooks")
}

async fn never_called() -> &'static str {
    panic!("the inbox answers; the route handler must not run")
}

async fn json(res: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

/// POSTs `BODY` signed with the native scheme under `id`.
async fn deliver(url: &str, id: &str) -> reqwest::Response {
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new(id, now(), BODY.as_bytes()),
        )
        .unwrap();
    reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(BODY)
        .send()
        .await
        .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::new([Duration::from_millis(100), Duration::from_millis(200)])
        .jitter(0.0)
        .unwrap()
}

async fn open(path: &Path) -> Inbox<SqliteInboxStore> {
    Inbox::builder(SqliteInboxStore::open(path).unwrap())
        .retry(fast_retries())
        .poll_interval(Duration::from_millis(20))
        .lease(Duration::from_millis(500))
        .build()
        .await
        .unwrap()
}

/// Waits until event `id` is in `status`.
async fn wait_for(inbox: &Inbox<SqliteInboxStore>, id: &str, status: InboxStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = inbox.event(id).await.unwrap() {
            if e.status == status {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "`{id}` never became {status}: {:?}",
            inbox.event(id).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stored_and_answered_before_the_handler_runs() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = open(&dir.path().join("inbox.db")).await;
    let url = serve(&inbox).await;
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (g, s) = (Arc::clone(&gate), Arc::clone(&seen));
    let _workers = inbox.start(move |e: InboxEvent<Event>| {
        let (g, s) = (Arc::clone(&g), Arc::clone(&s));
        async move {
            // Blocked until the test has its answer.
            g.wait().await;
            s.lock()
                .unwrap()
                .push((e.id, e.attempt, e.signed_at, e.event_type, e.event));
            Ok::<(), String>(())
        }
    });

    let res = deliver(&url, "evt_first").await;
    assert_eq!(res.status(), 200);
    let answer = json(res).await;
    assert_eq!(answer["id"], "evt_first");
    assert!(res_has_no_duplicate(&answer));
    // Answered while the handler is blocked: stored, not processed.
    let stored = inbox.event("evt_first").await.unwrap().unwrap();
    assert_eq!(stored.status, InboxStatus::Pending);
    assert_eq!(
        &stored.body[..],
        BODY.as_bytes(),
        "the body exactly as verified"
    );
    assert_eq!(stored.scheme, SchemeName::Native);
    assert_eq!(stored.event_type.as_deref(), Some("ingestion.completed"));
    assert!(seen.lock().unwrap().is_empty());

    tokio::time::timeout(Duration::from_secs(20), gate.wait())
        .await
        .expect("the handler never ran");
    wait_for(&inbox, "evt_first", InboxStatus::Done).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (id, attempt, signed_at, event_type, event) = &seen[0];
        assert_eq!((id.as_str(), *attempt), ("evt_first", 1));
        assert!(signed_at.is_some_and(|t| (t - now()).abs() < 60));
        assert_eq!(event_type.as_deref(), Some("ingestion.completed"));
        assert_eq!(event.event_type(), "ingestion.completed");
    }
    // The worker lowers its count just after the store says done.
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.unprocessed() != 0 {
        assert!(
            Instant::now() < deadline,
            "still {} unprocessed",
            inbox.unprocessed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn res_has_no_duplicate(answer: &serde_json::Value) -> bool {
    answer.get("duplicate").is_none()
}

#[tokio::test]
async fn accepted_status_can_be_202() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::builder(SqliteInboxStore::open(dir.path().join("i.db")).unwrap())
        .accepted_status(http::StatusCode::ACCEPTED)
        .unwrap()
        .build()
        .await
        .unwrap();
    let url = serve(&inbox).await;
    assert_eq!(deliver(&url, "evt_202").await.status(), 202);
    assert!(
        Inbox::builder(SqliteInboxStore::open_in_memory().unwrap())
            .accepted_status(http::StatusCode::BAD_REQUEST)
            .is_err()
    );
}

#[tokio::test]
async fn a_redelivery_is_a_duplicate_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = |calls: Arc<AtomicUsize>| {
        move |_: InboxEvent<Event>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        }
    };
    {
        let inbox = open(&path).await;
        let url = serve(&inbox).await;
        let workers = inbox.start(counting(Arc::clone(&calls)));
        assert!(
            deliver(&url, "evt_dup")
                .await
                .headers()
                .get(DUPLICATE_HEADER)
                .is_none()
        );
        let again = deliver(&url, "evt_dup").await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()[DUPLICATE_HEADER], "true");
        wait_for(&inbox, "evt_dup", InboxStatus::Done).await;
        workers.shutdown().await;
    }
    // A restart: a new inbox over the same file.
    let inbox = open(&path).await;
    let url = serve(&inbox).await;
    let _workers = inbox.start(counting(Arc::clone(&calls)));
    let after = deliver(&url, "evt_dup").await;
    assert_eq!(after.status(), 200);
    assert_eq!(after.headers()[DUPLICATE_HEADER], "true");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(inbox.events(&InboxQuery::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_dead_lettered_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = open(&dir.path().join("inbox.db")).await;
    let url = serve(&inbox).await;
    let attempts = Arc::new(Mutex::new(Vec::<(u32, Instant)>::new()));
    let healthy = Arc::new(AtomicU32::new(0));
    let (a, h) = (Arc::clone(&attempts), Arc::clone(&healthy));
    let _workers = inbox.start(move |e: InboxEvent<serde_json::Value>| {
        a.lock().unwrap().push((e.attempt, Instant::now()));
        let ok = h.load(Ordering::SeqCst) == 1;
        async move {
            if ok {
                Ok(())
            } else {
                Err("the database is down")
            }
        }
    });
    assert_eq!(deliver(&url, "evt_fail").await.status(), 200);
    wait_for(&inbox, "evt_fail", InboxStatus::DeadLettered).await;
    {
        let attempts = attempts.lock().unwrap();
        let numbers: Vec<u32> = attempts.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3], "first attempt plus two retries");
        let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(200), "{gaps:?}");
    }
    let dead = inbox.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let reason = dead[0].last_error.as_deref().unwrap();
    assert!(
        reason.contains("gave up after 3 attempt(s): the database is down"),
        "{reason}"
    );
    assert_eq!(inbox.unprocessed(), 0);

    healthy.store(1, Ordering::SeqCst);
    let n = inbox
        .replay(&ReplaySelection::One("evt_fail".into()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    wait_for(&inbox, "evt_fail", InboxStatus::Done).await;
    assert_eq!(
        attempts.lock().unwrap().last().unwrap().0,
        1,
        "attempts count anew"
    );
    assert!(inbox.dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_panic_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = open(&dir.path().join("inbox.db")).await;
    let url = serve(&inbox).await;
    let _workers = inbox.start(|e: InboxEvent<Event>| async move {
        assert!(e.attempt > 1, "first attempt panics");
        Ok::<(), String>(())
    });
    assert_eq!(deliver(&url, "evt_panic").await.status(), 200);
    wait_for(&inbox, "evt_panic", InboxStatus::Done).await;
    assert_eq!(inbox.event("evt_panic").await.unwrap().unwrap().attempts, 2);
    // The workers survive the panic and go on.
    assert_eq!(deliver(&url, "evt_after_panic").await.status(), 200);
    wait_for(&inbox, "evt_after_panic", InboxStatus::Done).await;
}

#[tokio::test]
async fn a_body_of_another_shape_is_dead_lettered_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = open(&dir.path().join("inbox.db")).await;
    let url = serve(&inbox).await;
    #[derive(Debug, serde::Deserialize)]
    struct Order {
        #[allow(dead_code)]
        order_id: String,
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let _workers = inbox.start(move |_: InboxEvent<Order>| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), String>(()) }
    });
    assert_eq!(deliver(&url, "evt_shape").await.status(), 200);
    wait_for(&inbox, "evt_shape", InboxStatus::DeadLettered).await;
    let dead = inbox.event("evt_shape").await.unwrap().unwrap();
    assert_eq!(dead.attempts, 1, "no retry can fix the shape");
    assert!(dead.last_error.unwrap().contains("order_id"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_panic_is_caught_and_recorded_as_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::builder(SqliteInboxStore::open(dir.path().join("i.db")).unwrap())
        .retry(RetryPolicy::none())
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let url = serve(&inbox).await;
    let _workers = inbox.start(|_: InboxEvent<Event>| async {
        panic!("boom");
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    });
    assert_eq!(deliver(&url, "evt_boom").await.status(), 200);
    wait_for(&inbox, "evt_boom", InboxStatus::DeadLettered).await;
    let dead = inbox.event("evt_boom").await.unwrap().unwrap();
    assert_eq!(dead.attempts, 1);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("the handler panicked: boom"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn a_store_failure_answers_503_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let inbox = open(&path).await;
    let url = serve(&inbox).await;
    // Another process holds the write lock past the store's lock wait.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let res = deliver(&url, "evt_locked").await;
    assert_eq!(res.status(), 503);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let problem = json(res).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was stored")
    );
    other.execute_batch("ROLLBACK").unwrap();

    let count: i64 = other
        .query_row("SELECT count(*) FROM inbox_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0, "nothing stored half-way");
    assert_eq!(inbox.unprocessed(), 0);
    // The sender's retry then goes through.
    assert_eq!(deliver(&url, "evt_locked").await.status(), 200);
    assert!(inbox.event("evt_locked").await.unwrap().is_some());
}

#[tokio::test]
async fn back_pressure_refuses_with_retry_after_then_accepts_after_draining() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::builder(SqliteInboxStore::open(dir.path().join("i.db")).unwrap())
        .max_pending(3)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let url = serve(&inbox).await;
    // Nothing drains yet: the fourth is refused with the longest wait.
    for i in 0..3 {
        assert_eq!(deliver(&url, &format!("evt_{i}")).await.status(), 200);
    }
    let full = deliver(&url, "evt_3").await;
    assert_eq!(full.status(), 503);
    assert_eq!(full.headers()["retry-after"], "300");
    assert!(inbox.event("evt_3").await.unwrap().is_none());

    // Workers drain it; then deliveries are accepted again.
    let workers = inbox.start(|_: InboxEvent<Event>| async { Ok::<(), String>(()) });
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.unprocessed() > 0 {
        assert!(Instant::now() < deadline, "never drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(deliver(&url, "evt_3").await.status(), 200);
    for i in 4..12 {
        assert_eq!(deliver(&url, &format!("evt_{i}")).await.status(), 200);
        wait_for(&inbox, &format!("evt_{i}"), InboxStatus::Done).await;
    }
    workers.shutdown().await;
    // Having drained ~12 events lately, the wait for one slot is short.
    for i in 12..15 {
        assert_eq!(deliver(&url, &format!("evt_{i}")).await.status(), 200);
    }
    let full = deliver(&url, "evt_15").await;
    assert_eq!(full.status(), 503);
    let secs: u64 = full.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=5).contains(&secs),
        "Retry-After {secs} from the drain rate"
    );
}

/// An instance that only receives (its workers run elsewhere, on the same
/// store) learns that the inbox drained: it reads the count back from the
/// store, at most once a second, before refusing.
#[tokio::test]
async fn a_receive_only_instance_accepts_again_once_others_drain_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let receiver = Inbox::builder(SqliteInboxStore::open(&path).unwrap())
        .max_pending(2)
        .build()
        .await
        .unwrap();
    let url = serve(&receiver).await;
    for i in 0..2 {
        assert_eq!(deliver(&url, &format!("evt_{i}")).await.status(), 200);
    }
    assert_eq!(deliver(&url, "evt_2").await.status(), 503);
    // Another instance on the same file processes what is stored.
    let processor = Inbox::builder(SqliteInboxStore::open(&path).unwrap())
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let workers = processor.start(|_: InboxEvent<Event>| async { Ok::<(), String>(()) });
    for i in 0..2 {
        wait_for(&processor, &format!("evt_{i}"), InboxStatus::Done).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = deliver(&url, "evt_2").await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "the receiver never saw the drain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(receiver.unprocessed(), 1);
    workers.shutdown().await;
}

#[tokio::test]
async fn back_pressure_can_answer_429() {
    let inbox = Inbox::builder(SqliteInboxStore::open_in_memory().unwrap())
        .max_pending(0)
        .full_status(http::StatusCode::TOO_MANY_REQUESTS)
        .unwrap()
        .build()
        .await
        .unwrap();
    let url = serve(&inbox).await;
    let res = deliver(&url, "evt").await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn an_event_under_way_at_a_restart_is_processed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let inbox = open(&path).await;
        let url = serve(&inbox).await;
        let started = Arc::new(tokio::sync::Notify::new());
        let s = Arc::clone(&started);
        let workers = inbox.start(move |_: InboxEvent<Event>| {
            s.notify_one();
            // Never finishes: the process "dies" mid-handler.
            std::future::pending::<Result<(), String>>()
        });
        assert_eq!(deliver(&url, "evt_crash").await.status(), 200);
        tokio::time::timeout(Duration::from_secs(20), started.notified())
            .await
            .expect("the handler never ran");
        drop(workers);
    }
    let inbox = open(&path).await;
    assert_eq!(inbox.unprocessed(), 1, "counted again from the store");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let _workers = inbox.start(move |e: InboxEvent<Event>| {
        s.lock().unwrap().push(e.attempt);
        async { Ok::<(), String>(()) }
    });
    wait_for(&inbox, "evt_crash", InboxStatus::Done).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [2],
        "processed again once the lease expired"
    );
}

/// Two inboxes (two receiver processes) over one SQLite file: a handler
/// five times longer than the lease still runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_longer_than_the_lease_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    slow_handler::a_handler_longer_than_the_lease_runs_once(
        SqliteInboxStore::open(&path).unwrap(),
        SqliteInboxStore::open(&path).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn unauthenticated_requests_never_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let inbox = open(&path).await;
    let url = serve(&inbox).await;
    let client = reqwest::Client::new();
    // No signature at all.
    let res = client.post(&url).body(BODY).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Signed with another secret.
    let forged = Scheme::native()
        .sign(
            &SecretSet::single("someone-elses-secret-of-24-bytes").unwrap(),
            &Message::new("evt_forged", now(), BODY.as_bytes()),
        )
        .unwrap();
    let res = client
        .post(&url)
        .headers(forged)
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A genuine signature over another body.
    let genuine = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new("evt_tampered", now(), BODY.as_bytes()),
        )
        .unwrap();
    let res = client
        .post(&url)
        .headers(genuine)
        .body(BODY.replace("sales_data", "other_data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let other = rusqlite::Connection::open(&path).unwrap();
    let count: i64 = other
        .query_row("SELECT count(*) FROM inbox_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
    assert_eq!(inbox.unprocessed(), 0);
}

#[tokio::test]
async fn without_verify_layer_the_inbox_refuses_loudly() {
    let inbox = Inbox::builder(SqliteInboxStore::open_in_memory().unwrap())
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/webhooks", post(|| async {}))
        .layer(inbox.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks"))
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let problem = json(res).await;
    assert!(problem["detail"].as_str().unwrap().contains("InboxLayer"));
    assert!(
        inbox
            .events(&InboxQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}
