//! `examples/sender.rs` run as a process against a verifying receiver.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
use example_binary::example_binary;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::{SecretSet, Verified, VerifyLayer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_publishes_retries_and_prints_each_attempt() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    // The first verified request fails, the rest succeed.
    let app = Router::new()
        .route(
            "/hook",
            post(move |_: Verified| {
                let c = Arc::clone(&c);
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) == 0 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .layer(VerifyLayer::new(
            SecretSet::single("example-secret").unwrap(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let exe = example_binary("sender");
    let run = |allow: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.env("WEBHOOK_URL", &url)
            .env("WEBHOOK_SECRET", "example-secret")
            .env("WEBHOOK_DB", dir.path().join("q.db"))
            .env("WEBHOOK_EVENTS", "2")
            .env_remove("WEBHOOK_ALLOW")
            .env_remove("WEBHOOK_SCHEME");
        if let Some(a) = allow {
            cmd.env("WEBHOOK_ALLOW", a);
        }
        cmd
    };
    // Without the allowance the SSRF guard refuses loopback.
    let refused = tokio::task::spawn_blocking({
        let mut cmd = run(None);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    // The error names no address; the log (stderr) names the range.
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ForbiddenAddress"), "{stderr}");
    assert!(stderr.contains("loopback (127.0.0.0/8)"), "{stderr}");

    let out = tokio::task::spawn_blocking({
        let mut cmd = run(Some("127.0.0.1"));
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("published evt_").count(), 2, "{stdout}");
    assert!(
        stdout.contains("attempt 1") && stdout.contains("503"),
        "{stdout}"
    );
    assert!(
        stdout.contains("attempt 2") && stdout.contains("-> delivered"),
        "{stdout}"
    );
    assert!(stdout.contains("0 in the dead letter queue"), "{stdout}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
