//! The transactional outbox: save an order and publish its `order.created`
//! webhook in ONE database transaction, so both commit or neither does.
//!
//! ```sh
//! # PostgreSQL:
//! WEBHOOK_DATABASE_URL=postgres://app:secret@localhost/app \
//! WEBHOOK_URL=https://example.com/webhooks WEBHOOK_SECRET=my-secret-of-24-bytes-or-more \
//!     cargo run --example outbox --features postgres,sqlite
//! # or SQLite (the store's own file holds the orders table too):
//! WEBHOOK_DB=outbox.db WEBHOOK_URL=... WEBHOOK_SECRET=... \
//!     cargo run --example outbox --features postgres,sqlite
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `WEBHOOK_URL` | where to POST | required |
//! | `WEBHOOK_SECRET` | the shared secret, at least 24 bytes, as the receiver is configured with it | required |
//! | `WEBHOOK_DATABASE_URL` | a PostgreSQL URL: the queue and the `orders` table live there | unset: SQLite |
//! | `WEBHOOK_DB` | without `WEBHOOK_DATABASE_URL`, the SQLite file holding the queue and the `orders` table | `outbox.db` |
//! | `WEBHOOK_ALLOW` | addresses/CIDRs the SSRF guard lets through, comma separated (`127.0.0.1` to try a local receiver) | none |
//!
//! The example commits one order with its event, then writes a second
//! order with its event and rolls that transaction back. It then runs the
//! workers until nothing is pending: the receiver gets the first order's
//! event and never the second's. Deliveries carry the sender's native
//! headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`), as in
//! `examples/sender.rs`.

use std::time::Duration;

use webhook_guard::sender::{
    AddressPolicy, Delivery, DeliveryQuery, DeliveryStatus, DeliveryStore, NewDestination,
    NextStep, OutgoingEvent, PgStore, Sender, SqliteStore,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .map_err(|_| format!("set {name} (see the top of examples/outbox.rs)").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match std::env::var("WEBHOOK_DATABASE_URL") {
        Ok(url) => run_postgres(&url).await,
        Err(_) => run_sqlite(&std::env::var("WEBHOOK_DB").unwrap_or("outbox.db".into())).await,
    }
}

async fn run_postgres(url: &str) -> Result<(), Error> {
    let sender = sender(PgStore::connect(url).await?).await?;
    // The app's own connection: any tokio-postgres transaction will do, a
    // pooled `deadpool_postgres` one as well.
    let (mut db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, total BIGINT NOT NULL)",
    )
    .await?;

    for (order, commit) in [(order_id(0), true), (order_id(1), false)] {
        let tx = db.transaction().await?;
        tx.execute(
            "INSERT INTO orders (id, total) VALUES ($1, $2)",
            &[&order, &1999_i64],
        )
        .await?;
        let deliveries = sender.publish_in(&tx, order_created(&order)?).await?;
        if commit {
            tx.commit().await?; // the webhook goes out now, and only now
        } else {
            tx.rollback().await?;
        }
        report(&order, &deliveries, commit);
    }
    let orders = db.query("SELECT id FROM orders ORDER BY id", &[]).await?;
    let ids: Vec<String> = orders.iter().map(|r| r.get(0)).collect();
    println!("orders stored: {}", ids.join(", "));
    deliver(&sender).await
}

async fn run_sqlite(path: &str) -> Result<(), Error> {
    let sender = sender(SqliteStore::open(path)?).await?;
    // The app's own connection to the store's file. The store writes in
    // short transactions: wait for them rather than fail with SQLITE_BUSY.
    let mut db = rusqlite::Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL)",
    )?;

    for (order, commit) in [(order_id(0), true), (order_id(1), false)] {
        // Computed before the transaction: it reads the destinations.
        let prepared = sender.prepare_publish(order_created(&order)?).await?;
        // IMMEDIATE: take the write lock now, not halfway through.
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO orders (id, total) VALUES (?1, ?2)",
            rusqlite::params![order, 1999],
        )?;
        let deliveries = sender.store().enqueue_in(&tx, &prepared)?;
        if commit {
            tx.commit()?;
            // SQLite notifies no one: wake this node's idle workers.
            sender.wake_workers();
        } else {
            tx.rollback()?;
        }
        report(&order, &deliveries, commit);
    }
    let mut stmt = db.prepare("SELECT id FROM orders ORDER BY id")?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    println!("orders stored: {}", ids.join(", "));
    deliver(&sender).await
}

/// Says what became of `order` and its event.
fn report(order: &str, deliveries: &[Delivery], committed: bool) {
    let event = deliveries.first().map_or("-", |d| d.event_id.as_str());
    if committed {
        println!(
            "order {order} committed with event {event} ({} deliveries)",
            deliveries.len()
        );
    } else {
        println!("order {order} rolled back: event {event} was never stored");
    }
}

/// A sender on `store` printing each attempt, with one destination for
/// `WEBHOOK_URL` (reused across runs).
async fn sender<S: DeliveryStore>(store: S) -> Result<Sender<S>, Error> {
    let url = env("WEBHOOK_URL")?;
    let secret = env("WEBHOOK_SECRET")?;
    let mut policy = AddressPolicy::new();
    for allowed in std::env::var("WEBHOOK_ALLOW")
        .unwrap_or_default()
        .split(',')
    {
        if !allowed.trim().is_empty() {
            policy = policy.allow(allowed)?;
        }
    }
    let sender = Sender::builder(store)
        .address_policy(policy)
        .poll_interval(Duration::from_millis(200))
        .on_attempt(|attempt, next| {
            let outcome = attempt.status_code.map_or_else(
                || attempt.error.clone().unwrap_or_default(),
                |c| c.to_string(),
            );
            let next = match next {
                NextStep::Delivered => "delivered",
                NextStep::RetryAt(_) => "retry scheduled",
                _ => "dead letter",
            };
            println!(
                "{} attempt {}: {outcome} -> {next}",
                attempt.delivery_id, attempt.attempt
            );
        })
        .build()?;
    if !sender.destinations().await?.iter().any(|d| d.url == url) {
        sender
            .add_destination(NewDestination::new(url, secret.as_str()))
            .await?;
    }
    Ok(sender)
}

/// Runs the workers until nothing is pending.
async fn deliver<S: DeliveryStore>(sender: &Sender<S>) -> Result<(), Error> {
    let workers = sender.start();
    let pending = DeliveryQuery::new().status(DeliveryStatus::Pending);
    while !sender.deliveries(&pending).await?.items.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.shutdown().await;
    let delivered = DeliveryQuery::new().status(DeliveryStatus::Delivered);
    let done = sender.deliveries(&delivered).await?;
    println!("done; {} delivered in all", done.items.len());
    Ok(())
}

fn order_created(order: &str) -> Result<OutgoingEvent, Error> {
    Ok(OutgoingEvent::new(
        "order.created",
        &serde_json::json!({
            "event": "order.created",
            "data": { "orderId": order, "total": 1999 },
        }),
    )?)
}

/// A fresh order id per run (the example can run again on the same file).
fn order_id(n: u8) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("ord_{ms}_{n}")
}
