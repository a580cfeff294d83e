//! Ordered processing end to end: real HTTP on loopback through
//! `VerifyLayer` and `InboxLayer`, a real SQLite file, real workers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/inbox_http.rs"]
#[allow(dead_code, unreachable_pub)]
mod inbox_http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use inbox_http::{SECRET, serve_inbox as serve};
use serde_json::{Value, json};
use webhook_guard::inbox::{
    Inbox, InboxBuilder, InboxEvent, InboxStatus, RetryPolicy, SqliteInboxStore, StalePolicy,
};
use webhook_guard::{Message, Scheme, SecretSet};

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// An inbox in a SQLite file under `dir`, ordered by `data.jobId`.
fn builder(dir: &tempfile::TempDir) -> InboxBuilder<SqliteInboxStore> {
    Inbox::builder(SqliteInboxStore::open(dir.path().join("inbox.db")).unwrap())
        .retry(
            RetryPolicy::new([Duration::from_millis(100), Duration::from_millis(200)])
                .jitter(0.0)
                .unwrap(),
        )
        .poll_interval(Duration::from_millis(20))
        .ordering_key(|body: &Value| Some(body["data"]["jobId"].as_str()?.to_owned()))
}

/// POSTs event `kind` of job `job` as `id`, signed `age` seconds ago.
async fn deliver(url: &str, id: &str, kind: &str, job: &str, age: i64) {
    let body = json!({"event": kind, "data": {"jobId": job}}).to_string();
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new(id, now() - age, body.as_bytes()),
        )
        .unwrap();
    let res = reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn wait_for(inbox: &Inbox<SqliteInboxStore>, id: &str, status: InboxStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.event(id).await.unwrap().map(|e| e.status) != Some(status) {
        assert!(Instant::now() < deadline, "`{id}` never became {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type Log = Arc<Mutex<Vec<(String, u32, bool)>>>;

/// A handler that logs (id, attempt, stale) on entry, then holds the event
/// for `hold`; it fails every attempt at the ids in `failing`.
fn logging(
    log: &Log,
    hold: Duration,
    failing: &'static [&'static str],
) -> impl Fn(InboxEvent<Value>) -> futures_util::future::BoxFuture<'static, Result<(), String>>
+ Send
+ Sync
+ 'static {
    let log = Arc::clone(log);
    move |e: InboxEvent<Value>| {
        let log = Arc::clone(&log);
        Box::pin(async move {
            log.lock()
                .unwrap()
                .push((e.id.clone(), e.attempt, e.stale()));
            tokio::time::sleep(hold).await;
            if failing.contains(&e.id.as_str()) {
                return Err(format!("{} failed", e.id));
            }
            Ok(())
        })
    }
}

fn ids(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|(id, _, _)| id.clone())
        .collect()
}

#[tokio::test]
async fn delivered_out_of_order_processed_in_signed_order() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = builder(&dir).build().await.unwrap();
    let url = serve(&inbox).await;
    // `completed` (signed 10 s ago) arrives before `started` (20 s ago),
    // both stored before any worker runs.
    deliver(&url, "completed", "ingestion.completed", "job_1", 10).await;
    deliver(&url, "started", "ingestion.started", "job_1", 20).await;
    let log = Log::default();
    let workers = inbox.start(logging(&log, Duration::from_millis(50), &[]));
    wait_for(&inbox, "completed", InboxStatus::Done).await;
    wait_for(&inbox, "started", InboxStatus::Done).await;
    workers.shutdown().await;
    assert_eq!(ids(&log), ["started", "completed"]);
}

#[tokio::test]
async fn one_at_a_time_per_key_keys_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = builder(&dir).build().await.unwrap();
    let url = serve(&inbox).await;
    for job in ["a", "b", "c"] {
        for step in 0..3 {
            deliver(&url, &format!("{job}{step}"), "step", job, 10 - step).await;
        }
    }
    let running: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let peaks: Arc<Mutex<(usize, usize)>> = Arc::default(); // (per key, overall)
    let (r, p) = (Arc::clone(&running), Arc::clone(&peaks));
    let workers = inbox.start(move |e: InboxEvent<Value>| {
        let (r, p) = (Arc::clone(&r), Arc::clone(&p));
        async move {
            let job = e.event["data"]["jobId"].as_str().unwrap().to_owned();
            {
                let mut r = r.lock().unwrap();
                *r.entry(job.clone()).or_default() += 1;
                let mut p = p.lock().unwrap();
                p.0 = p.0.max(r[&job]);
                p.1 = p.1.max(r.values().sum());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            *r.lock().unwrap().get_mut(&job).unwrap() -= 1;
            Ok::<(), String>(())
        }
    });
    for id in ["a2", "b2", "c2"] {
        wait_for(&inbox, id, InboxStatus::Done).await;
    }
    workers.shutdown().await;
    let (per_key, overall) = *peaks.lock().unwrap();
    assert_eq!(per_key, 1, "two events of one job at once");
    assert!(overall >= 2, "different jobs never ran in parallel");
}

#[tokio::test]
async fn a_failing_head_blocks_its_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = builder(&dir).build().await.unwrap();
    let url = serve(&inbox).await;
    deliver(&url, "a1", "step", "a", 20).await;
    deliver(&url, "a2", "step", "a", 10).await;
    deliver(&url, "b1", "step", "b", 20).await;
    let log = Log::default();
    let workers = inbox.start(logging(&log, Duration::from_millis(10), &["a1"]));
    wait_for(&inbox, "a1", InboxStatus::DeadLettered).await;
    wait_for(&inbox, "a2", InboxStatus::Done).await;
    wait_for(&inbox, "b1", InboxStatus::Done).await;
    workers.shutdown().await;
    let log = log.lock().unwrap().clone();
    let at = |id: &str, attempt: u32| {
        log.iter()
            .position(|(i, a, _)| i == id && *a == attempt)
            .unwrap_or_else(|| panic!("{id} attempt {attempt} missing: {log:?}"))
    };
    // `a2` waits for all three attempts at `a1`; `b1` does not.
    assert!(at("a2", 1) > at("a1", 3), "{log:?}");
    assert!(at("b1", 1) < at("a1", 3), "{log:?}");
}

/// Processes `completed`, then delivers the older `started` of the same job.
async fn late_started(policy: StalePolicy) -> (tempfile::TempDir, Inbox<SqliteInboxStore>, Log) {
    let dir = tempfile::tempdir().unwrap();
    let inbox = builder(&dir).stale_policy(policy).build().await.unwrap();
    let url = serve(&inbox).await;
    let log = Log::default();
    let workers = inbox.start(logging(&log, Duration::ZERO, &[]));
    deliver(&url, "completed", "ingestion.completed", "job_1", 10).await;
    wait_for(&inbox, "completed", InboxStatus::Done).await;
    deliver(&url, "started", "ingestion.started", "job_1", 20).await;
    deliver(&url, "other", "ingestion.started", "job_2", 20).await;
    wait_for(&inbox, "started", InboxStatus::Done).await;
    wait_for(&inbox, "other", InboxStatus::Done).await;
    workers.shutdown().await;
    (dir, inbox, log)
}

#[tokio::test]
async fn a_late_older_event_reaches_the_handler_marked_stale() {
    let (_dir, _inbox, log) = late_started(StalePolicy::Deliver).await;
    let mut log = log.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        [
            ("completed".to_owned(), 1, false),
            ("other".to_owned(), 1, false),
            ("started".to_owned(), 1, true),
        ]
    );
}

#[tokio::test]
async fn skip_policy_records_a_late_older_event_without_the_handler() {
    let (_dir, inbox, log) = late_started(StalePolicy::Skip).await;
    let mut seen = ids(&log);
    seen.sort();
    assert_eq!(seen, ["completed", "other"]);
    let started = inbox.event("started").await.unwrap().unwrap();
    assert_eq!(started.status, InboxStatus::Done);
    assert!(
        started.last_error.as_deref().unwrap().contains("stale"),
        "{started:?}"
    );
}
