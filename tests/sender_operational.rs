//! Sender metrics beyond the delivery counters, and operational events,
//! over real HTTP: per-destination attempt figures, circuit changes,
//! 410-disables, publish latency, the queue gauges, the hook and the
//! signed operational webhook.
//!
//! Each test reads its own recorder: a thread-local one on a current-thread
//! runtime, where every task the test starts runs.
#![cfg(feature = "sender")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, DeliveryStore, ManualClock, MemoryStore,
    NewDestination, OperationalEvent, OutgoingEvent, RetryPolicy, Sender, SenderBuilder,
    metric_names,
};
use webhook_guard::{Clock as _, SecretSet, VerifyLayer};

const SECRET: &str = "s-0123456789abcdef0123456789";
const OPERATOR_SECRET: &str = "operator-secret-0123456789abcdef";

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Answers `codes` in turn, then the last one for ever.
fn answering(codes: &'static [u16]) -> axum::routing::MethodRouter {
    let n = Arc::new(AtomicUsize::new(0));
    post(move || {
        let i = n.fetch_add(1, Ordering::SeqCst).min(codes.len() - 1);
        async move { StatusCode::from_u16(codes[i]).unwrap() }
    })
}

fn builder<S: DeliveryStore>(store: S) -> SenderBuilder<S> {
    Sender::builder(store)
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .poll_interval(Duration::from_millis(5))
        .busy_delay(Duration::from_millis(5))
}

async fn until_nothing_pending<S: DeliveryStore>(sender: &Sender<S>) {
    let start = Instant::now();
    let pending = DeliveryQuery::new().status(DeliveryStatus::Pending);
    while !sender.deliveries(&pending).await.unwrap().items.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "still pending");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every series as `name{label=value,..}` with its value: counters as
/// their count, histograms as their number of samples, gauges as values.
fn series(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let v = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Histogram(v) => v.len() as f64,
            DebugValue::Gauge(g) => g.into_inner(),
        };
        out.insert(name, v);
    }
    out
}

fn sum_of(series: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    series
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

type Seen = Arc<Mutex<Vec<OperationalEvent>>>;

fn hook_into(seen: &Seen) -> impl Fn(&OperationalEvent) + Send + Sync + 'static {
    let seen = seen.clone();
    move |e: &OperationalEvent| seen.lock().unwrap().push(e.clone())
}

/// Four endpoints over real HTTP: `ok` answers 200; `fail` 500 for ever
/// (its circuit opens, then its retries run out); `gone` 410; `flaky` 500
/// twice then 200 (its circuit opens, then its probe closes it).
#[tokio::test]
async fn attempts_circuits_and_disables_are_counted_and_reported_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let app = Router::new()
        .route("/ok", answering(&[200]))
        .route("/fail", answering(&[500]))
        .route("/gone", answering(&[410]))
        .route("/flaky", answering(&[500, 500, 200]));
    let addr = serve(app).await;
    let seen = Seen::default();
    let retry = RetryPolicy::new([Duration::from_millis(5); 2])
        .jitter(0.0)
        .unwrap();
    let sender = builder(MemoryStore::new())
        .retry(retry)
        .circuit_breaker(2, Duration::from_millis(30))
        .destination_metrics(3)
        .on_operational_event(hook_into(&seen))
        .build()
        .unwrap();
    let mut ids = BTreeMap::new();
    for path in ["ok", "fail", "gone", "flaky"] {
        let url = format!("http://{addr}/{path}");
        let d = sender
            .add_destination(NewDestination::new(url, SECRET).id(format!("dst_{path}")))
            .await
            .unwrap();
        ids.insert(path, d.id);
    }
    sender
        .publish(OutgoingEvent::new("kpi.alert", &1).unwrap())
        .await
        .unwrap();
    let workers = sender.start();
    until_nothing_pending(&sender).await;
    workers.shutdown().await;

    let s = series(&snapshotter);
    // ok 1 success; fail 3 failures; gone 1 failure; flaky 2 failures, 1 success.
    let attempts = metric_names::ATTEMPTS;
    assert_eq!(
        sum_of(&s, &format!("{attempts}{{outcome=success")),
        2.0,
        "{s:#?}"
    );
    assert_eq!(
        sum_of(&s, &format!("{attempts}{{outcome=failure")),
        6.0,
        "{s:#?}"
    );
    assert_eq!(sum_of(&s, metric_names::ATTEMPT_SECONDS), 8.0, "{s:#?}");
    // Three destinations named, the fourth seen is `other`.
    let labelled: BTreeSet<String> = s
        .keys()
        .filter(|k| k.starts_with(metric_names::ATTEMPT_SECONDS))
        .filter_map(|k| {
            k.split("destination=")
                .nth(1)
                .map(|v| v.trim_end_matches('}').to_owned())
        })
        .collect();
    assert_eq!(labelled.len(), 4, "{labelled:?}");
    assert!(labelled.contains("other"), "{labelled:?}");
    assert_eq!(labelled.iter().filter(|v| v.starts_with("dst_")).count(), 3);
    let transitions = metric_names::CIRCUIT_TRANSITIONS;
    assert_eq!(
        s.get(&format!("{transitions}{{state=open}}")),
        Some(&2.0),
        "{s:#?}"
    );
    assert_eq!(
        s.get(&format!("{transitions}{{state=closed}}")),
        Some(&1.0),
        "{s:#?}"
    );
    assert_eq!(
        s.get(&format!("{}{{}}", metric_names::DESTINATIONS_DISABLED)),
        Some(&1.0)
    );
    assert_eq!(
        s.get(&format!("{}{{}}", metric_names::DEAD_LETTERED)),
        Some(&2.0)
    );
    assert_eq!(
        s.get(&format!("{}{{}}", metric_names::PUBLISH_SECONDS)),
        Some(&1.0)
    );

    // The hook heard each change once.
    let mut kinds: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.event_type().to_owned(), e.destination_id().to_owned()))
        .collect();
    kinds.sort();
    let want = |t: &str, d: &str| (t.to_owned(), format!("dst_{d}"));
    let mut expected = vec![
        want("delivery.dead_lettered", "fail"),
        want("delivery.dead_lettered", "gone"),
        want("destination.circuit_closed", "flaky"),
        want("destination.circuit_opened", "fail"),
        want("destination.circuit_opened", "flaky"),
        want("destination.disabled", "gone"),
    ];
    expected.sort();
    assert_eq!(kinds, expected);
    let dead = seen
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            OperationalEvent::DeadLettered {
                destination_id,
                attempts,
                last_error,
                event_type,
                ..
            } if destination_id == "dst_fail" => {
                Some((*attempts, last_error.clone(), event_type.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(dead.0, 3);
    assert_eq!(dead.2, "kpi.alert");
    assert!(
        dead.1.starts_with("gave up after 3 attempt(s)"),
        "{}",
        dead.1
    );
    assert!(!sender.destination("dst_gone").await.unwrap().enabled);
}

/// Five events wait for an endpoint that never answers, with one attempt
/// slot: the gauges show the store's figures, at start and on the timer.
#[tokio::test]
async fn queue_gauges_follow_the_store() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let addr = serve(Router::new().route("/slow", post(std::future::pending::<StatusCode>))).await;
    let clock = ManualClock::at(1_000);
    let sender = builder(MemoryStore::new())
        .clock(clock.clone())
        .max_in_flight(1)
        .queue_metrics_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(format!("http://{addr}/slow"), SECRET))
        .await
        .unwrap();
    for n in 0..5 {
        sender
            .publish(OutgoingEvent::new("kpi.alert", &n).unwrap())
            .await
            .unwrap();
    }
    clock.advance(30_000);
    let _workers = sender.start();
    let pending = format!("{}{{}}", metric_names::QUEUE_PENDING);
    let oldest = format!("{}{{}}", metric_names::QUEUE_OLDEST_DUE_SECONDS);
    // Sampled at start: all five were published at 1 s and are due since.
    let s = gauge_reads(&snapshotter, &oldest, 30.0).await;
    assert_eq!(s.get(&pending), Some(&5.0));
    let stats = sender.queue_stats().await.unwrap();
    assert_eq!(stats.pending, 5);
    assert_eq!(stats.oldest_due_age_ms(clock.now_millis()), 30_000);
    // Then on the timer, as the clock moves on.
    clock.advance(10_000);
    let s = gauge_reads(&snapshotter, &oldest, 40.0).await;
    assert_eq!(s.get(&pending), Some(&5.0));
}

/// The series once the gauge `name` reads `want`.
async fn gauge_reads(snapshotter: &Snapshotter, name: &str, want: f64) -> BTreeMap<String, f64> {
    let start = Instant::now();
    loop {
        let s = series(snapshotter);
        if s.get(name) == Some(&want) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{s:#?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The receiving side of the operational webhook: the crate's own
/// `VerifyLayer` with the operator's secret in front of a handler that
/// keeps each verified body.
async fn operator(
    status: StatusCode,
) -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<Bytes>>>,
    Arc<AtomicUsize>,
) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (bodies.clone(), hits.clone());
    let verified = Router::new()
        .route(
            "/ops",
            post(move |body: Bytes| {
                let b = b.clone();
                async move {
                    b.lock().unwrap().push(body);
                    status
                }
            }),
        )
        .layer(VerifyLayer::new(
            SecretSet::single(OPERATOR_SECRET).unwrap(),
        ));
    let app = verified.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            }
        },
    ));
    (serve(app).await, bodies, hits)
}

#[tokio::test]
async fn the_operational_webhook_is_signed_and_verifies() {
    let (ops, bodies, hits) = operator(StatusCode::OK).await;
    let addr = serve(Router::new().route("/gone", answering(&[410]))).await;
    let seen = Seen::default();
    let sender = builder(MemoryStore::new())
        .on_operational_event(hook_into(&seen))
        .operational_webhook(format!("http://{ops}/ops"), OPERATOR_SECRET)
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(format!("http://{addr}/gone"), SECRET).id("dst_gone"))
        .await
        .unwrap();
    sender
        .publish(OutgoingEvent::new("kpi.alert", &1).unwrap())
        .await
        .unwrap();
    let _workers = sender.start();
    let start = Instant::now();
    while bodies.lock().unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} hits",
            hits.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every request that came passed verification.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let mut got: Vec<serde_json::Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    got.sort_by_key(|v| v["type"].as_str().unwrap().to_owned());
    assert_eq!(got[0]["type"], "delivery.dead_lettered");
    assert_eq!(got[0]["data"]["destinationId"], "dst_gone");
    assert_eq!(got[0]["data"]["eventType"], "kpi.alert");
    assert_eq!(got[0]["data"]["attempts"], 1);
    assert_eq!(got[1]["type"], "destination.disabled");
    assert_eq!(got[1]["data"]["destinationId"], "dst_gone");
    assert!(got[1]["data"]["reason"].as_str().unwrap().contains("410"));
    assert!(got[1]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_failing_operator_url_does_not_loop() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (ops, _bodies, hits) = operator(StatusCode::INTERNAL_SERVER_ERROR).await;
    let addr = serve(Router::new().route("/fail", answering(&[500]))).await;
    let seen = Seen::default();
    let sender = builder(MemoryStore::new())
        .retry(RetryPolicy::none())
        .on_operational_event(hook_into(&seen))
        .operational_webhook(format!("http://{ops}/ops"), OPERATOR_SECRET)
        .operational_webhook_retry(
            RetryPolicy::new([Duration::from_millis(10); 2])
                .jitter(0.0)
                .unwrap(),
        )
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(format!("http://{addr}/fail"), SECRET))
        .await
        .unwrap();
    sender
        .publish(OutgoingEvent::new("kpi.alert", &1).unwrap())
        .await
        .unwrap();
    let _workers = sender.start();
    let failed = format!("{}{{outcome=failed}}", metric_names::OPERATIONAL_WEBHOOKS);
    let start = Instant::now();
    // Each snapshot of the debugging recorder takes the counts since the last.
    let mut failures = 0.0;
    while failures == 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} hits",
            hits.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        failures += series(&snapshotter).get(&failed).copied().unwrap_or(0.0);
    }
    // Give a loop time to show itself: nothing more comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One event (the dead letter), three tries of its webhook, and no new
    // event or delivery for the failed webhook.
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    failures += series(&snapshotter).get(&failed).copied().unwrap_or(0.0);
    assert_eq!(failures, 1.0);
    let all = sender.deliveries(&DeliveryQuery::new()).await.unwrap();
    assert_eq!(all.items.len(), 1);
}

#[test]
fn a_bad_operational_webhook_is_refused_at_build() {
    let short =
        builder(MemoryStore::new()).operational_webhook("http://127.0.0.1:9/", "tiny-secret");
    let err = short.build().unwrap_err().to_string();
    assert!(err.contains("operational webhook"), "{err}");
    assert!(!err.contains("tiny-secret"), "{err}");
    let bad = builder(MemoryStore::new()).operational_webhook("not a url", OPERATOR_SECRET);
    assert!(bad.build().unwrap_err().to_string().contains("URL"));
    let ftp = builder(MemoryStore::new()).operational_webhook("ftp://127.0.0.1/", OPERATOR_SECRET);
    assert!(ftp.build().unwrap_err().to_string().contains("http"));
}
