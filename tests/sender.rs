//! The sender against real axum receivers on loopback.
#![cfg(feature = "sender")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use webhook_guard::Clock as _;
use webhook_guard::SystemClock;
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, ErrorClass, EventFilter, ManualClock,
    MemoryStore, NewDestination, OutgoingEvent, ReplaySkipReason, RetryPolicy, Sender,
    SenderBuilder, SenderError,
};
use webhook_guard::{Scheme, Secret, SecretSet, Verified, VerifyLayer};

const SECRET: &str = "test-secret-0123456789abcdef";

#[derive(Debug, Clone)]
struct Hit {
    id: String,
    body: Bytes,
    at: Instant,
    secret_index: usize,
}

type Respond = Arc<dyn Fn(usize) -> Response + Send + Sync>;

#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    calls: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    delay: Duration,
    respond: Respond,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn handle(State(r): State<Receiver>, verified: Verified) -> Response {
    let n = r.calls.fetch_add(1, Ordering::SeqCst);
    let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    r.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    r.hits.lock().unwrap().push(Hit {
        id: verified.id().to_owned(),
        body: verified.body().clone(),
        at: Instant::now(),
        secret_index: verified.secret_index(),
    });
    r.in_flight.fetch_sub(1, Ordering::SeqCst);
    (r.respond)(n)
}

/// A verifying receiver on 127.0.0.1:0; `respond(n)` answers the n-th
/// verified request (0-based).
async fn receiver_with(
    secrets: SecretSet,
    delay: Duration,
    respond: impl Fn(usize) -> Response + Send + Sync + 'static,
) -> (String, Receiver) {
    let r = Receiver {
        hits: Arc::default(),
        calls: Arc::default(),
        in_flight: Arc::default(),
        max_in_flight: Arc::default(),
        delay,
        respond: Arc::new(respond),
    };
    let app = Router::new()
        .route("/hook", post(handle))
        .with_state(r.clone())
        .layer(VerifyLayer::new(secrets));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

async fn receiver(
    respond: impl Fn(usize) -> Response + Send + Sync + 'static,
) -> (String, Receiver) {
    receiver_with(SecretSet::single(SECRET).unwrap(), Duration::ZERO, respond).await
}

fn ok(_: usize) -> Response {
    StatusCode::OK.into_response()
}

fn loopback() -> AddressPolicy {
    AddressPolicy::new().allow("127.0.0.1").unwrap()
}

fn fast(store: MemoryStore) -> SenderBuilder<MemoryStore> {
    Sender::builder(store)
        .address_policy(loopback())
        .poll_interval(Duration::from_millis(10))
        .busy_delay(Duration::from_millis(10))
        .retry(
            RetryPolicy::new([Duration::from_millis(20), Duration::from_millis(40)])
                .jitter(0.0)
                .unwrap(),
        )
}

fn event(t: &str, n: u64) -> OutgoingEvent {
    OutgoingEvent::new(t, &serde_json::json!({"event": t, "n": n})).unwrap()
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_status(sender: &Sender<MemoryStore>, id: &str, status: DeliveryStatus) {
    wait_for(
        &format!("{id} to be {status:?}"),
        Duration::from_secs(10),
        || async { sender.delivery_history(id).await.unwrap().delivery.status == status },
    )
    .await;
}

#[tokio::test]
async fn delivers_the_published_bytes_signed_for_the_receivers_verify_layer() {
    let (url, rx) = receiver(ok).await;
    let sender = fast(MemoryStore::new()).build().unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let e = OutgoingEvent::from_json(
        "ingestion.completed",
        &br#"{"event":"ingestion.completed","x": 1}"#[..],
    )
    .unwrap();
    let id = e.id().to_owned();
    let ds = sender.publish(e).await.unwrap();
    assert_eq!(ds.len(), 1);
    // Persisted before any worker runs.
    assert_eq!(
        sender
            .deliveries(&DeliveryQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let _workers = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::Delivered).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, id);
    // Exactly the bytes given, not re-serialized.
    assert_eq!(
        &hits[0].body[..],
        br#"{"event":"ingestion.completed","x": 1}"#
    );
    let h = sender.delivery_history(&ds[0].id).await.unwrap();
    assert_eq!(h.attempts.len(), 1);
    assert_eq!(h.attempts[0].status_code, Some(200));
    assert_eq!(h.attempts[0].attempt, 1);
    assert!(h.attempts[0].succeeded());
}

#[tokio::test]
async fn fails_twice_then_succeeds_with_the_same_id_and_body_each_time() {
    let (url, rx) = receiver(|n| {
        if n < 2 {
            (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        }
    })
    .await;
    let sender = fast(MemoryStore::new()).build().unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::Delivered).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter()
            .all(|h| h.id == ds[0].event_id && h.body == hits[0].body)
    );
    let h = sender.delivery_history(&ds[0].id).await.unwrap();
    let codes: Vec<_> = h.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(500), Some(204)]);
    assert_eq!(
        h.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(h.attempts[0].error_class, Some(ErrorClass::Status));
    assert_eq!(
        h.attempts[0].response_body.as_deref(),
        Some("database down")
    );
    // The schedule was waited: 20 ms, then 40 ms.
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(20));
    assert!(hits[2].at - hits[1].at >= Duration::from_millis(40));
    assert_eq!(h.delivery.attempts, 3);
}

#[tokio::test]
async fn exhausted_retries_dead_letter_and_a_replay_delivers_after_recovery() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let (url, rx) = receiver(move |_| {
        if flag.load(Ordering::SeqCst) {
            StatusCode::OK.into_response()
        } else {
            (StatusCode::BAD_GATEWAY, "x".repeat(5000)).into_response()
        }
    })
    .await;
    let sender = fast(MemoryStore::new()).build().unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::DeadLettered).await;
    assert_eq!(rx.count(), 3, "first attempt and two retries");
    let dlq = sender.dead_letters(&DeliveryQuery::new()).await.unwrap();
    assert_eq!(dlq.items.len(), 1);
    let err = dlq.items[0].last_error.as_deref().unwrap();
    assert!(
        err.contains("gave up after 3 attempt(s)") && err.contains("502"),
        "{err}"
    );
    let h = sender.delivery_history(&ds[0].id).await.unwrap();
    // The answer body is kept, bounded.
    assert_eq!(h.attempts[0].response_body.as_ref().unwrap().len(), 1024);

    healthy.store(true, Ordering::SeqCst);
    let replay = sender.replay_dead_letter(&ds[0].id).await.unwrap();
    assert_eq!(replay.event_id, ds[0].event_id);
    assert_eq!(replay.replay_of.as_deref(), Some(ds[0].id.as_str()));
    wait_status(&sender, &replay.id, DeliveryStatus::Delivered).await;
    // Nothing overwritten: the original keeps its three attempts.
    let original = sender.delivery_history(&ds[0].id).await.unwrap();
    assert_eq!(original.delivery.status, DeliveryStatus::Replayed);
    assert_eq!(
        original.delivery.replayed_as.as_deref(),
        Some(replay.id.as_str())
    );
    assert_eq!(original.attempts.len(), 3);
    assert!(
        sender
            .dead_letters(&DeliveryQuery::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A second replay of the same dead letter is refused.
    assert!(matches!(
        sender.replay_dead_letter(&ds[0].id).await,
        Err(SenderError::WrongState { .. })
    ));
    let hits = rx.hits();
    assert_eq!(hits.len(), 4);
    assert!(hits.iter().all(|h| h.id == ds[0].event_id));
}

#[tokio::test]
async fn gone_disables_the_destination_and_dead_letters_at_once() {
    let (url, rx) = receiver(|_| StatusCode::GONE.into_response()).await;
    let sender = fast(MemoryStore::new()).build().unwrap();
    let d = sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::DeadLettered).await;
    assert_eq!(rx.count(), 1, "410 is not retried");
    let d = sender.destination(&d.id).await.unwrap();
    assert!(!d.enabled);
    assert!(d.disabled_reason.unwrap().contains("410"));
    // A disabled destination gets no new deliveries.
    assert!(
        sender
            .publish(event("kpi.alert", 2))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn retry_after_seconds_replaces_the_schedule() {
    let (url, rx) = receiver(|n| {
        if n == 0 {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let sender = fast(MemoryStore::new())
        .retry(
            RetryPolicy::new([Duration::from_secs(30)])
                .jitter(0.0)
                .unwrap(),
        )
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::Delivered).await;
    let hits = rx.hits();
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "{gap:?}"
    );
}

#[tokio::test]
async fn retry_after_is_capped() {
    let (url, rx) = receiver(|n| {
        if n == 0 {
            (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "86400")]).into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let sender = fast(MemoryStore::new())
        .retry(
            RetryPolicy::new([Duration::from_secs(30)]).retry_after_cap(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::Delivered).await;
    assert_eq!(rx.count(), 2);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out() {
    let (url, _rx) = receiver_with(
        SecretSet::single(SECRET).unwrap(),
        Duration::from_secs(30),
        ok,
    )
    .await;
    let sender = fast(MemoryStore::new())
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::DeadLettered).await;
    let a = &sender.delivery_history(&ds[0].id).await.unwrap().attempts[0];
    assert_eq!(a.error_class, Some(ErrorClass::Timeout), "{a:?}");
    assert_eq!(a.status_code, None);
    assert!(
        a.duration_ms >= 300 && a.duration_ms < 5_000,
        "{}",
        a.duration_ms
    );
}

/// A request that outlived its lease would be claimed and sent again while
/// the first is still in flight: two copies of one delivery at once, from
/// two nodes or from one. The attempt's timeout is cut to its lease.
#[tokio::test]
async fn an_attempt_never_outlives_its_lease() {
    let (url, rx) = receiver_with(
        SecretSet::single(SECRET).unwrap(),
        Duration::from_secs(3),
        ok,
    )
    .await;
    let sender = fast(MemoryStore::new())
        .lease(Duration::from_secs(1))
        .timeout(Duration::from_secs(15))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_status(&sender, &ds[0].id, DeliveryStatus::DeadLettered).await;
    // Long enough for a re-claim after the lease to have sent a copy.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(rx.count(), 1, "the delivery was sent more than once");
    assert_eq!(rx.max_in_flight.load(Ordering::SeqCst), 1);
    let history = sender.delivery_history(&ds[0].id).await.unwrap();
    assert_eq!(history.attempts.len(), 1, "{:?}", history.attempts);
    let a = &history.attempts[0];
    assert_eq!(a.error_class, Some(ErrorClass::Timeout), "{a:?}");
    // The 1 s lease less its 250 ms margin, not the 15 s request timeout.
    assert!(
        a.duration_ms >= 700 && a.duration_ms < 1_000,
        "{}",
        a.duration_ms
    );
}

#[tokio::test]
async fn a_closed_connection_and_a_refused_one_are_recorded_and_retried() {
    // Accepts, reads the request, closes without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            drop(sock);
        }
    });
    // A port nobody listens on.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sender = fast(MemoryStore::new()).build().unwrap();
    let a = sender
        .add_destination(NewDestination::new(format!("http://{closing}/"), SECRET))
        .await
        .unwrap();
    let b = sender
        .add_destination(NewDestination::new(format!("http://{refused}/"), SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    for d in &ds {
        wait_status(&sender, &d.id, DeliveryStatus::DeadLettered).await;
    }
    assert!(accepted.load(Ordering::SeqCst) >= 3);
    for d in &ds {
        let h = sender.delivery_history(&d.id).await.unwrap();
        assert_eq!(h.attempts.len(), 3);
        let class = h.attempts[0].error_class.unwrap();
        if d.destination_id == a.id {
            assert!(
                matches!(class, ErrorClass::Io | ErrorClass::Connect),
                "{class:?}"
            );
        } else {
            assert_eq!(d.destination_id, b.id);
            assert_eq!(class, ErrorClass::Connect, "{:?}", h.attempts[0]);
        }
        assert!(h.attempts[0].error.is_some());
    }
}

#[tokio::test]
async fn event_filters_fan_out() {
    let (all_url, all) = receiver(ok).await;
    let (kpi_url, kpi) = receiver(ok).await;
    let (ing_url, ing) = receiver(ok).await;
    let sender = fast(MemoryStore::new()).build().unwrap();
    sender
        .add_destination(NewDestination::new(all_url, SECRET))
        .await
        .unwrap();
    sender
        .add_destination(NewDestination::new(kpi_url, SECRET).events(EventFilter::only(["kpi.*"])))
        .await
        .unwrap();
    sender
        .add_destination(
            NewDestination::new(ing_url, SECRET).events(EventFilter::only(["ingestion.completed"])),
        )
        .await
        .unwrap();
    assert_eq!(
        sender.publish(event("kpi.alert", 1)).await.unwrap().len(),
        2
    );
    assert_eq!(
        sender
            .publish(event("ingestion.completed", 2))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        sender
            .publish(event("dashboard.ready", 3))
            .await
            .unwrap()
            .len(),
        1
    );
    let _w = sender.start();
    wait_for("fan-out", Duration::from_secs(10), || async {
        all.count() == 3 && kpi.count() == 1 && ing.count() == 1
    })
    .await;
}

#[tokio::test]
async fn a_changed_event_filter_applies_to_the_next_publish() {
    let (url, rx) = receiver(ok).await;
    // A long destination cache: only the change itself can refresh it.
    let sender = fast(MemoryStore::new())
        .destination_cache(Duration::from_secs(3600))
        .build()
        .unwrap();
    let d = sender
        .add_destination(NewDestination::new(url, SECRET).events(EventFilter::only(["kpi.*"])))
        .await
        .unwrap();
    assert_eq!(
        sender.publish(event("kpi.alert", 1)).await.unwrap().len(),
        1
    );
    assert!(
        sender
            .publish(event("ingestion.completed", 2))
            .await
            .unwrap()
            .is_empty()
    );

    let changed = sender
        .set_event_filter(&d.id, EventFilter::only(["ingestion.completed"]))
        .await
        .unwrap();
    assert_eq!(changed.events, EventFilter::only(["ingestion.completed"]));
    assert_eq!(
        sender.destination(&d.id).await.unwrap().events,
        changed.events
    );
    assert_eq!(
        sender
            .publish(event("ingestion.completed", 3))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        sender
            .publish(event("kpi.alert", 4))
            .await
            .unwrap()
            .is_empty()
    );

    let _w = sender.start();
    wait_for("two deliveries", Duration::from_secs(10), || async {
        rx.count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut arrived: Vec<u64> = rx
        .hits()
        .iter()
        .map(|h| {
            serde_json::from_slice::<serde_json::Value>(&h.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    arrived.sort_unstable();
    assert_eq!(
        arrived,
        [1, 3],
        "the events the filter let through at publish time"
    );

    assert!(matches!(
        sender
            .set_event_filter("dst_missing", EventFilter::All)
            .await,
        Err(SenderError::DestinationNotFound { id }) if id == "dst_missing"
    ));
}

#[tokio::test]
async fn body_only_scheme_is_stored_by_name_and_verifies() {
    let secrets = SecretSet::single(SECRET).unwrap();
    let app_rx = Receiver {
        hits: Arc::default(),
        calls: Arc::default(),
        in_flight: Arc::default(),
        max_in_flight: Arc::default(),
        delay: Duration::ZERO,
        respond: Arc::new(ok),
    };
    let app = Router::new()
        .route("/hook", post(handle))
        .with_state(app_rx.clone())
        .layer(VerifyLayer::new(secrets).scheme(Scheme::native_body_only()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sender = fast(MemoryStore::new()).build().unwrap();
    let d = sender
        .add_destination(
            NewDestination::new(format!("http://{addr}/hook"), SECRET)
                .scheme(Scheme::native_body_only()),
        )
        .await
        .unwrap();
    assert_eq!(d.scheme.as_str(), "native-body-only");
    let body =
        serde_json::json!({"event": "kpi.alert", "timestamp": SystemClock.now_millis() / 1000});
    sender
        .publish(OutgoingEvent::new("kpi.alert", &body).unwrap())
        .await
        .unwrap();
    let _w = sender.start();
    wait_for("body-only delivery", Duration::from_secs(10), || async {
        app_rx.count() == 1
    })
    .await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_until_the_overlap_ends() {
    const OLD: &str = "old-secret-0123456789abcdef";
    const NEW: &str = "new-secret-0123456789abcdef";
    let clock = ManualClock::at(SystemClock.now_millis());
    let (old_url, old_rx) =
        receiver_with(SecretSet::single(OLD).unwrap(), Duration::ZERO, ok).await;
    let (new_url, new_rx) =
        receiver_with(SecretSet::single(NEW).unwrap(), Duration::ZERO, ok).await;
    let sender = fast(MemoryStore::new())
        .clock(clock.clone())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let old_dest = sender
        .add_destination(NewDestination::new(old_url, OLD))
        .await
        .unwrap();
    let new_dest = sender
        .add_destination(NewDestination::new(new_url, OLD))
        .await
        .unwrap();
    for id in [&old_dest.id, &new_dest.id] {
        let d = sender
            .rotate_secret(id, NEW, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(d.secrets.len(), 2);
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains(OLD) && !json.contains(NEW), "{json}");
        assert!(!format!("{d:?}").contains(NEW));
    }
    let _w = sender.start();
    let first = sender.publish(event("kpi.alert", 1)).await.unwrap();
    wait_for("both receivers", Duration::from_secs(10), || async {
        old_rx.count() == 1 && new_rx.count() == 1
    })
    .await;
    // Recorded as delivered before the clock jumps past the lease: an
    // attempt still being recorded would otherwise be claimed again.
    for d in &first {
        wait_status_any(&sender, &d.id).await;
    }
    // The new secret signs first.
    assert_eq!(new_rx.hits()[0].secret_index, 0);
    // After the overlap only the new secret signs: the old-only receiver refuses.
    clock.advance(61_000);
    let ds = sender.publish(event("kpi.alert", 2)).await.unwrap();
    for d in &ds {
        wait_status_any(&sender, &d.id).await;
    }
    assert_eq!(new_rx.count(), 2);
    assert_eq!(old_rx.count(), 1);
    let refused = ds.iter().find(|d| d.destination_id == old_dest.id).unwrap();
    let h = sender.delivery_history(&refused.id).await.unwrap();
    assert_eq!(h.delivery.status, DeliveryStatus::DeadLettered);
    assert_eq!(h.attempts[0].status_code, Some(401));
}

async fn wait_status_any(sender: &Sender<MemoryStore>, id: &str) {
    wait_for("a final status", Duration::from_secs(10), || async {
        sender.delivery_history(id).await.unwrap().delivery.status != DeliveryStatus::Pending
    })
    .await;
}

#[tokio::test]
async fn history_filters_and_pages() {
    let clock = ManualClock::at(1_000_000);
    let store = MemoryStore::new();
    let sender = fast(store).clock(clock.clone()).build().unwrap();
    let a = sender
        .add_destination(NewDestination::new("http://127.0.0.1:9/a", SECRET))
        .await
        .unwrap();
    let b = sender
        .add_destination(
            NewDestination::new("http://127.0.0.1:9/b", SECRET)
                .events(EventFilter::only(["kpi.alert"])),
        )
        .await
        .unwrap();
    let mut event_ids = Vec::new();
    for n in 0..5 {
        let t = if n % 2 == 0 {
            "kpi.alert"
        } else {
            "kpi.computed"
        };
        let ds = sender.publish(event(t, n)).await.unwrap();
        event_ids.push(ds[0].event_id.clone());
        clock.advance(1_000);
    }
    // 5 to a, 3 to b.
    let all = sender.deliveries(&DeliveryQuery::new()).await.unwrap();
    assert_eq!(all.items.len(), 8);
    assert!(
        all.items.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    let to_b = sender
        .deliveries(&DeliveryQuery::new().destination(&b.id))
        .await
        .unwrap();
    assert_eq!(to_b.items.len(), 3);
    let by_type = sender
        .deliveries(&DeliveryQuery::new().event_type("kpi.computed"))
        .await
        .unwrap();
    assert!(
        by_type
            .items
            .iter()
            .all(|d| d.destination_id == a.id && d.event_type == "kpi.computed")
    );
    assert_eq!(by_type.items.len(), 2);
    let by_event = sender
        .deliveries(&DeliveryQuery::new().event(&event_ids[0]))
        .await
        .unwrap();
    assert_eq!(by_event.items.len(), 2);
    let window = sender
        .deliveries(&DeliveryQuery::new().between(Some(1_001_000), Some(1_003_000)))
        .await
        .unwrap();
    assert_eq!(window.items.len(), 2 + 1, "events 1 (a) and 2 (a, b)");
    let pending = sender
        .deliveries(&DeliveryQuery::new().status(DeliveryStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 8);
    // Paging: 3 + 3 + 2, no overlap, nothing missed.
    let mut q = DeliveryQuery::new().limit(3);
    let mut seen = Vec::new();
    loop {
        let page = sender.deliveries(&q).await.unwrap();
        seen.extend(page.items.iter().map(|d| d.id.clone()));
        if page.next_cursor.is_none() {
            break;
        }
        q = q.after_page(&page);
    }
    assert_eq!(seen.len(), 8);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8);
    // Records serialize with stable camelCase names.
    let json = serde_json::to_value(&all.items[0]).unwrap();
    for key in [
        "id",
        "eventId",
        "destinationId",
        "status",
        "attempts",
        "createdAtMs",
        "nextAttemptAtMs",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["status"], "pending");
}

#[tokio::test]
async fn resend_test_event_replay_all_and_delete() {
    let clock = ManualClock::at(SystemClock.now_millis());
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = Arc::clone(&failing);
    let (url, rx) = receiver(move |_| {
        if flag.load(Ordering::SeqCst) {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let sender = fast(MemoryStore::new())
        .clock(clock.clone())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let d = sender
        .add_destination(NewDestination::new(url, SECRET).events(EventFilter::only(["nothing"])))
        .await
        .unwrap();
    let _w = sender.start();
    // A test event ignores the filter.
    let test = sender.send_test_event(&d.id).await.unwrap();
    assert_eq!(test.event_type, "webhook.test");
    wait_status(&sender, &test.id, DeliveryStatus::DeadLettered).await;
    let t0 = clock.now_millis();
    clock.advance(10_000);
    let second = sender.send_test_event(&d.id).await.unwrap();
    wait_status(&sender, &second.id, DeliveryStatus::DeadLettered).await;
    assert_eq!(
        sender
            .dead_letters(&DeliveryQuery::new())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    failing.store(false, Ordering::SeqCst);
    // Only the second dead letter falls in the window.
    let summary = sender
        .replay_dead_letters(Some(t0 + 5_000), None)
        .await
        .unwrap();
    assert_eq!(summary.replayed.len(), 1);
    assert_eq!(
        summary.replayed[0].replay_of.as_deref(),
        Some(second.id.as_str())
    );
    wait_status(&sender, &summary.replayed[0].id, DeliveryStatus::Delivered).await;
    let rest = sender.replay_dead_letters(None, None).await.unwrap();
    assert_eq!(rest.replayed.len(), 1);
    wait_status(&sender, &rest.replayed[0].id, DeliveryStatus::Delivered).await;

    // Resending a delivered one makes a new delivery with the same event id.
    let again = sender.resend(&rest.replayed[0].id).await.unwrap();
    assert_eq!(again.event_id, test.event_id);
    wait_status(&sender, &again.id, DeliveryStatus::Delivered).await;
    let ids: Vec<_> = rx.hits().iter().map(|h| h.id.clone()).collect();
    assert_eq!(ids.iter().filter(|i| **i == test.event_id).count(), 3);
    assert_eq!(
        sender
            .delivery_history(&rest.replayed[0].id)
            .await
            .unwrap()
            .delivery
            .status,
        DeliveryStatus::Delivered,
        "a resent delivered original stays as it was"
    );

    // Disable, publish to the held queue, delete: the pending one is dead-lettered.
    sender.enable_destination(&d.id).await.unwrap();
    sender
        .disable_destination(&d.id, "maintenance")
        .await
        .unwrap();
    assert!(matches!(
        sender.send_test_event(&d.id).await,
        Err(SenderError::DestinationDisabled { id }) if id == d.id
    ));
    sender.delete_destination(&d.id).await.unwrap();
    assert!(matches!(
        sender.destination(&d.id).await,
        Err(SenderError::DestinationNotFound { .. })
    ));
    assert!(matches!(
        sender.delete_destination(&d.id).await,
        Err(SenderError::DestinationNotFound { .. })
    ));
    assert!(matches!(
        sender.resend(&again.id).await,
        Err(SenderError::DestinationNotFound { .. })
    ));
}

/// A dead letter whose destination was deleted is skipped by
/// `replay_dead_letters`, with a typed reason whose text (and JSON) is the
/// error replaying it alone gives.
#[tokio::test]
async fn replay_all_skips_dead_letters_of_deleted_destinations() {
    // No workers: the delivery stays pending until the delete
    // dead-letters it.
    let sender = fast(MemoryStore::new()).build().unwrap();
    let d = sender
        .add_destination(NewDestination::new("http://127.0.0.1:9/", SECRET))
        .await
        .unwrap();
    let published = sender.publish(event("kpi.alert", 1)).await.unwrap();
    sender.delete_destination(&d.id).await.unwrap();
    let dead = sender.delivery_history(&published[0].id).await.unwrap();
    assert_eq!(dead.delivery.status, DeliveryStatus::DeadLettered);

    let summary = sender.replay_dead_letters(None, None).await.unwrap();
    assert!(summary.replayed.is_empty());
    assert_eq!(summary.skipped.len(), 1);
    let skip = &summary.skipped[0];
    assert_eq!(skip.delivery_id, published[0].id);
    assert!(matches!(
        &skip.reason,
        ReplaySkipReason::DestinationNotFound { destination_id } if *destination_id == d.id
    ));
    let single = sender
        .replay_dead_letter(&skip.delivery_id)
        .await
        .unwrap_err();
    assert_eq!(skip.reason.to_string(), single.to_string());
    assert_eq!(
        serde_json::to_value(skip).unwrap(),
        serde_json::json!({
            "deliveryId": skip.delivery_id,
            "reason": format!("no destination with id `{}`", d.id),
        })
    );
}

#[tokio::test]
async fn disabled_destinations_hold_pending_deliveries_until_enabled() {
    let (url, rx) = receiver(ok).await;
    let sender = fast(MemoryStore::new()).build().unwrap();
    let d = sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let ds = sender.publish(event("kpi.alert", 1)).await.unwrap();
    sender
        .disable_destination(&d.id, "maintenance")
        .await
        .unwrap();
    let _w = sender.start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 0);
    sender.enable_destination(&d.id).await.unwrap();
    wait_status(&sender, &ds[0].id, DeliveryStatus::Delivered).await;
}

#[tokio::test]
async fn duplicate_event_ids_and_bad_events_are_refused() {
    let sender = fast(MemoryStore::new()).build().unwrap();
    let e = event("kpi.alert", 1).with_id("evt_fixed").unwrap();
    sender.publish(e.clone()).await.unwrap();
    assert!(matches!(
        sender.publish(e).await,
        Err(SenderError::DuplicateEvent { .. })
    ));
    assert!(OutgoingEvent::new("", &1).is_err());
    assert!(OutgoingEvent::new("has space", &1).is_err());
    assert!(OutgoingEvent::new("x".repeat(129), &1).is_err());
    assert!(OutgoingEvent::from_json("kpi.alert", &b"{not json"[..]).is_err());
    assert!(event("kpi.alert", 1).with_id("bad id").is_err());
    assert!(event("kpi.alert", 1).with_id("x".repeat(257)).is_err());
}

#[tokio::test]
async fn ssrf_guard_refuses_internal_targets_at_registration() {
    let strict = Sender::builder(MemoryStore::new()).build().unwrap();
    for url in [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0.0.0.0/",
        // Host `x`, which does not resolve: refused in the same words as an
        // internal host, so the answer tells nothing about internal DNS.
        "http:///x",
        "http://no-such-host.invalid/",
    ] {
        let err = strict
            .add_destination(NewDestination::new(url, SECRET))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SenderError::ForbiddenAddress { .. }),
            "{url}: {err}"
        );
    }
    for url in [
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "not a url",
    ] {
        let err = strict
            .add_destination(NewDestination::new(url, SECRET))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SenderError::InvalidDestination { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    assert!(
        strict
            .add_destination(NewDestination::new("http://example.com/", ""))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn ssrf_guard_is_enforced_at_connect_time() {
    // A destination registered while loopback was allowed (think: DNS that
    // answered a public address then) is refused when another sender,
    // without the allowance, connects: via the resolver and via the literal.
    let (url, rx) = receiver(ok).await;
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let store = MemoryStore::new();
    let lenient = fast(store.clone()).build().unwrap();
    lenient
        .add_destination(NewDestination::new(
            format!("http://localhost:{port}/hook"),
            SECRET,
        ))
        .await
        .unwrap();
    lenient
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    let strict = Sender::builder(store)
        .poll_interval(Duration::from_millis(10))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let ds = strict.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = strict.start();
    for d in &ds {
        wait_for("dead letter", Duration::from_secs(10), || async {
            strict
                .delivery_history(&d.id)
                .await
                .unwrap()
                .delivery
                .status
                == DeliveryStatus::DeadLettered
        })
        .await;
        let h = strict.delivery_history(&d.id).await.unwrap();
        assert_eq!(
            h.attempts[0].error_class,
            Some(ErrorClass::Blocked),
            "{:?}",
            h.attempts[0]
        );
        // The history, which tenants may see, names no address or range.
        let error = h.attempts[0].error.as_deref().unwrap();
        assert!(
            error.contains("must resolve to public addresses"),
            "{error}"
        );
        for needle in ["127.0.0.1", "loopback", "127.0.0.0/8"] {
            assert!(!error.contains(needle), "{error}");
        }
    }
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn circuit_breaker_pauses_a_failing_destination_then_probes() {
    let (url, rx) = receiver(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()).await;
    let sender = fast(MemoryStore::new())
        .retry(
            RetryPolicy::new([Duration::from_millis(5); 20])
                .jitter(0.0)
                .unwrap(),
        )
        .circuit_breaker(3, Duration::from_millis(600))
        .build()
        .unwrap();
    let d = sender
        .add_destination(NewDestination::new(url, SECRET))
        .await
        .unwrap();
    sender.publish(event("kpi.alert", 1)).await.unwrap();
    let _w = sender.start();
    wait_for("the circuit to open", Duration::from_secs(10), || async {
        sender.is_paused(&d.id)
    })
    .await;
    let at_open = rx.count();
    assert_eq!(at_open, 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), at_open, "no attempt while paused");
    wait_for("a probe", Duration::from_secs(10), || async {
        rx.count() > at_open
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.count(), at_open + 1, "one probe, then paused again");
    assert!(sender.is_paused(&d.id));
}

#[tokio::test]
async fn a_slow_destination_cannot_starve_the_others() {
    let (slow_url, slow) = receiver_with(
        SecretSet::single(SECRET).unwrap(),
        Duration::from_millis(200),
        ok,
    )
    .await;
    let (fast_url, quick) = receiver(ok).await;
    let sender = fast(MemoryStore::new())
        .per_destination_concurrency(2)
        .max_in_flight(8)
        .build()
        .unwrap();
    sender
        .add_destination(NewDestination::new(slow_url, SECRET).events(EventFilter::only(["slow"])))
        .await
        .unwrap();
    sender
        .add_destination(NewDestination::new(fast_url, SECRET).events(EventFilter::only(["fast"])))
        .await
        .unwrap();
    for n in 0..10 {
        sender.publish(event("slow", n)).await.unwrap();
    }
    for n in 0..10 {
        sender.publish(event("fast", n)).await.unwrap();
    }
    let started = Instant::now();
    let _w = sender.start();
    wait_for("fast deliveries", Duration::from_secs(10), || async {
        quick.count() == 10
    })
    .await;
    let fast_done = started.elapsed();
    assert!(slow.count() < 10, "the fast destination finished first");
    wait_for("slow deliveries", Duration::from_secs(10), || async {
        slow.count() == 10
    })
    .await;
    assert!(slow.max_in_flight.load(Ordering::SeqCst) <= 2);
    assert!(fast_done < Duration::from_millis(800), "{fast_done:?}");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_json() {
    let sender = fast(MemoryStore::new()).build().unwrap();
    let d = sender
        .add_destination(
            NewDestination::new("http://127.0.0.1:9/", "hunter2-secret-0123456789abcdef")
                .secret(Secret::from("swordfish-0123456789abcdef")),
        )
        .await
        .unwrap();
    let shown = format!(
        "{d:?} {sender:?} {:?}",
        NewDestination::new("http://x/", "hunter2-secret-0123456789abcdef")
    );
    let json = serde_json::to_string(&d).unwrap();
    for s in [shown, json] {
        assert!(!s.contains("hunter2") && !s.contains("swordfish"), "{s}");
    }
}
