//! The console's inbox view and its JSON API, over real HTTP on loopback:
//! real signed deliveries through `VerifyLayer` and `InboxLayer` into a
//! real SQLite inbox, real workers, and the console next to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;
use webhook_guard::inbox::store::{NewInboxEvent, Settle};
use webhook_guard::inbox::{
    Inbox, InboxCounts, InboxEvent, InboxStore, InboxWorkers, MemoryInboxStore, RetryPolicy,
    SqliteInboxStore,
};
use webhook_guard::sender::console::Console;
use webhook_guard::sender::{MemoryStore, Sender};

const TOKEN: &str = "console-inbox-token";

mod console_support;
mod support;

use console_support::raw;

/// Serves `app` on loopback; returns its base URL.
async fn serve(app: Router) -> String {
    format!("http://{}", support::serve(app).await)
}

/// The receiving side, `VerifyLayer` then the inbox; returns its address.
async fn receiver(inbox: &Inbox<SqliteInboxStore>) -> SocketAddr {
    let app = Router::new()
        .route("/webhooks", post(|| async {}))
        .layer(inbox.layer())
        .layer(support::verify_layer());
    support::serve(app).await
}

/// POSTs the signed event `id`; the inbox must accept it.
async fn deliver(receiver: SocketAddr, id: &str) {
    let answer = support::deliver(&support::client(), receiver, "/webhooks", id)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{id}: {answer:?}");
}

/// An inbox in a fresh SQLite file (retrying once after 50 ms) behind a
/// receiver, and the console showing it.
struct Fixture {
    /// Deleted when the test ends.
    _dir: tempfile::TempDir,
    inbox: Inbox<SqliteInboxStore>,
    receiver: SocketAddr,
    base: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteInboxStore::open(dir.path().join("inbox.db")).unwrap();
    let inbox = Inbox::builder(store)
        .retry(
            RetryPolicy::new([Duration::from_millis(50)])
                .jitter(0.0)
                .unwrap(),
        )
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    Fixture {
        receiver: receiver(&inbox).await,
        base: console(inbox.clone()).await,
        inbox,
        _dir: dir,
    }
}

/// The console with `inbox` attached, behind a bearer token; a sender of
/// another store type than the inbox's. Returns the console's base URL.
async fn console<I: InboxStore>(inbox: Inbox<I>) -> String {
    let sender = Sender::builder(MemoryStore::new()).build().unwrap();
    serve(
        Console::new(sender)
            .inbox(inbox)
            .bearer_token(TOKEN)
            .router(),
    )
    .await
}

const BEARER: (&str, &str) = ("authorization", "Bearer console-inbox-token");
const JSON: (&str, &str) = ("content-type", "application/json");

/// An authenticated GET.
async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let (status, _, v) = raw(
        reqwest::Method::GET,
        &format!("{base}/{path}"),
        &[BEARER],
        "",
    )
    .await;
    (status, v)
}

/// An authenticated JSON POST, as the page sends it.
async fn post_json(base: &str, path: &str, body: &str) -> (StatusCode, String, Value) {
    raw(
        reqwest::Method::POST,
        &format!("{base}/{path}"),
        &[BEARER, JSON],
        body,
    )
    .await
}

fn assert_problem(res: &(StatusCode, String, Value), status: StatusCode, anchor: &str, has: &str) {
    assert_eq!(res.0, status, "{:?}", res.2);
    assert_eq!(res.1, "application/problem+json", "{:?}", res.2);
    let kind = res.2["type"].as_str().unwrap();
    assert!(kind.ends_with(&format!("#{anchor}")), "{kind}");
    let detail = res.2["detail"].as_str().unwrap();
    assert!(detail.contains(has), "{detail:?} lacks {has:?}");
}

/// Polls the console's counts until `done` says so.
async fn wait_for_counts(base: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, counts) = get(base, "api/inbox/counts").await;
        assert_eq!(status, StatusCode::OK, "{counts}");
        if done(&counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "never {what}: {counts}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every id of a paged list, following `nextCursor`, `limit` a page.
async fn all_ids(base: &str, path: &str, limit: usize) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<i64> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(c) = cursor {
            url.push_str(&format!("&beforeSeq={c}"));
        }
        let (status, page) = get(base, &url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit, "{page}");
        ids.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["nextCursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return (ids, pages),
        }
    }
}

/// A handler that fails every event whose id starts with `fail_` until
/// healed, and holds `slow_` events until `release` is notified.
struct Handler {
    healed: Arc<AtomicBool>,
    release: Arc<Notify>,
}

/// A [`fixture`] with workers running [`Handler`].
async fn started() -> (Fixture, Handler, InboxWorkers) {
    let f = fixture().await;
    let (handler, workers) = start_workers(&f.inbox);
    (f, handler, workers)
}

fn start_workers(inbox: &Inbox<SqliteInboxStore>) -> (Handler, InboxWorkers) {
    let handler = Handler {
        healed: Arc::new(AtomicBool::new(false)),
        release: Arc::new(Notify::new()),
    };
    let (healed, release) = (Arc::clone(&handler.healed), Arc::clone(&handler.release));
    let workers = inbox.start(move |e: InboxEvent<Value>| {
        let (healed, release) = (Arc::clone(&healed), Arc::clone(&release));
        async move {
            if e.id.starts_with("slow_") {
                release.notified().await;
            }
            if e.id.starts_with("fail_") && !healed.load(Ordering::SeqCst) {
                return Err(format!("refused {} on attempt {}", e.id, e.attempt));
            }
            Ok(())
        }
    });
    (handler, workers)
}

#[tokio::test]
async fn counts_equal_what_was_received_and_processed() {
    let (f, handler, workers) = started().await;

    let ok: Vec<String> = (0..5).map(|i| format!("ok_{i}")).collect();
    let failing: Vec<String> = (0..3).map(|i| format!("fail_{i}")).collect();
    for id in ok.iter().chain(&failing) {
        deliver(f.receiver, id).await;
    }
    deliver(f.receiver, "slow_0").await;
    let counts = wait_for_counts(&f.base, "settled", |c| {
        c["done"] == 5 && c["deadLettered"] == 3 && c["processing"] == 1
    })
    .await;
    assert_eq!(
        counts,
        json!({"received": 0, "processing": 1, "retrying": 0, "done": 5, "deadLettered": 3}),
    );
    assert_eq!(f.inbox.counts().await.unwrap().total(), 9);

    // The lists by state hold exactly those events.
    let ids = |v: Vec<String>| v.into_iter().collect::<HashSet<_>>();
    let (done, _) = all_ids(&f.base, "api/inbox/events?state=done", 100).await;
    assert_eq!(ids(done), ids(ok.clone()));
    let (dead, _) = all_ids(&f.base, "api/inbox/dead-letters", 100).await;
    assert_eq!(ids(dead.clone()), ids(failing.clone()));
    let (dead_by_state, _) = all_ids(&f.base, "api/inbox/events?state=dead_lettered", 100).await;
    assert_eq!(dead_by_state, dead);
    let (processing, _) = all_ids(&f.base, "api/inbox/events?state=processing", 100).await;
    assert_eq!(processing, ["slow_0"]);

    // One event in detail: its attempts and last error, never its body.
    let (status, event) = get(&f.base, "api/inbox/events/fail_1").await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["state"], "dead_lettered");
    assert_eq!(event["attempts"], 2, "the first attempt and one retry");
    assert_eq!(
        event["lastError"],
        "gave up after 2 attempt(s): refused fail_1 on attempt 2"
    );
    assert_eq!(event["eventType"], "ingestion.completed");
    assert_eq!(event["scheme"], "native");
    assert_eq!(event["bodyBytes"], support::BODY.len());
    assert!(event["finishedAtMs"].as_i64().unwrap() >= event["receivedAtMs"].as_i64().unwrap());
    assert!(!event.to_string().contains("tenant_abc123"), "{event}");

    handler.release.notify_waiters();
    wait_for_counts(&f.base, "all done", |c| c["done"] == 6).await;
    workers.shutdown().await;
}

#[tokio::test]
async fn events_are_paged_newest_first_by_cursor() {
    let f = fixture().await;
    // No workers: every event stays received.
    let sent: Vec<String> = (0..7).map(|i| format!("evt_{i}")).collect();
    for id in &sent {
        deliver(f.receiver, id).await;
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();

    let (all, pages) = all_ids(&f.base, "api/inbox/events", 3).await;
    assert_eq!(all, newest_first);
    assert_eq!(pages, 3, "3 + 3 + 1");
    let (received, pages) = all_ids(&f.base, "api/inbox/events?state=received", 2).await;
    assert_eq!(received, newest_first);
    assert_eq!(pages, 4, "2 + 2 + 2 + 1");
    let (exact, pages) = all_ids(&f.base, "api/inbox/events", 7).await;
    assert_eq!(
        (exact.len(), pages),
        (7, 1),
        "a full last page ends the list"
    );
    let (done, _) = all_ids(&f.base, "api/inbox/events?state=done", 3).await;
    assert!(done.is_empty());
    let counts = get(&f.base, "api/inbox/counts").await.1;
    assert_eq!(counts["received"], 7, "{counts}");

    let bad = raw(
        reqwest::Method::GET,
        &format!("{}/api/inbox/events?state=finished", f.base),
        &[BEARER],
        "",
    )
    .await;
    assert_problem(&bad, StatusCode::BAD_REQUEST, "invalid-query", "state");
}

#[tokio::test]
async fn replay_brings_dead_letters_back_and_they_are_processed() {
    let (f, handler, workers) = started().await;
    for id in ["fail_a", "fail_b", "fail_c", "ok_a"] {
        deliver(f.receiver, id).await;
    }
    wait_for_counts(&f.base, "dead-lettered", |c| {
        c["deadLettered"] == 3 && c["done"] == 1
    })
    .await;

    // What cannot be replayed says why.
    let missing = post_json(&f.base, "api/inbox/dead-letters/evt_nope/replay", "").await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not-found", "`evt_nope`");
    let done = post_json(&f.base, "api/inbox/dead-letters/ok_a/replay", "").await;
    assert_problem(&done, StatusCode::CONFLICT, "wrong-state", "is done");
    let unknown = get(&f.base, "api/inbox/events/evt_nope").await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND, "{}", unknown.1);
    assert!(unknown.1["detail"].as_str().unwrap().contains("`evt_nope`"));
    let backwards = post_json(
        &f.base,
        "api/inbox/dead-letters/replay-between",
        r#"{"sinceMs":2000,"untilMs":1000}"#,
    )
    .await;
    assert_problem(
        &backwards,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "sinceMs",
    );
    let nothing = post_json(
        &f.base,
        "api/inbox/dead-letters/replay-between",
        r#"{"sinceMs":0,"untilMs":1000}"#,
    )
    .await;
    assert_eq!(
        (nothing.0, &nothing.2),
        (StatusCode::ACCEPTED, &json!({"replayed": 0}))
    );

    handler.healed.store(true, Ordering::SeqCst);
    let one = post_json(&f.base, "api/inbox/dead-letters/fail_a/replay", "").await;
    assert_eq!(
        (one.0, &one.2),
        (StatusCode::ACCEPTED, &json!({"replayed": 1}))
    );
    let counts = wait_for_counts(&f.base, "fail_a done", |c| c["done"] == 2).await;
    assert_eq!(counts["deadLettered"], 2, "{counts}");
    let (_, event) = get(&f.base, "api/inbox/events/fail_a").await;
    assert_eq!(event["state"], "done", "{event}");
    assert_eq!(
        event["attempts"], 1,
        "counted from one again after a replay"
    );

    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let range = json!({"sinceMs": 0, "untilMs": now_ms + 60_000}).to_string();
    let between = post_json(&f.base, "api/inbox/dead-letters/replay-between", &range).await;
    assert_eq!(
        (between.0, &between.2),
        (StatusCode::ACCEPTED, &json!({"replayed": 2}))
    );
    wait_for_counts(&f.base, "all done", |c| {
        c["done"] == 4 && c["deadLettered"] == 0
    })
    .await;
    let all = post_json(&f.base, "api/inbox/dead-letters/replay-all", "").await;
    assert_eq!(
        (all.0, &all.2),
        (StatusCode::ACCEPTED, &json!({"replayed": 0}))
    );
    workers.shutdown().await;
}

/// Every inbox route, as `(method, path, body)`.
fn inbox_routes() -> Vec<(reqwest::Method, &'static str, &'static str)> {
    use reqwest::Method;
    vec![
        (Method::GET, "api/inbox/counts", ""),
        (Method::GET, "api/inbox/events", ""),
        (Method::GET, "api/inbox/events?state=dead_lettered", ""),
        (Method::GET, "api/inbox/events/fail_x", ""),
        (Method::GET, "api/inbox/dead-letters", ""),
        (Method::POST, "api/inbox/dead-letters/fail_x/replay", ""),
        (Method::POST, "api/inbox/dead-letters/replay-all", ""),
        (
            Method::POST,
            "api/inbox/dead-letters/replay-between",
            r#"{"sinceMs":0,"untilMs":9000000000000}"#,
        ),
    ]
}

#[tokio::test]
async fn every_inbox_route_has_the_consoles_host_auth_and_cross_site_checks() {
    let (f, _handler, workers) = started().await;
    deliver(f.receiver, "fail_x").await;
    wait_for_counts(&f.base, "dead-lettered", |c| c["deadLettered"] == 1).await;
    let port = f.base.rsplit(':').next().unwrap().to_owned();
    let rebound = format!("evil.example:{port}");
    let rebound_origin = format!("http://{rebound}");

    for (method, path, body) in inbox_routes() {
        let url = format!("{}/{path}", f.base);
        let send = |headers: &[(&str, &str)]| {
            let (method, url) = (method.clone(), url.clone());
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            async move {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                raw(method, &url, &h, body).await
            }
        };
        let what = format!("{method} /{path}");
        let no_token = send(&[JSON]).await;
        assert_problem(&no_token, StatusCode::UNAUTHORIZED, "unauthorized", "");
        let wrong_token = send(&[("authorization", "Bearer wrong-token"), JSON]).await;
        assert_eq!(wrong_token.0, StatusCode::UNAUTHORIZED, "{what}");
        let foreign = send(&[
            BEARER,
            JSON,
            ("host", rebound.as_str()),
            ("origin", rebound_origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ])
        .await;
        assert_problem(
            &foreign,
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected-request",
            "evil.example",
        );
        if method == reqwest::Method::POST {
            let cross_site: [[(&str, &str); 3]; 4] = [
                [BEARER, JSON, ("origin", "http://evil.example")],
                [BEARER, JSON, ("sec-fetch-site", "cross-site")],
                [BEARER, JSON, ("sec-fetch-site", "same-site")],
                [BEARER, JSON, ("origin", "null")],
            ];
            for cross in &cross_site {
                let res = send(cross).await;
                assert_problem(
                    &res,
                    StatusCode::FORBIDDEN,
                    "cross-site-request",
                    "another site",
                );
            }
            for ct in ["text/plain", "application/x-www-form-urlencoded"] {
                let res = send(&[BEARER, ("content-type", ct)]).await;
                assert_problem(
                    &res,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "application/json",
                );
            }
        }
    }
    // Nothing refused ran: the dead letter is still there.
    let event = f.inbox.event("fail_x").await.unwrap().unwrap();
    assert_eq!(
        event.status,
        webhook_guard::inbox::InboxStatus::DeadLettered
    );

    // The console's own page may, and every route answers it.
    for (method, path, body) in inbox_routes() {
        let res = raw(
            method.clone(),
            &format!("{}/{path}", f.base),
            &[
                BEARER,
                JSON,
                ("origin", f.base.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
            body,
        )
        .await;
        assert!(res.0.is_success(), "{method} /{path}: {:?}", res.2);
    }
    workers.shutdown().await;
}

#[tokio::test]
async fn without_an_inbox_the_routes_say_so_and_the_page_loads_the_view_script() {
    let sender = Sender::builder(MemoryStore::new()).build().unwrap();
    let base = serve(Console::new(sender).bearer_token(TOKEN).router()).await;
    for path in ["api/inbox", "api/inbox/counts", "api/inbox/events/x"] {
        let res = raw(
            reqwest::Method::GET,
            &format!("{base}/{path}"),
            &[BEARER],
            "",
        )
        .await;
        assert_problem(
            &res,
            StatusCode::NOT_FOUND,
            "not-found",
            "no inbox attached",
        );
    }
    // Still behind the token.
    let res = raw(
        reqwest::Method::GET,
        &format!("{base}/api/inbox/counts"),
        &[],
        "",
    )
    .await;
    assert_eq!(res.0, StatusCode::UNAUTHORIZED);

    let page = reqwest::get(&base).await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script src="/assets/inbox.js" defer></script>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<section id="inbox" class="card" aria-labelledby="inbox-title" hidden>"#)
    );
    let script = reqwest::get(format!("{base}/assets/inbox.js"))
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(script.text().await.unwrap().contains("api/inbox/counts"));
}

/// Puts events through every state by hand: claimed (processing), failed
/// (retrying), done, dead-lettered.
async fn every_state<S: InboxStore>(store: &S, now: i64) {
    for i in 0..6 {
        let e = NewInboxEvent::new(format!("e{i}"), "{}", now);
        store.insert(&e).await.unwrap();
    }
    let lease = now + 60_000;
    let claimed = store.claim_due(now, 4, lease).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let retry = Settle::RetryAt {
        at_ms: now + 1_000,
        error: "no".into(),
    };
    let settles = [Settle::Done, retry, Settle::DeadLetter("gone".into())];
    for (e, settle) in claimed.iter().zip(settles) {
        assert!(store.settle(&e.id, lease, &settle, now).await.unwrap());
    }
    // The fourth stays claimed; two were never claimed.
}

#[tokio::test]
async fn sqlite_counts_in_one_query_what_the_default_counts_row_by_row() {
    let now = 1_700_000_000_000;
    let sqlite = SqliteInboxStore::open_in_memory().unwrap();
    let memory = MemoryInboxStore::new();
    every_state(&sqlite, now).await;
    every_state(&memory, now).await;
    let mut expected = InboxCounts::default();
    expected.received = 2;
    expected.processing = 1;
    expected.retrying = 1;
    expected.done = 1;
    expected.dead_lettered = 1;
    assert_eq!(sqlite.counts(now).await.unwrap(), expected);
    assert_eq!(memory.counts(now).await.unwrap(), expected);
    // Once the lease has expired, the claimed one waits to be retried.
    let later = now + 60_000;
    expected.processing = 0;
    expected.retrying = 2;
    assert_eq!(sqlite.counts(later).await.unwrap(), expected);
    assert_eq!(memory.counts(later).await.unwrap(), expected);
}

/// An event's detail names the trace it came in with (the `traceparent`
/// the inbox stored), and `null` for an event that had none.
#[tokio::test]
async fn an_events_detail_names_the_trace_it_came_with() {
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let now = 1_700_000_000_000;
    let store = MemoryInboxStore::new();
    let mut traced = NewInboxEvent::new("traced", "{}", now);
    traced.traceparent = Some(webhook_guard::trace_context::TraceParent::parse(TP).unwrap());
    store.insert(&traced).await.unwrap();
    store
        .insert(&NewInboxEvent::new("untraced", "{}", now))
        .await
        .unwrap();
    let base = console(Inbox::builder(store).build().await.unwrap()).await;
    let (status, event) = get(&base, "api/inbox/events/traced").await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["traceparent"], TP);
    let (_, event) = get(&base, "api/inbox/events/untraced").await;
    assert_eq!(event["traceparent"], Value::Null, "{event}");
}
