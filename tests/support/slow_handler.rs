//! A handler that runs five times longer than the lease, on two inboxes
//! (as two receiver processes) over one store: the workers renew the lease
//! while it runs, so the other inbox never claims the event meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use webhook_guard::inbox::{Inbox, InboxEvent, InboxStatus, InboxStore, RetryPolicy};

use crate::inbox_http::{serve_inbox, signed_now};

const LEASE: Duration = Duration::from_millis(300);
const HANDLER_TAKES: Duration = Duration::from_millis(1_500);
const BODY: &str = r#"{"event":"ingestion.completed","tenantId":"tenant_abc123"}"#;

/// Delivers one event over HTTP to the first of two inboxes on `first`
/// and `second` (one store), both running workers whose handler takes
/// [`HANDLER_TAKES`] under a [`LEASE`]; asserts the handler ran exactly
/// once and the event ended done on its first attempt.
pub async fn a_handler_longer_than_the_lease_runs_once<S: InboxStore>(first: S, second: S) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut inboxes = Vec::new();
    let mut running = Vec::new();
    for store in [first, second] {
        let inbox = Inbox::builder(store)
            .lease(LEASE)
            .poll_interval(Duration::from_millis(20))
            .retry(RetryPolicy::new(Vec::new()))
            .build()
            .await
            .unwrap();
        let calls = Arc::clone(&calls);
        running.push(inbox.start(move |_: InboxEvent<serde_json::Value>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(HANDLER_TAKES).await;
                Ok::<(), String>(())
            }
        }));
        inboxes.push(inbox);
    }
    let url = serve_inbox(&inboxes[0]).await;
    let res = reqwest::Client::new()
        .post(&url)
        .headers(signed_now("evt_slow", BODY))
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(15);
    let entry = loop {
        let entry = inboxes[1].event("evt_slow").await.unwrap().unwrap();
        if entry.status != InboxStatus::Pending {
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "never settled; the handler ran {} time(s): {entry:?}",
            calls.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran again");
    assert_eq!(entry.status, InboxStatus::Done, "{entry:?}");
    assert_eq!(entry.attempts, 1, "claimed again: {entry:?}");
    for workers in running {
        workers.shutdown().await;
    }
}
