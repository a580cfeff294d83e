//! What only a shared inbox has, on a real PostgreSQL server: several
//! stores (each its own pool, as several receiver processes) on one
//! database claim, settle and deduplicate without stepping on each other;
//! migrations race safely and refuse a newer schema. The common contract
//! runs in `inbox_store.rs`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/inbox_http.rs"]
#[allow(dead_code, unreachable_pub)]
mod inbox_http;
#[path = "support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;
#[path = "support/slow_handler.rs"]
#[allow(unreachable_pub)]
mod slow_handler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use inbox_http::{serve_inbox, signed_now};
use postgres_server::PostgresServer;
use webhook_guard::inbox::store::{Insert, NewInboxEvent, Settle};
use webhook_guard::inbox::{DUPLICATE_HEADER, Inbox, InboxEvent, InboxStore, PgInboxStore};

const BODY: &str = r#"{"event":"ingestion.completed","tenantId":"tenant_abc123"}"#;

fn event(id: &str, at: i64) -> NewInboxEvent {
    NewInboxEvent::new(id, BODY, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_from_two_stores_never_hand_out_an_event_twice() {
    let pg = PostgresServer::start();
    let url = pg.create_database("claims");
    let a = PgInboxStore::connect(&url).await.unwrap();
    let b = PgInboxStore::connect(&url).await.unwrap();
    const EVENTS: usize = 300;
    for i in 0..EVENTS {
        a.insert(&event(&format!("evt_{i}"), 1_000)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                // One lease value for every claim: only SKIP LOCKED and the
                // due/lease condition keep claims apart.
                let batch = store.claim_due(2_000, 7, 1_000_000).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|e| (e.id, e.attempts)));
            }
        }));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for (id, attempts) in task.await.unwrap() {
            assert_eq!(attempts, 1, "`{id}` was claimed before");
            *seen.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handed out more than once: {twice:?}");
    assert_eq!(seen.len(), EVENTS);
}

#[tokio::test]
async fn a_settle_is_fenced_by_the_owner_too() {
    let pg = PostgresServer::start();
    let url = pg.create_database("owner");
    let a = PgInboxStore::connect(&url).await.unwrap();
    let b = PgInboxStore::connect(&url).await.unwrap();
    a.insert(&event("e", 1_000)).await.unwrap();
    assert_eq!(a.claim_due(1_000, 1, 2_000).await.unwrap().len(), 1);
    // A's lease expired; another receiver takes the event over, and (clocks
    // being what they are) its lease ends at the very same millisecond.
    let taken = b.claim_due(2_000, 1, 2_000).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 2);
    assert!(
        !a.settle("e", 2_000, &Settle::Done, 2_100).await.unwrap(),
        "the lease is B's now"
    );
    let e = a.event("e").await.unwrap().unwrap();
    assert_eq!(e.status, webhook_guard::inbox::InboxStatus::Pending);
    assert!(b.settle("e", 2_000, &Settle::Done, 2_200).await.unwrap());
}

/// The claim lock ("inboxcl") serializes only the claims that may lease an
/// event with an ordering key: while none is pending, a claim does not
/// wait for another claimer holding it; once one is, it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_claims_of_ordered_events_wait_for_the_claim_lock() {
    const CLAIM_LOCK: i64 = 0x0069_6e62_6f78_636c;
    let pg = PostgresServer::start();
    let url = pg.create_database("claim_lock");
    let store = PgInboxStore::connect(&url).await.unwrap();
    store.insert(&event("plain", 1_000)).await.unwrap();
    // Another claimer, in the middle of its claim.
    let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])
        .await
        .unwrap();
    let claimed = tokio::time::timeout(Duration::from_secs(5), store.claim_due(2_000, 10, 60_000))
        .await
        .expect("a claim of unordered events waited for the claim lock")
        .unwrap();
    let ids: Vec<_> = claimed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["plain"]);

    let mut keyed = event("keyed", 1_000);
    keyed.ordering_key = Some("order_1".into());
    store.insert(&keyed).await.unwrap();
    let claim = tokio::spawn({
        let store = store.clone();
        async move { store.claim_due(2_000, 10, 60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !claim.is_finished(),
        "a claim that may lease a keyed event did not wait for the claim lock"
    );
    holder.batch_execute("COMMIT").await.unwrap();
    let claimed = claim.await.unwrap().unwrap();
    let ids: Vec<_> = claimed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["keyed"]);
}

/// Two receivers (each its own pool and lease owner) on one database: a
/// handler five times longer than the lease still runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_longer_than_the_lease_runs_once() {
    let pg = PostgresServer::start();
    let url = pg.create_database("slow");
    slow_handler::a_handler_longer_than_the_lease_runs_once(
        PgInboxStore::connect(&url).await.unwrap(),
        PgInboxStore::connect(&url).await.unwrap(),
    )
    .await;
}

/// POSTs `BODY` signed with the native scheme under `id`; returns the
/// status and whether it was answered as a duplicate.
async fn deliver(client: &reqwest::Client, url: &str, id: &str) -> (u16, bool) {
    let res = client
        .post(url)
        .headers(signed_now(id, BODY))
        .body(BODY)
        .send()
        .await
        .unwrap();
    let duplicate = res
        .headers()
        .get(DUPLICATE_HEADER)
        .is_some_and(|v| v == "true");
    (res.status().as_u16(), duplicate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_receivers_store_a_redelivery_racing_them_once() {
    let pg = PostgresServer::start();
    let db = pg.create_database("receivers");
    let mut urls = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..2 {
        let store = PgInboxStore::connect(&db).await.unwrap();
        let inbox = Inbox::builder(store).build().await.unwrap();
        urls.push(serve_inbox(&inbox).await);
        inboxes.push(inbox);
    }
    let client = reqwest::Client::new();
    const IDS: usize = 40;
    for i in 0..IDS {
        let id = format!("evt_{i}");
        let (first, second) = tokio::join!(
            deliver(&client, &urls[0], &id),
            deliver(&client, &urls[1], &id)
        );
        assert_eq!((first.0, second.0), (200, 200), "{id}");
        assert!(
            first.1 != second.1,
            "`{id}`: exactly one answer is a duplicate, got {first:?} and {second:?}"
        );
    }
    let rows = pg.psql(
        "receivers",
        "SELECT count(*), count(DISTINCT id) FROM inbox_events",
    );
    assert_eq!(rows, format!("{IDS}|{IDS}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_workers_of_two_receivers_process_each_event_once() {
    let pg = PostgresServer::start();
    let db = pg.create_database("workers");
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut urls = Vec::new();
    let mut running = Vec::new();
    for _ in 0..2 {
        let store = PgInboxStore::connect(&db).await.unwrap();
        let inbox = Inbox::builder(store)
            .poll_interval(Duration::from_millis(20))
            .build()
            .await
            .unwrap();
        let calls = Arc::clone(&calls);
        let workers = inbox.start(move |e: InboxEvent<serde_json::Value>| {
            *calls.lock().unwrap().entry(e.id).or_default() += 1;
            std::future::ready(Ok::<(), String>(()))
        });
        urls.push(serve_inbox(&inbox).await);
        running.push((inbox, workers));
    }
    let client = reqwest::Client::new();
    const IDS: usize = 60;
    for i in 0..IDS {
        let (status, _) = deliver(&client, &urls[i % 2], &format!("evt_{i}")).await;
        assert_eq!(status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.psql(
        "workers",
        "SELECT count(*) FROM inbox_events WHERE status = 'done'",
    ) != IDS.to_string()
    {
        assert!(
            Instant::now() < deadline,
            "not all events were processed: {}",
            pg.psql(
                "workers",
                "SELECT string_agg(status || ' ' || coalesce(last_error, ''), '; ') FROM inbox_events"
            )
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), IDS);
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
    for (_, workers) in running {
        workers.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_starting_together_migrate_once() {
    let pg = PostgresServer::start();
    let url = pg.create_database("together");
    let connects = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgInboxStore::connect(&url).await })
    });
    for connect in connects {
        connect.await.unwrap().unwrap();
    }
    assert_eq!(
        pg.psql(
            "together",
            "SELECT version FROM webhook_guard_schema WHERE component = 'inbox'"
        ),
        "2"
    );
    let store = PgInboxStore::connect(&url).await.unwrap();
    assert_eq!(store.insert(&event("e", 1)).await.unwrap(), Insert::Stored);
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_errors_never_show_the_url() {
    let pg = PostgresServer::start();
    pg.create_database("newer");
    // Trust authentication ignores the password; it must not leak anyway.
    let url = format!(
        "postgres://postgres:hunter2-db-password@127.0.0.1:{}/newer",
        pg.port()
    );
    let store = PgInboxStore::connect(&url).await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    pg.psql(
        "newer",
        "UPDATE webhook_guard_schema SET version = 3 WHERE component = 'inbox'",
    );
    let err = PgInboxStore::connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("`inbox` schema at version 3"), "{err}");
    assert!(err.contains("version 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let down = format!(
        "postgres://postgres:hunter2-db-password@127.0.0.1:{}/absent",
        pg.port()
    );
    let err = PgInboxStore::connect(&down).await.unwrap_err().to_string();
    assert!(err.contains("absent"), "says which database: {err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = PgInboxStore::connect("postgres://u:hunter2@h:notaport/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A database at schema version 1 (no `traceparent` column) is migrated
/// on connect; its events read with no trace, new ones keep theirs.
#[tokio::test]
async fn a_version_1_database_gains_the_traceparent_column() {
    let pg = PostgresServer::start();
    let url = pg.create_database("v1");
    drop(PgInboxStore::connect(&url).await.unwrap());
    // Back to version 1, with an event stored by it.
    pg.psql(
        "v1",
        "ALTER TABLE inbox_events DROP COLUMN traceparent; \
         UPDATE webhook_guard_schema SET version = 1 WHERE component = 'inbox'; \
         INSERT INTO inbox_events (id, scheme, body, received_at_ms, status, next_attempt_at_ms) \
         VALUES ('old', 'native', '\\x7b7d', 1000, 'pending', 1000)",
    );
    let store = PgInboxStore::connect(&url).await.unwrap();
    assert_eq!(store.event("old").await.unwrap().unwrap().traceparent, None);
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut new = event("new", 2_000);
    new.traceparent = Some(trace.parse().unwrap());
    store.insert(&new).await.unwrap();
    let stored = store.event("new").await.unwrap().unwrap();
    assert_eq!(stored.traceparent.unwrap().as_str(), trace);
    assert_eq!(
        pg.psql(
            "v1",
            "SELECT version FROM webhook_guard_schema WHERE component = 'inbox'"
        ),
        "2"
    );
}

/// An event stored by one receiver wakes the idle workers of another at
/// once (`LISTEN/NOTIFY`), though their poll interval is a minute; so does
/// a replay.
#[tokio::test]
async fn an_event_stored_elsewhere_wakes_idle_workers_at_once() {
    let pg = PostgresServer::start();
    let url = pg.create_database("wake");
    let receiving = PgInboxStore::connect(&url).await.unwrap();
    let processing = Inbox::builder(PgInboxStore::connect(&url).await.unwrap())
        .poll_interval(Duration::from_secs(60))
        .retry(webhook_guard::inbox::RetryPolicy::new(Vec::new()))
        .build()
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let workers = processing.start(move |event: InboxEvent<serde_json::Value>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((event.id.clone(), Instant::now()));
            if event.attempt == 1 && event.id == "evt_replayed" {
                return Err("fails once".to_owned());
            }
            Ok(())
        }
    });
    // The workers have found nothing and are waiting out their interval.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for id in ["evt_woken", "evt_replayed"] {
        let stored = Instant::now();
        receiving.insert(&event(id, now_ms())).await.unwrap();
        let (seen, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the idle workers were not woken")
            .unwrap();
        assert_eq!(seen, id);
        assert!(at.duration_since(stored) < Duration::from_secs(5));
    }
    // Dead-lettered (no retries); a replay on the other store wakes them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let entry = processing.event("evt_replayed").await.unwrap().unwrap();
    assert_eq!(
        entry.status,
        webhook_guard::inbox::InboxStatus::DeadLettered
    );
    let selection = webhook_guard::inbox::ReplaySelection::One("evt_replayed".into());
    assert_eq!(receiving.replay(&selection, now_ms()).await.unwrap(), 1);
    let (seen, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the replay did not wake the idle workers")
        .unwrap();
    assert_eq!(seen, "evt_replayed");
    workers.shutdown().await;
}

fn now_ms() -> i64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(ms).unwrap()
}
