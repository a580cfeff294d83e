//! `examples/outbox.rs` run as a process against a verifying receiver, on
//! SQLite and on PostgreSQL: the committed order's event arrives, the
//! rolled-back one's never does.
#![cfg(all(feature = "postgres", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use example_binary::example_binary;
use support::postgres_server::PostgresServer;
use webhook_guard::{SecretSet, Verified, VerifyLayer};

const SECRET: &str = "example-secret-0123456789abcdef";

/// A verifying receiver on loopback; records the signed event ids.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
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
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Runs the example with `db` (one variable and its value) and checks what
/// it printed against what the receiver got.
async fn run_example(db: (&str, String)) {
    let (url, received) = receiver().await;
    let mut cmd = Command::new(example_binary("outbox"));
    cmd.env("WEBHOOK_URL", &url)
        .env("WEBHOOK_SECRET", SECRET)
        .env("WEBHOOK_ALLOW", "127.0.0.1")
        .env_remove("WEBHOOK_DATABASE_URL")
        .env(db.0, db.1);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = stdout
        .lines()
        .find(|l| l.contains(" committed with event "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let event = committed.split_whitespace().nth(5).unwrap();
    assert!(committed.ends_with("(1 deliveries)"), "{stdout}");
    assert!(stdout.contains(" rolled back: event "), "{stdout}");
    assert!(stdout.contains("-> delivered"), "{stdout}");
    assert!(stdout.contains("done; 1 delivered in all"), "{stdout}");
    // One order stored: the committed one.
    let orders = stdout
        .lines()
        .find_map(|l| l.strip_prefix("orders stored: "))
        .unwrap();
    assert_eq!(orders.split(", ").count(), 1, "{stdout}");
    assert!(committed.contains(orders), "{stdout}");
    assert_eq!(received.lock().unwrap().as_slice(), [event], "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_on_sqlite_delivers_the_committed_order_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    run_example(("WEBHOOK_DB", db.display().to_string())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_on_postgres_delivers_the_committed_order_only() {
    let pg = PostgresServer::start();
    let url = pg.create_database("outbox_example");
    run_example(("WEBHOOK_DATABASE_URL", url)).await;
}
