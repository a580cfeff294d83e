//! The inbox's metrics, read through a debugging recorder, for known
//! traffic over real HTTP on loopback into a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use webhook_guard::inbox::{
    Inbox, InboxEvent, InboxQuery, InboxStatus, RetryPolicy, SqliteInboxStore, metric_names,
};
use webhook_guard::{Message, Scheme, SecretSet, VerifyLayer};

const SECRET: &str = "inbox-metrics-secret-of-24-bytes";
const BODY: &str = r#"{"event":"kpi.alert","data":{}}"#;

/// The inbox's counters (sum), gauges (last value) and histograms (sample
/// count) seen so far: a snapshot takes the counts since the last one.
#[derive(Debug, Default)]
struct Seen {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, usize>,
}

fn observe(seen: &mut Seen, snapshotter: &Snapshotter) {
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        // The verify layer in front records its own (labelled) metrics.
        if !name.starts_with("webhook_guard_inbox_") {
            continue;
        }
        assert!(
            key.key().labels().next().is_none(),
            "{name} carries a label"
        );
        match value {
            DebugValue::Counter(n) => *seen.counters.entry(name).or_default() += n,
            DebugValue::Gauge(v) => {
                seen.gauges.insert(name, v.into_inner());
            }
            DebugValue::Histogram(v) => *seen.histograms.entry(name).or_default() += v.len(),
        }
    }
}

/// Polls the recorder until `ready` holds (at most 20 s).
async fn wait_for(
    s: &mut Seen,
    snapshotter: &Snapshotter,
    what: &str,
    ready: impl Fn(&Seen) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        observe(s, snapshotter);
        if ready(s) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn deliver(url: &str, id: &str) -> u16 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new(id, i64::try_from(now.as_secs()).unwrap(), BODY.as_bytes()),
        )
        .unwrap();
    let res = reqwest::Client::new()
        .post(url)
        .headers(headers)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

/// Three events stored, one duplicate, two refused by back-pressure; then
/// `ok` succeeds, `flaky` fails once, `broken` fails until dead-lettered.
#[tokio::test]
async fn known_traffic_gives_exactly_these_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::builder(SqliteInboxStore::open(dir.path().join("inbox.db")).unwrap())
        .retry(
            RetryPolicy::new([Duration::from_millis(10)])
                .jitter(0.0)
                .unwrap(),
        )
        .poll_interval(Duration::from_millis(10))
        .depth_sample_interval(Duration::from_millis(10))
        .max_pending(3)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/webhooks", post(|| async { "never called" }))
        .layer(inbox.layer())
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for (id, status) in [
        ("ok", 200),
        ("flaky", 200),
        ("ok", 200), // the duplicate
        ("broken", 200),
        ("refused_1", 503),
        ("refused_2", 503),
    ] {
        assert_eq!(deliver(&url, id).await, status, "{id}");
    }
    let mut s = Seen::default();
    observe(&mut s, &snapshotter);
    assert_eq!(s.counters.get(metric_names::DUPLICATES), Some(&1), "{s:?}");
    assert_eq!(s.counters.get(metric_names::REFUSED), Some(&2), "{s:?}");

    // The handler waits until the gauges have shown the three events.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (g, flaky_failed) = (
        Arc::clone(&gate),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    let workers = inbox.start(move |event: InboxEvent<serde_json::Value>| {
        let (gate, flaky_failed) = (Arc::clone(&g), Arc::clone(&flaky_failed));
        async move {
            drop(gate.acquire().await.unwrap());
            match event.id.as_str() {
                "broken" => Err("broken for good".to_owned()),
                "flaky" if !flaky_failed.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                    Err("flaky once".to_owned())
                }
                _ => Ok(()),
            }
        }
    });
    wait_for(&mut s, &snapshotter, "depth 3 and an age sampled", |s| {
        s.gauges.get(metric_names::DEPTH) == Some(&3.0)
            && s.gauges
                .get(metric_names::OLDEST_AGE_SECONDS)
                .is_some_and(|a| *a >= 0.05)
    })
    .await;
    assert!(s.gauges[metric_names::OLDEST_AGE_SECONDS] < 20.0, "{s:?}");
    gate.add_permits(1_000);

    wait_for(&mut s, &snapshotter, "all settled and sampled empty", |s| {
        s.counters.get(metric_names::DEAD_LETTERED) == Some(&1)
            && s.counters.get(metric_names::PROCESSED) == Some(&2)
            && s.gauges.get(metric_names::DEPTH) == Some(&0.0)
    })
    .await;
    workers.shutdown().await;
    assert_eq!(s.counters.get(metric_names::FAILED), Some(&2), "{s:?}");
    assert_eq!(s.counters.get(metric_names::DUPLICATES), Some(&1), "{s:?}");
    assert_eq!(s.counters.get(metric_names::REFUSED), Some(&2), "{s:?}");
    assert_eq!(s.gauges.get(metric_names::OLDEST_AGE_SECONDS), Some(&0.0));
    // First attempts only: one per stored event, not the two retries.
    assert_eq!(
        s.histograms.get(metric_names::HANDLER_START_SECONDS),
        Some(&3)
    );
    let dead = inbox
        .events(&InboxQuery::new(Some(InboxStatus::DeadLettered), 10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
}
