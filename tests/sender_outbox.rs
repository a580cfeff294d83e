//! Publishing in the caller's transaction (the transactional outbox), with
//! a real PostgreSQL server, a real SQLite file and a verifying receiver
//! over loopback: a commit delivers, a rollback sends nothing.
#![cfg(feature = "sender")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::sender::{
    AddressPolicy, DeliveryStatus, DeliveryStore, NewDestination, OutgoingEvent, Sender,
    SenderBuilder, SenderError,
};
use webhook_guard::{SecretSet, Verified, VerifyLayer};

const SECRET: &str = "outbox-test-secret-0123456789abcdef";
/// The poll interval of the nodes that must deliver on their own.
const POLL: Duration = Duration::from_millis(100);

/// The ids of the events a verifying receiver accepted.
type Received = Arc<Mutex<Vec<String>>>;

/// A receiver on 127.0.0.1:0 that verifies each request's signature and
/// records the signed event id.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let log = Arc::clone(&received);
    let app = Router::new()
        .route(
            "/hook",
            post(move |v: Verified| {
                log.lock().unwrap().push(v.id().to_owned());
                async { StatusCode::OK }
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

fn node<S: DeliveryStore>(store: S, poll: Duration) -> SenderBuilder<S> {
    Sender::builder(store)
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(poll)
}

fn order_created(order: i64) -> OutgoingEvent {
    OutgoingEvent::new("order.created", &serde_json::json!({"orderId": order})).unwrap()
}

/// Waits until the receiver has accepted `event_id`; fails after `within`.
async fn wait_received(received: &Received, event_id: &str, within: Duration) {
    let start = Instant::now();
    while !received.lock().unwrap().iter().any(|id| id == event_id) {
        assert!(
            start.elapsed() < within,
            "{event_id} not received within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the store has recorded delivery `id` as delivered.
async fn wait_delivered(store: &impl DeliveryStore, id: &str) {
    let start = Instant::now();
    loop {
        let d = store.delivery(id).await.unwrap().unwrap();
        if d.status == DeliveryStatus::Delivered {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{d:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Several poll intervals go by; the receiver must have got nothing.
async fn assert_nothing_sent(received: &Received) {
    tokio::time::sleep(POLL * 6).await;
    assert!(
        received.lock().unwrap().is_empty(),
        "sent: {:?}",
        received.lock().unwrap()
    );
}

#[cfg(feature = "postgres")]
mod postgres {
    use tokio_postgres::NoTls;
    use webhook_guard::sender::PgStore;

    use super::support::postgres_server::PostgresServer;
    use super::*;

    /// A running sender on a fresh database with one destination to a new
    /// receiver, and the app's own connection holding an `orders` table.
    async fn setup(
        pg: &PostgresServer,
        db: &str,
        poll: Duration,
    ) -> (
        Sender<PgStore>,
        webhook_guard::sender::SenderHandle,
        tokio_postgres::Client,
        Received,
    ) {
        let url = pg.create_database(db);
        let (hook, received) = receiver().await;
        let sender = node(PgStore::connect(&url).await.unwrap(), poll)
            .build()
            .unwrap();
        sender
            .add_destination(NewDestination::new(hook, SECRET))
            .await
            .unwrap();
        let running = sender.start();
        let (app, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        app.batch_execute("CREATE TABLE orders (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        (sender, running, app, received)
    }

    async fn order_exists(app: &impl tokio_postgres::GenericClient, order: i64) -> bool {
        let row = app
            .query_one("SELECT count(*) FROM orders WHERE id = $1", &[&order])
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1
    }

    async fn events_stored(app: &tokio_postgres::Client, id: &str) -> i64 {
        app.query_one("SELECT count(*) FROM sender_events WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_committed_order_is_stored_and_its_event_delivered() {
        let pg = PostgresServer::start();
        let (sender, _running, mut app, received) = setup(&pg, "commit", POLL).await;
        let event = order_created(1);
        let tx = app.transaction().await.unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (1)", &[])
            .await
            .unwrap();
        let deliveries = sender.publish_in(&tx, event.clone()).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        // Until the commit, the store's own connections see nothing.
        assert!(
            sender
                .store()
                .delivery(&deliveries[0].id)
                .await
                .unwrap()
                .is_none()
        );
        assert_nothing_sent(&received).await;

        tx.commit().await.unwrap();
        wait_received(&received, event.id(), Duration::from_secs(5)).await;
        assert!(order_exists(&app, 1).await);
        wait_delivered(sender.store(), &deliveries[0].id).await;
        assert_eq!(received.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_rolled_back_order_leaves_no_event_and_sends_nothing() {
        let pg = PostgresServer::start();
        let (sender, _running, mut app, received) = setup(&pg, "rollback", POLL).await;
        let event = order_created(2);
        let tx = app.transaction().await.unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (2)", &[])
            .await
            .unwrap();
        let deliveries = sender.publish_in(&tx, event.clone()).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        tx.rollback().await.unwrap();

        assert_nothing_sent(&received).await;
        assert!(!order_exists(&app, 2).await);
        assert_eq!(events_stored(&app, event.id()).await, 0);
        let stored = sender.store().delivery(&deliveries[0].id).await.unwrap();
        assert!(stored.is_none(), "{stored:?}");
    }

    #[tokio::test]
    async fn a_duplicate_event_is_refused_and_its_transaction_rolls_back_cleanly() {
        let pg = PostgresServer::start();
        let (sender, _running, mut app, received) = setup(&pg, "duplicate", POLL).await;
        let event = order_created(3);
        let tx = app.transaction().await.unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (3)", &[])
            .await
            .unwrap();
        sender.publish_in(&tx, event.clone()).await.unwrap();
        tx.commit().await.unwrap();

        // The same event id in a second transaction, through the two-step
        // API on a pooled transaction of the app's own.
        let tx = app.transaction().await.unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (4)", &[])
            .await
            .unwrap();
        let prepared = sender.prepare_publish(event.clone()).await.unwrap();
        let refused = sender.store().enqueue_in(&tx, &prepared).await;
        assert!(
            matches!(&refused, Err(SenderError::DuplicateEvent { id }) if id == event.id()),
            "{refused:?}"
        );
        // The transaction is still usable, and rolls back.
        assert!(order_exists(&tx, 4).await);
        tx.rollback().await.unwrap();

        assert!(!order_exists(&app, 4).await);
        assert!(order_exists(&app, 3).await);
        wait_received(&received, event.id(), Duration::from_secs(5)).await;
        tokio::time::sleep(POLL * 4).await;
        assert_eq!(received.lock().unwrap().as_slice(), [event.id()]);
    }

    /// The node polls every 30 s and gets no hand-over: only the `NOTIFY`
    /// that the server delivers on commit wakes it.
    #[tokio::test]
    async fn an_idle_node_delivers_soon_after_the_commit() {
        let pg = PostgresServer::start();
        let (sender, _running, mut app, received) =
            setup(&pg, "wake", Duration::from_secs(30)).await;
        // The node has made its first claim and is idle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let event = order_created(5);
        let tx = app.transaction().await.unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (5)", &[])
            .await
            .unwrap();
        sender.publish_in(&tx, event.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(received.lock().unwrap().is_empty(), "sent before commit");

        let committed = Instant::now();
        tx.commit().await.unwrap();
        wait_received(&received, event.id(), Duration::from_secs(2)).await;
        assert!(committed.elapsed() < Duration::from_secs(2));
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::path::Path;

    use rusqlite::{Connection, TransactionBehavior};
    use webhook_guard::sender::SqliteStore;

    use super::*;

    /// A running sender on a fresh file with one destination to a new
    /// receiver, and the app's own connection to that file holding an
    /// `orders` table.
    async fn setup(
        path: &Path,
    ) -> (
        Sender<SqliteStore>,
        webhook_guard::sender::SenderHandle,
        Connection,
        Received,
    ) {
        let (hook, received) = receiver().await;
        let sender = node(SqliteStore::open(path).unwrap(), POLL)
            .build()
            .unwrap();
        sender
            .add_destination(NewDestination::new(hook, SECRET))
            .await
            .unwrap();
        let running = sender.start();
        let app = Connection::open(path).unwrap();
        app.busy_timeout(Duration::from_secs(5)).unwrap();
        app.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
            .unwrap();
        (sender, running, app, received)
    }

    fn count(app: &Connection, sql: &str, id: &dyn rusqlite::ToSql) -> i64 {
        app.query_row(sql, [id], |r| r.get(0)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_order_is_stored_and_its_event_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, _running, mut app, received) = setup(&dir.path().join("q.db")).await;
        let event = order_created(1);
        let prepared = sender.prepare_publish(event.clone()).await.unwrap();
        assert!(
            prepared
                .deliveries()
                .iter()
                .all(|d| d.lease_until_ms.is_none())
        );
        let tx = app
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (1)", [])
            .unwrap();
        let deliveries = sender.store().enqueue_in(&tx, &prepared).unwrap();
        assert_eq!(deliveries.len(), 1);
        tx.commit().unwrap();
        sender.wake_workers();

        wait_received(&received, event.id(), Duration::from_secs(5)).await;
        assert_eq!(
            count(&app, "SELECT count(*) FROM orders WHERE id = ?1", &1),
            1
        );
        wait_delivered(sender.store(), &deliveries[0].id).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_order_leaves_no_event_and_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, _running, mut app, received) = setup(&dir.path().join("q.db")).await;
        let event = order_created(2);
        let prepared = sender.prepare_publish(event.clone()).await.unwrap();
        let tx = app
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (2)", [])
            .unwrap();
        let deliveries = sender.store().enqueue_in(&tx, &prepared).unwrap();
        tx.rollback().unwrap();
        sender.wake_workers();

        assert_nothing_sent(&received).await;
        assert_eq!(
            count(&app, "SELECT count(*) FROM orders WHERE id = ?1", &2),
            0
        );
        let id = event.id();
        assert_eq!(
            count(&app, "SELECT count(*) FROM events WHERE id = ?1", &id),
            0
        );
        assert!(
            sender
                .store()
                .delivery(&deliveries[0].id)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_duplicate_event_is_refused_and_its_transaction_rolls_back_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, _running, mut app, received) = setup(&dir.path().join("q.db")).await;
        let event = order_created(3);
        sender.publish(event.clone()).await.unwrap();
        wait_received(&received, event.id(), Duration::from_secs(5)).await;

        let prepared = sender.prepare_publish(event.clone()).await.unwrap();
        let tx = app
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO orders (id) VALUES (3)", [])
            .unwrap();
        let refused = sender.store().enqueue_in(&tx, &prepared);
        assert!(
            matches!(&refused, Err(SenderError::DuplicateEvent { id }) if id == event.id()),
            "{refused:?}"
        );
        assert_eq!(
            count(&tx, "SELECT count(*) FROM orders WHERE id = ?1", &3),
            1
        );
        tx.rollback().unwrap();
        assert_eq!(
            count(&app, "SELECT count(*) FROM orders WHERE id = ?1", &3),
            0
        );
        tokio::time::sleep(POLL * 4).await;
        assert_eq!(received.lock().unwrap().as_slice(), [event.id()]);
    }

    /// Deliveries written into another file would never be sent; a file
    /// of another schema version would be written wrongly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_on_another_file_or_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let (sender, _running, _app, _received) = setup(&path).await;
        let prepared = sender.prepare_publish(order_created(4)).await.unwrap();

        let mut other = Connection::open(dir.path().join("other.db")).unwrap();
        let tx = other.transaction().unwrap();
        let err = sender.store().enqueue_in(&tx, &prepared).unwrap_err();
        assert!(err.to_string().contains("not on the store's file"), "{err}");
        drop(tx);

        // The same file through another spelling of its path is accepted
        // as the store's; a schema version it does not write is refused.
        let mut same = Connection::open(dir.path().join(".").join("q.db")).unwrap();
        same.busy_timeout(Duration::from_secs(5)).unwrap();
        same.pragma_update(None, "user_version", 99).unwrap();
        let tx = same.transaction().unwrap();
        let err = sender.store().enqueue_in(&tx, &prepared).unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");

        let memory = SqliteStore::open_in_memory().unwrap();
        let err = memory.enqueue_in(&tx, &prepared).unwrap_err();
        assert!(err.to_string().contains("in memory"), "{err}");
    }
}
