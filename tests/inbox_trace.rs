//! The sender's trace reaches the inbox's handler: a signed request that
//! carries a `traceparent`, posted over loopback into a real inbox (a SQLite
//! file; with feature `postgres`, a real PostgreSQL server), reaches the
//! handler with that `traceparent` on every attempt, retries included and
//! after the store is opened again by a new inbox (a restart).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/inbox_http.rs"]
#[allow(dead_code, unreachable_pub)]
mod inbox_http;
#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inbox_http::{serve_inbox, signed_now};
use webhook_guard::inbox::{Inbox, InboxEvent, InboxStatus, InboxStore, RetryPolicy};

const BODY: &str = r#"{"event":"kpi.alert","tenantId":"tenant_abc123","data":{}}"#;
const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// POSTs `BODY` signed with the native scheme under `id`, with this
/// `traceparent` header (unsigned, as senders send it).
async fn deliver(url: &str, id: &str, traceparent: Option<&str>) {
    let mut req = reqwest::Client::new()
        .post(url)
        .headers(signed_now(id, BODY))
        .body(BODY);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
}

/// Retries after 100 ms, then after 1 s: time enough to stop the first
/// inbox between its second and third attempt.
async fn build<S: InboxStore>(store: S) -> Inbox<S> {
    let retry = RetryPolicy::new([Duration::from_millis(100), Duration::from_secs(1)])
        .jitter(0.0)
        .unwrap();
    Inbox::builder(store)
        .retry(retry)
        .poll_interval(Duration::from_millis(20))
        .lease(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

/// What a handler saw: id, attempt, the `traceparent` it was given.
type Seen = Arc<Mutex<Vec<(String, u32, Option<String>)>>>;

/// A handler that records each call in `seen` and fails when `fail` says.
fn recording(
    seen: &Seen,
    fail: bool,
) -> impl Fn(InboxEvent<serde_json::Value>) -> std::future::Ready<Result<(), String>>
+ Send
+ Sync
+ 'static {
    let seen = Arc::clone(seen);
    move |e: InboxEvent<serde_json::Value>| {
        let tp = e.traceparent().map(ToString::to_string);
        seen.lock().unwrap().push((e.id.clone(), e.attempt, tp));
        std::future::ready(if fail { Err("not yet".into()) } else { Ok(()) })
    }
}

/// Waits until `done` holds for what the handler saw.
async fn wait_until(
    seen: &Seen,
    what: &str,
    done: impl Fn(&[(String, u32, Option<String>)]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&seen.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "{what}: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The whole story over the stores `open` opens, each over the same data.
async fn the_handler_sees_the_senders_trace<S, F, Fut>(open: F)
where
    S: InboxStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let traced = |id: &str, attempt| (id.to_owned(), attempt, Some(TRACE.to_owned()));

    // First run: attempt 1 and its retry fail, both in the sender's trace.
    let first = build(open().await).await;
    let url = serve_inbox(&first).await;
    let seen: Seen = Arc::default();
    let workers = first.start(recording(&seen, true));
    deliver(&url, "evt_traced", Some(TRACE)).await;
    let stored = first.event("evt_traced").await.unwrap().unwrap();
    assert_eq!(
        stored
            .traceparent
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(TRACE)
    );
    wait_until(&seen, "two failed attempts", |s| s.len() == 2).await;
    workers.shutdown().await;
    assert_eq!(
        *seen.lock().unwrap(),
        [traced("evt_traced", 1), traced("evt_traced", 2)]
    );

    // A restart: a new inbox over a store opened again. Attempt 3 is still
    // in the sender's trace: the trace was stored, not held in memory.
    let second = build(open().await).await;
    let url = serve_inbox(&second).await;
    let seen: Seen = Arc::default();
    let _workers = second.start(recording(&seen, false));
    // Without a `traceparent`, or with a malformed one: none.
    deliver(&url, "evt_plain", None).await;
    deliver(&url, "evt_bad", Some(&TRACE.to_uppercase())).await;
    wait_until(&seen, "three events processed", |s| s.len() == 3).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("evt_bad".to_owned(), 1, None),
            ("evt_plain".to_owned(), 1, None),
            traced("evt_traced", 3),
        ]
    );
    let done = second.event("evt_traced").await.unwrap().unwrap();
    assert_eq!(done.status, InboxStatus::Done);
    assert_eq!(done.traceparent, stored.traceparent);
}

#[tokio::test]
async fn sqlite_the_handler_sees_the_senders_trace_across_retries_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    the_handler_sees_the_senders_trace(|| {
        let path = path.clone();
        async move { webhook_guard::inbox::SqliteInboxStore::open(path).unwrap() }
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_the_handler_sees_the_senders_trace_across_retries_and_a_restart() {
    let pg = postgres_server::PostgresServer::start();
    let url = pg.create_database("trace");
    the_handler_sees_the_senders_trace(|| {
        let url = url.clone();
        async move {
            webhook_guard::inbox::PgInboxStore::connect(&url)
                .await
                .unwrap()
        }
    })
    .await;
}
