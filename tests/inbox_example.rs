//! `examples/inbox.rs` run as a process: its environment variables, one
//! JSON line per event processed on stdout, duplicates, back-pressure, a
//! kill mid-handler, two instances sharing one inbox in PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
use example_binary::example_binary;
#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use webhook_guard::{Message, Scheme, SecretSet};

const SECRET: &str = "example-inbox-secret-of-24-bytes+";
const BODY: &str = r#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

/// The example, running; killed on drop.
struct Running {
    child: Child,
    url: String,
    stdout: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(db: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(example_binary("inbox"));
    for name in [
        "WEBHOOK_DATABASE_URL",
        "INBOX_MAX_PENDING",
        "INBOX_HANDLER_MS",
        "WEBHOOK_SCHEME",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("WEBHOOK_ADDR", "127.0.0.1:0")
        .env("WEBHOOK_SECRET", SECRET)
        .env("WEBHOOK_INBOX_DB", db)
        .env("RUST_LOG", "info")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn lines_of(read: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

fn start(db: &Path, vars: &[(&str, &str)]) -> Running {
    let mut child = command(db, vars).spawn().unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let stdout = lines_of(child.stdout.take().unwrap());
    let mut running = Running {
        child,
        url: String::new(),
        stdout,
    };
    loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(60))
            .expect("the example never said it listens");
        if let Some(at) = line.find("listening on http://") {
            running.url = line[at + "listening on ".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            // Keep draining stderr so the example's log writes never block.
            std::thread::spawn(move || while stderr.recv().is_ok() {});
            return running;
        }
    }
}

async fn deliver(url: &str, id: &str) -> reqwest::Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new(id, i64::try_from(now).unwrap(), BODY.as_bytes()),
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

fn next_line(running: &Running) -> serde_json::Value {
    let line = running
        .stdout
        .recv_timeout(Duration::from_secs(30))
        .expect("no event processed");
    serde_json::from_str(&line).unwrap()
}

/// The first event either instance prints (at most 30 s).
#[cfg(feature = "postgres")]
fn next_line_of_either(a: &Running, b: &Running) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = [a, b].iter().find_map(|r| r.stdout.try_recv().ok()) {
            return serde_json::from_str(&line).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no event processed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut running: Running) -> std::process::ExitStatus {
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    running.child.wait().unwrap()
}

#[tokio::test]
async fn processes_each_event_once_and_prints_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("inbox.db");
    let running = start(&db, &[]);
    let res = deliver(&running.url, "evt_1").await;
    assert_eq!(res.status(), 200);
    let line = next_line(&running);
    assert_eq!(
        line,
        serde_json::json!({"id": "evt_1", "event": "ingestion.completed", "attempt": 1})
    );
    let again = deliver(&running.url, "evt_1").await;
    assert_eq!(again.headers()["x-webhook-duplicate"], "true");
    // Forged: rejected, never processed.
    let forged = reqwest::Client::new()
        .post(&running.url)
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert!(
        running
            .stdout
            .recv_timeout(Duration::from_millis(500))
            .is_err()
    );
    assert!(stop(running).success());
}

#[tokio::test]
async fn slow_handlers_push_back_and_a_kill_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("inbox.db");
    let slow = [
        ("INBOX_HANDLER_MS", "60000"),
        ("INBOX_MAX_PENDING", "1"),
        ("INBOX_LEASE_MS", "500"),
    ];
    let mut running = start(&db, &slow);
    assert_eq!(deliver(&running.url, "evt_slow").await.status(), 200);
    let full = deliver(&running.url, "evt_more").await;
    assert_eq!(full.status(), 503);
    let secs: u64 = full.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&secs));
    // Killed mid-handler.
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    drop(running);

    let running = start(&db, &[("INBOX_LEASE_MS", "500")]);
    let line = next_line(&running);
    assert_eq!(line["id"], "evt_slow");
    assert_eq!(line["attempt"], 2, "processed again after the restart");
    assert_eq!(deliver(&running.url, "evt_more").await.status(), 200);
    assert_eq!(next_line(&running)["id"], "evt_more");
    assert!(stop(running).success());
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn two_instances_share_one_inbox_in_postgres() {
    let pg = postgres_server::PostgresServer::start();
    let url = pg.create_database("inbox_example");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let vars = [("WEBHOOK_DATABASE_URL", url.as_str())];
    let first = start(&db, &vars);
    let second = start(&db, &vars);
    assert_eq!(deliver(&first.url, "evt_pg").await.status(), 200);
    // Either instance may process it: storing it wakes the workers of both.
    let line = next_line_of_either(&first, &second);
    assert_eq!(
        line,
        serde_json::json!({"id": "evt_pg", "event": "ingestion.completed", "attempt": 1})
    );
    // The other instance knows it: the same inbox.
    let again = deliver(&second.url, "evt_pg").await;
    assert_eq!(again.headers()["x-webhook-duplicate"], "true");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        first.stdout.try_recv().is_err() && second.stdout.try_recv().is_err(),
        "processed once"
    );
    assert!(!db.exists(), "no SQLite file when PostgreSQL is configured");
    assert!(stop(first).success());
    assert!(stop(second).success());
}
