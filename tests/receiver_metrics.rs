//! The receiver's metrics, read through a debugging recorder while real
//! HTTP requests go through `VerifyLayer` and `IdempotencyLayer` on a
//! loopback port.
//!
//! One recorder and one log subscriber serve the whole file (both are
//! global), so the tests take turns: each reads the counters its own
//! requests added.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod log_capture;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use log_capture::LogBuffer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use webhook_guard::idempotency::{
    Begin, FailMode, IdempotencyLayer, IdempotencyStore, IdempotencyStoreError, LeaseToken,
    MokaStore, StoreFuture,
};
use webhook_guard::verify::{DiagnoseConfig, metric_names};
use webhook_guard::{Clock, Message, Scheme, Secret, SecretSet, VerifyLayer};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "receiver-secret-0123456789abcdef";

/// The recorder and the log buffer of this file, installed once.
struct Globals {
    snapshotter: Snapshotter,
    logs: LogBuffer,
}

fn globals() -> &'static Globals {
    static GLOBALS: OnceLock<Globals> = OnceLock::new();
    GLOBALS.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        let logs = LogBuffer::default();
        tracing::subscriber::set_global_default(logs.subscriber()).unwrap();
        Globals { snapshotter, logs }
    })
}

/// Tests take turns with the global recorder.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A metric's name and labels, as `name{k=v,..}` with sorted labels.
type Series = (String, BTreeMap<String, String>);

/// Counters and gauges added since the last read (the debugging recorder
/// resets counters when it is read).
#[derive(Default, Debug)]
struct Readings {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
    histograms: HashMap<Series, usize>,
}

impl Readings {
    fn take() -> Self {
        let mut readings = Self::default();
        readings.add();
        readings
    }

    /// Adds what was recorded since the last read.
    fn add(&mut self) {
        for (key, _, _, value) in globals().snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let series = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *self.counters.entry(series).or_default() += n,
                DebugValue::Gauge(v) if v.into_inner() != 0.0 => {
                    self.gauges.insert(series, v.into_inner());
                }
                DebugValue::Gauge(_) => {}
                DebugValue::Histogram(v) => *self.histograms.entry(series).or_default() += v.len(),
            }
        }
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.gauges.get(&series(name, labels)).copied()
    }

    /// The sum of a counter over every label set.
    fn total(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (name.to_owned(), labels)
}

/// A clock the test moves.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Serves `layer` (with an idempotency layer inside it) on a loopback port,
/// for `POST /hooks` and `POST /hooks/{*rest}`.
async fn serve(layer: VerifyLayer) -> SocketAddr {
    let app = Router::new()
        .route("/hooks", post(|| async { "ok" }))
        .route("/hooks/{*rest}", post(|| async { "ok" }))
        .layer(IdempotencyLayer::new(MokaStore::default()))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn post_to(addr: SocketAddr, path: &str, headers: HeaderMap, body: &[u8]) -> StatusCode {
    let res = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .headers(headers)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    res.status()
}

fn signed(secrets: &SecretSet, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
    Scheme::native()
        .sign(secrets, &Message::new(id, ts, body))
        .unwrap()
}

const VERIFY: &str = metric_names::REQUESTS;
const IDEMPOTENCY: &str = webhook_guard::idempotency::metric_names::REQUESTS;

#[tokio::test]
async fn requests_are_counted_by_outcome_kind_and_scheme() {
    let _turn = TURN.lock().await;
    Readings::take();
    let secrets = SecretSet::single(SECRET).unwrap();
    let layer = VerifyLayer::new(secrets.clone()).clock(webhook_guard::FixedClock::at(NOW));
    let addr = serve(layer).await;
    let wrong = SecretSet::single("another-secret-0123456789abcdef").unwrap();
    let body = br#"{"event":"kpi.alert"}"#;

    // 3 good, 2 with a bad signature, 2 stale, then 2 of the good again.
    for i in 0..3 {
        let h = signed(&secrets, &format!("evt_{i}"), NOW, body);
        assert_eq!(post_to(addr, "/hooks", h, body).await, StatusCode::OK);
    }
    for i in 0..2 {
        let h = signed(&wrong, &format!("bad_{i}"), NOW, body);
        assert_eq!(
            post_to(addr, "/hooks", h, body).await,
            StatusCode::UNAUTHORIZED
        );
    }
    for i in 0..2 {
        let h = signed(&secrets, &format!("old_{i}"), NOW - 3600, body);
        assert_eq!(
            post_to(addr, "/hooks", h, body).await,
            StatusCode::UNAUTHORIZED
        );
    }
    for i in 0..2 {
        let h = signed(&secrets, &format!("evt_{i}"), NOW, body);
        assert_eq!(post_to(addr, "/hooks", h, body).await, StatusCode::OK);
    }

    let r = Readings::take();
    let verify = |outcome, kind| {
        r.counter(
            VERIFY,
            &[("scheme", "native"), ("outcome", outcome), ("kind", kind)],
        )
    };
    assert_eq!(verify("accepted", "none"), 5, "{r:#?}");
    assert_eq!(verify("rejected", "invalid-signature"), 2, "{r:#?}");
    assert_eq!(verify("rejected", "timestamp-too-old"), 2, "{r:#?}");
    assert_eq!(r.total(VERIFY), 9, "{r:#?}");
    let dedup = |outcome| r.counter(IDEMPOTENCY, &[("scheme", "native"), ("outcome", outcome)]);
    assert_eq!(dedup("new"), 3, "{r:#?}");
    assert_eq!(dedup("duplicate"), 2, "{r:#?}");
    assert_eq!(r.total(IDEMPOTENCY), 5, "{r:#?}");
    let key = [
        ("scheme", "native"),
        ("algorithm", "hmac-sha256"),
        ("key", "0"),
    ];
    assert_eq!(r.counter(metric_names::KEY_MATCHES, &key), 5, "{r:#?}");
    assert_eq!(r.gauge(metric_names::KEY_LAST_USED, &key), Some(NOW as f64));
    // Every request whose body was read had its check timed.
    let timed = series(metric_names::DURATION_SECONDS, &[("scheme", "native")]);
    assert_eq!(r.histograms.get(&timed), Some(&9), "{r:#?}");
}

#[tokio::test]
async fn each_secret_is_counted_by_its_label_with_its_last_use() {
    let _turn = TURN.lock().await;
    Readings::take();
    let old = Secret::from("old-secret-0123456789abcdefgh")
        .labelled("old")
        .unwrap();
    let new = Secret::from("new-secret-0123456789abcdefgh")
        .labelled("new")
        .unwrap();
    let secrets = SecretSet::new([new.clone(), old.clone()]).unwrap();
    let clock = TestClock(Arc::new(AtomicI64::new(NOW)));
    let addr = serve(VerifyLayer::new(secrets).clock(clock.clone())).await;
    let body = b"{}";

    // Two deliveries signed with the old secret, then three with the new
    // one a minute later.
    let old_only = SecretSet::new([old]).unwrap();
    for i in 0..2 {
        let h = signed(&old_only, &format!("o{i}"), NOW, body);
        assert_eq!(post_to(addr, "/hooks", h, body).await, StatusCode::OK);
    }
    clock.0.store(NOW + 60, Ordering::SeqCst);
    let new_only = SecretSet::new([new]).unwrap();
    for i in 0..3 {
        let h = signed(&new_only, &format!("n{i}"), NOW + 60, body);
        assert_eq!(post_to(addr, "/hooks", h, body).await, StatusCode::OK);
    }

    let r = Readings::take();
    let key = |label| {
        [
            ("scheme", "native"),
            ("algorithm", "hmac-sha256"),
            ("key", label),
        ]
    };
    assert_eq!(
        r.counter(metric_names::KEY_MATCHES, &key("old")),
        2,
        "{r:#?}"
    );
    assert_eq!(
        r.counter(metric_names::KEY_MATCHES, &key("new")),
        3,
        "{r:#?}"
    );
    assert_eq!(r.total(metric_names::KEY_MATCHES), 5, "{r:#?}");
    assert_eq!(
        r.gauge(metric_names::KEY_LAST_USED, &key("old")),
        Some(NOW as f64)
    );
    assert_eq!(
        r.gauge(metric_names::KEY_LAST_USED, &key("new")),
        Some((NOW + 60) as f64)
    );
}

#[cfg(feature = "ed25519")]
#[tokio::test]
async fn each_public_key_is_counted_by_its_label() {
    use webhook_guard::Ed25519SigningKey;

    let _turn = TURN.lock().await;
    Readings::take();
    let old = Ed25519SigningKey::from_seed(&[7; 32]);
    let new = Ed25519SigningKey::from_seed(&[9; 32]);
    let hmac = SecretSet::single("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let scheme = Scheme::standard().with_public_keys([
        new.public_key().labelled("ed-new").unwrap(),
        old.public_key().labelled("ed-old").unwrap(),
    ]);
    let layer = VerifyLayer::new(hmac)
        .scheme(scheme)
        .clock(webhook_guard::FixedClock::at(NOW));
    let addr = serve(layer).await;
    // A signer that has only the ed25519 key: an HMAC secret nobody has.
    let nobody = SecretSet::single("nobody-has-this-secret-0123456789").unwrap();
    for (i, key) in [&old, &new, &new].into_iter().enumerate() {
        let signer = Scheme::standard().with_signing_key(key.clone());
        let mut h = signer
            .sign(&nobody, &Message::new(&format!("msg_{i}"), NOW, b"{}"))
            .unwrap();
        // Keep only the `v1a` signature.
        let sig = h["webhook-signature"].to_str().unwrap().to_owned();
        let v1a = sig.split(' ').find(|s| s.starts_with("v1a,")).unwrap();
        h.insert("webhook-signature", v1a.parse().unwrap());
        assert_eq!(post_to(addr, "/hooks", h, b"{}").await, StatusCode::OK);
    }
    let r = Readings::take();
    let key = |label| {
        [
            ("scheme", "standard"),
            ("algorithm", "ed25519"),
            ("key", label),
        ]
    };
    assert_eq!(
        r.counter(metric_names::KEY_MATCHES, &key("ed-old")),
        1,
        "{r:#?}"
    );
    assert_eq!(
        r.counter(metric_names::KEY_MATCHES, &key("ed-new")),
        2,
        "{r:#?}"
    );
    assert_eq!(
        r.gauge(metric_names::KEY_LAST_USED, &key("ed-new")),
        Some(NOW as f64)
    );
}

/// Reads until `name` reaches `want` in total (diagnoses run on blocking
/// threads, after the response).
async fn wait_for_total(r: &mut Readings, name: &str, want: u64) {
    for _ in 0..200 {
        r.add();
        if r.total(name) >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never reached {want}: {r:#?}");
}

#[tokio::test]
async fn a_body_changed_after_signing_is_diagnosed_and_the_rate_is_capped() {
    let _turn = TURN.lock().await;
    Readings::take();
    let logs = &globals().logs;
    logs.clear();
    let secrets = SecretSet::single(SECRET).unwrap();
    let layer = VerifyLayer::new(secrets.clone())
        .clock(webhook_guard::FixedClock::at(NOW))
        .diagnose_failures(DiagnoseConfig::new().at_most(2, Duration::from_secs(3600)));
    let addr = serve(layer).await;

    // Signed compact, received pretty-printed (a proxy re-serialized it).
    let signed_body = br#"{"event":"kpi.alert","data":{"value":97.5}}"#;
    let received = b"{\n  \"event\": \"kpi.alert\",\n  \"data\": {\n    \"value\": 97.5\n  }\n}";
    for i in 0..6 {
        let h = signed(&secrets, &format!("evt_{i}"), NOW, signed_body);
        assert_eq!(
            post_to(addr, "/hooks", h, received).await,
            StatusCode::UNAUTHORIZED
        );
    }

    let mut r = Readings::default();
    wait_for_total(&mut r, metric_names::DIAGNOSED_FAILURES, 2).await;
    // Give any diagnosis beyond the cap the time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    r.add();
    let cause = |c| {
        r.counter(
            metric_names::DIAGNOSED_FAILURES,
            &[("scheme", "native"), ("cause", c)],
        )
    };
    assert_eq!(cause("body-changed"), 2, "{r:#?}");
    assert_eq!(r.total(metric_names::DIAGNOSED_FAILURES), 2, "{r:#?}");
    let skipped = [("scheme", "native"), ("reason", "rate-limited")];
    assert_eq!(
        r.counter(metric_names::DIAGNOSES_SKIPPED, &skipped),
        4,
        "{r:#?}"
    );

    // The log names the change and the request's claimed id ...
    let text = logs.text();
    assert!(text.contains("webhook rejection diagnosed"), "{text}");
    assert!(text.contains("cause=\"body-changed\""), "{text}");
    assert!(text.contains("unverified_id=Some(\"evt_0\")"), "{text}");
    // ... and neither it nor any metric holds the secret or the signature
    // the received body would need.
    let expected = signed(&secrets, "evt_0", NOW, received);
    let expected = expected["x-webhook-signature"].to_str().unwrap();
    let expected_hex = expected.trim_start_matches("sha256=");
    for (name, labels) in r.counters.keys().chain(r.gauges.keys()) {
        let all = format!("{name}{labels:?}");
        assert!(
            !all.contains(SECRET) && !all.contains(expected_hex),
            "{all}"
        );
    }
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains(expected_hex), "{text}");
}

#[tokio::test]
async fn attacker_varied_requests_create_no_new_label_values() {
    let _turn = TURN.lock().await;
    Readings::take();
    let secrets = SecretSet::single(SECRET).unwrap();
    let layer = VerifyLayer::new(secrets.clone())
        .clock(webhook_guard::FixedClock::at(NOW))
        .diagnose_failures(DiagnoseConfig::new().at_most(1000, Duration::from_secs(1)));
    let addr = serve(layer).await;
    let provider_headers = [
        ("x-hub-signature-256", "sha256=00"),
        ("stripe-signature", "t=1,v1=00"),
        ("webhook-signature", "v1,AAAA"),
        ("svix-signature", "v1,AAAA"),
        ("x-slack-signature", "v0=00"),
        ("x-shopify-hmac-sha256", "AAAA"),
        ("x-unknown-provider-signature", "zzz"),
    ];
    for i in 0..40u32 {
        let ts = NOW + i64::from(i % 3) * 1000;
        let mut h = signed(&secrets, &format!("evt_{i}"), ts, b"{}");
        if i % 3 == 1 {
            // An id of attacker bytes, far longer than what is logged.
            let id = [b"\xff\"{}".as_slice(), &[b'x'; 500]].concat();
            h.insert("x-webhook-id", http::HeaderValue::from_bytes(&id).unwrap());
        }
        if i % 2 == 0 {
            h.insert(
                "x-webhook-signature",
                format!("sha256={:064x}", i).parse().unwrap(),
            );
        }
        if i % 5 == 0 {
            h.remove("x-webhook-id");
        }
        let (name, value) = provider_headers[i as usize % provider_headers.len()];
        h.insert(name, value.parse().unwrap());
        let random = http::HeaderName::try_from(format!("x-random-{i}")).unwrap();
        h.insert(random, format!("v{i}").parse().unwrap());
        let path = format!("/hooks/r{i}/%2e%2e/{}?q={i}", "a".repeat(i as usize));
        post_to(addr, &path, h, format!("{{\"n\":{i}}}").as_bytes()).await;
    }
    let mut r = Readings::default();
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.add();

    let allowed: BTreeMap<&str, BTreeSet<&str>> = [
        ("scheme", &["native"][..]),
        ("outcome", &["accepted", "rejected", "new", "duplicate"][..]),
        (
            "kind",
            &[
                "none",
                "missing-header",
                "malformed-header",
                "invalid-signature",
                "timestamp-too-old",
                "timestamp-too-new",
            ][..],
        ),
        ("algorithm", &["hmac-sha256"][..]),
        ("key", &["0"][..]),
        (
            "cause",
            &[
                "other-scheme",
                "body-changed",
                "secret-encoding",
                "timestamp-unit",
                "clock-off",
                "missing-header",
                "unknown",
            ][..],
        ),
        ("reason", &["rate-limited", "body-too-large"][..]),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.iter().copied().collect()))
    .collect();
    let mut seen = 0;
    for (name, labels) in r.counters.keys().chain(r.gauges.keys()) {
        if !name.starts_with("webhook_guard_") {
            continue;
        }
        seen += 1;
        for (k, v) in labels {
            let values = allowed
                .get(k.as_str())
                .unwrap_or_else(|| panic!("label {k} on {name}"));
            assert!(values.contains(v.as_str()), "{name}: {k}={v:?}");
        }
    }
    assert!(seen > 3, "{r:#?}");
    // Every request was counted once by the verify layer.
    assert_eq!(r.total(VERIFY), 40, "{r:#?}");
    assert!(r.total(metric_names::DIAGNOSED_FAILURES) > 0, "{r:#?}");
}

/// A store whose backend is down: every call fails.
#[derive(Debug)]
struct DownStore;

impl IdempotencyStore for DownStore {
    fn begin<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, Begin> {
        Box::pin(async { Err(IdempotencyStoreError::new("connection refused")) })
    }
    fn complete<'a>(&'a self, _: &'a str, _: LeaseToken, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(IdempotencyStoreError::new("connection refused")) })
    }
    fn release<'a>(&'a self, _: &'a str, _: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(IdempotencyStoreError::new("connection refused")) })
    }
}

async fn serve_router(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn in_flight_conflicts_and_an_unavailable_store_are_counted() {
    let _turn = TURN.lock().await;
    Readings::take();
    let secrets = SecretSet::single(SECRET).unwrap();
    let verify = || VerifyLayer::new(secrets.clone()).clock(webhook_guard::FixedClock::at(NOW));

    // The first delivery holds the handler until the second was answered.
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let slow = Router::new()
        .route(
            "/hooks",
            post(move || {
                let (e, r) = (e.clone(), r.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "ok"
                }
            }),
        )
        .layer(IdempotencyLayer::new(MokaStore::default()))
        .layer(verify());
    let addr = serve_router(slow).await;
    let body = b"{}";
    let h = signed(&secrets, "evt_slow", NOW, body);
    let first = tokio::spawn(post_to(addr, "/hooks", h.clone(), body));
    entered.notified().await;
    assert_eq!(post_to(addr, "/hooks", h, body).await, StatusCode::CONFLICT);
    release.notify_one();
    assert_eq!(first.await.unwrap(), StatusCode::OK);

    // A store that is down: fail-closed answers 503, fail-open processes.
    for (mode, status) in [
        (FailMode::Closed, StatusCode::SERVICE_UNAVAILABLE),
        (FailMode::Open, StatusCode::OK),
    ] {
        let app = Router::new()
            .route("/hooks", post(|| async { "ok" }))
            .layer(IdempotencyLayer::new(DownStore).fail_mode(mode))
            .layer(verify());
        let addr = serve_router(app).await;
        let h = signed(&secrets, "evt_down", NOW, body);
        assert_eq!(post_to(addr, "/hooks", h, body).await, status);
    }

    let r = Readings::take();
    let dedup = |outcome| r.counter(IDEMPOTENCY, &[("scheme", "native"), ("outcome", outcome)]);
    assert_eq!(dedup("new"), 1, "{r:#?}");
    assert_eq!(dedup("in-flight"), 1, "{r:#?}");
    assert_eq!(dedup("store-unavailable"), 1, "{r:#?}");
    assert_eq!(dedup("unprotected"), 1, "{r:#?}");
    assert_eq!(r.total(IDEMPOTENCY), 4, "{r:#?}");
}
