//! Workers while their PostgreSQL store is down: the sender's and the
//! inbox's workers back off instead of claiming (and logging) on every poll,
//! never log the connection URL's password, and go back to work once the
//! server is up again. One capturing test in this file: it counts log lines.
#![cfg(all(feature = "postgres", feature = "sender", feature = "inbox"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "log_capture/mod.rs"]
mod log_capture;
#[path = "support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use log_capture::LogBuffer;
use postgres_server::PostgresServer;
use webhook_guard::inbox::store::NewInboxEvent;
use webhook_guard::inbox::{Inbox, InboxEvent, InboxStore as _, PgInboxStore};
use webhook_guard::sender::{
    AddressPolicy, DeliveryStore as _, NewDelivery, NewDestination, OutgoingEvent, PgStore, Sender,
};
use webhook_guard::{Clock as _, SecretSet, SystemClock, Verified, VerifyLayer};

const SECRET: &str = "outage-test-secret-0123456789abcdef";
/// Trust authentication ignores it; the logs must not show it.
const PASSWORD: &str = "pw-never-logged-3f9c";
/// The workers poll this often: without a back-off, 20 claims a second.
const POLL: Duration = Duration::from_millis(50);
const DOWN_FOR: Duration = Duration::from_secs(3);
/// The most claim failures one worker may log while the server is down for
/// [`DOWN_FOR`]: 100 ms doubling gives 5 or 6 (polling would give 60).
const MAX_FAILURES: usize = 9;

/// A verifying receiver on 127.0.0.1:0 that counts the requests.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = Router::new()
        .route(
            "/hook",
            post(move |_: Verified| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), calls)
}

/// A URL for `db` that carries [`PASSWORD`].
fn url_with_password(pg: &PostgresServer, db: &str) -> String {
    pg.create_database(db);
    format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
        pg.port()
    )
}

fn lines_with(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|l| l.contains(needle)).count()
}

/// Waits until `done` holds, for at most `within`.
async fn eventually(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn workers_back_off_while_postgres_is_down_and_resume_after() {
    let logs = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let mut pg = PostgresServer::start();
    let (outbox_url, inbox_url) = (
        url_with_password(&pg, "outbox"),
        url_with_password(&pg, "inbox"),
    );

    let (hook, calls) = receiver().await;
    let sender = Sender::builder(PgStore::connect(&outbox_url).await.unwrap())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(POLL)
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(hook, SECRET).id("dst"))
        .await
        .unwrap();
    let _sending = sender.start();
    let inbox = Inbox::builder(PgInboxStore::connect(&inbox_url).await.unwrap())
        .poll_interval(POLL)
        .depth_sample_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let processed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&processed);
    let workers = inbox.start(move |_: InboxEvent<serde_json::Value>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), String>(()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    pg.kill();
    logs.clear();
    tokio::time::sleep(DOWN_FOR).await;
    let down = logs.take();
    let sender_failures = lines_with(&down, "claiming due deliveries failed");
    let inbox_failures = lines_with(&down, "inbox: claiming due events failed");
    eprintln!("failed claims in {DOWN_FOR:?}: sender {sender_failures}, inbox {inbox_failures}");
    assert!(
        (1..=MAX_FAILURES).contains(&sender_failures),
        "the sender's worker logged {sender_failures} failed claims in {DOWN_FOR:?}:\n{down}"
    );
    assert!(
        (1..=MAX_FAILURES).contains(&inbox_failures),
        "the inbox's worker logged {inbox_failures} failed claims in {DOWN_FOR:?}:\n{down}"
    );
    assert!(!down.contains(PASSWORD), "{down}");

    pg.restart();
    // Work stored by another process: only a claim can find it.
    let outbox = PgStore::connect(&outbox_url).await.unwrap();
    let event = OutgoingEvent::new("kpi.alert", &serde_json::json!({"n": 1})).unwrap();
    let now = SystemClock.now_millis();
    let delivery = NewDelivery::new(event.id(), "dst", now);
    outbox.enqueue(&event, now, &[delivery]).await.unwrap();
    let body = r#"{"event":"ingestion.completed"}"#;
    let receiving = PgInboxStore::connect(&inbox_url).await.unwrap();
    receiving
        .insert(&NewInboxEvent::new("evt_after_outage", body, now))
        .await
        .unwrap();
    // The longest wait so far is under 6.4 s; then the next claim succeeds.
    let within = Duration::from_secs(15);
    eventually(within, "no delivery after the restart", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually(within, "no event processed after the restart", || {
        processed.load(Ordering::SeqCst) == 1
    })
    .await;
    let after = logs.take();
    assert!(
        after.contains("claiming due deliveries works again"),
        "{after}"
    );
    assert!(
        after.contains("inbox: claiming due events works again"),
        "{after}"
    );
    assert!(!after.contains(PASSWORD), "{after}");
    workers.shutdown().await;
}
