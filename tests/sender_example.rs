//! `examples/sender.rs` run as a process against a verifying receiver.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
use example_binary::example_binary;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use webhook_guard::{SecretSet, Verified, VerifyLayer};

/// Runs the example to its end and returns what it printed; it must succeed.
async fn run_to_success(mut cmd: Command) -> String {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

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
            SecretSet::single("example-secret-0123456789abcdef").unwrap(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let exe = example_binary("sender");
    let run = |allow: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.env("WEBHOOK_URL", &url)
            .env("WEBHOOK_SECRET", "example-secret-0123456789abcdef")
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

    let stdout = run_to_success(run(Some("127.0.0.1"))).await;
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

/// `WEBHOOK_SCHEME=standard` with the `whsec_` secret a Standard Webhooks
/// provider prints: every delivery is verified by the official
/// `standardwebhooks` and `svix` libraries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_with_a_whsec_secret_is_verified_by_the_official_libraries() {
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([0x5au8; 32])
    );
    let verified = Arc::new(AtomicUsize::new(0));
    let (v, s) = (Arc::clone(&verified), secret.clone());
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let (v, s) = (Arc::clone(&v), s.clone());
            async move {
                let theirs = standardwebhooks::Webhook::new(&s).unwrap();
                let svix = svix::webhooks::Webhook::new(&s).unwrap();
                if theirs.verify(&body, &headers).is_ok() && svix.verify(&body, &headers).is_ok() {
                    v.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(example_binary("sender"));
    cmd.env("WEBHOOK_URL", &url)
        .env("WEBHOOK_SECRET", &secret)
        .env("WEBHOOK_SCHEME", "standard")
        .env("WEBHOOK_DB", dir.path().join("q.db"))
        .env("WEBHOOK_EVENTS", "2")
        .env("WEBHOOK_ALLOW", "127.0.0.1");
    let stdout = run_to_success(cmd).await;
    assert_eq!(stdout.matches("-> delivered").count(), 2, "{stdout}");
    assert!(stdout.contains("0 in the dead letter queue"), "{stdout}");
    assert_eq!(verified.load(Ordering::SeqCst), 2);
    assert!(!stdout.contains(&secret));
}
