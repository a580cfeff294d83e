//! What verification costs next to the compute limit.
//!
//! For each body size, one group holds:
//!
//! - `hmac_sha256_raw`: HMAC-SHA256 over the body with a precomputed key, the
//!   least work any verifier must do;
//! - `verify_signature`: [`Scheme::verify_signature`] alone (headers parsed,
//!   HMAC, constant-time comparison), to split the cost below;
//! - `verifier`: [`Verifier::verify`] in native signed mode: the above plus the
//!   replay window on a fixed clock and the `Verified` value;
//! - `verify_layer`: the same through [`VerifyLayer`] and `oneshot` with a
//!   `Full<Bytes>` body: limit check, buffering, verification and the call to
//!   an inner service that answers 200. The request is built outside the
//!   timed part, as the HTTP server builds it anyway; dropping it is inside.
//!
//! A second group, `verify_metrics`, runs `verify_layer` twice in the same
//! run: `no_recorder`, where the layer's metrics go to the facade's no-op
//! recorder, and `recorder`, with a recorder that keeps every counter, gauge
//! and histogram in a `metrics-util` registry of atomics, as the Prometheus
//! exporter does. Their ratio is what metrics cost on the hot path.
//!
//! ```text
//! cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Everything measured is synchronous work on one thread (the layer's future
//! completes in one poll), so on Unix the clock is the thread's CPU time
//! rather than wall time: on a busy machine, time spent waiting for a core
//! would otherwise land in whichever contender happened to be running and
//! skew the ratios. On an idle machine the two agree.

use std::convert::Infallible;
use std::hint::black_box;

use axum::body::Body;
use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use futures_util::FutureExt as _;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use sha2::Sha256;
use tower::{Layer as _, ServiceExt as _, service_fn};
use webhook_guard::{FixedClock, Message, ReplayWindow, Scheme, SecretSet, Verifier, VerifyLayer};

const SECRET: &str = "bench-secret-0123456789abcdef";
const NOW: i64 = 1_700_000_000;
const SIZES: [usize; 4] = [256, 1024, 16 * 1024, 1024 * 1024];

/// A JSON body of exactly `size` bytes.
fn body_of(size: usize) -> Bytes {
    let head = br#"{"event":"ingestion.completed","data":""#;
    let tail = br#""}"#;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    body.resize(size - tail.len(), b'x');
    body.extend_from_slice(tail);
    Bytes::from(body)
}

fn verify<M: Measurement>(c: &mut Criterion<M>) {
    let secrets = SecretSet::single(SECRET).expect("secret");
    let raw_key = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    let verifier = Verifier::new(Scheme::native(), secrets.clone())
        .replay_window(ReplayWindow::new().clock(FixedClock::at(NOW)));
    let layer = VerifyLayer::new(secrets.clone())
        .clock(FixedClock::at(NOW))
        // Above the largest body, so every size takes the accepting path.
        .body_limit(2 * 1024 * 1024);
    let service = layer.layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));

    let native = Scheme::native();
    let mut group = c.benchmark_group("verify_native");
    for size in SIZES {
        let body = body_of(size);
        let headers = native
            .sign(&secrets, &Message::new("evt_bench_0001", NOW, &body))
            .expect("sign");
        let request = || {
            let mut req = Request::post("/webhooks")
                .header(header::CONTENT_LENGTH, body.len())
                .body(Full::new(body.clone()))
                .expect("request");
            req.headers_mut().extend(headers.clone());
            req
        };

        // Every contender must accept the request, or the numbers mean nothing.
        assert!(
            native
                .verify_signature(&secrets, &headers, &body, NOW)
                .is_ok()
        );
        assert!(verifier.verify(&headers, body.clone()).is_ok());
        let status = service
            .clone()
            .oneshot(request())
            .now_or_never()
            .expect("completes without waiting")
            .map(|res| res.status());
        assert_eq!(status, Ok(StatusCode::OK));

        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("hmac_sha256_raw", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = raw_key.clone();
                    mac.update(black_box(body));
                    mac.finalize().into_bytes()
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("verify_signature", size),
            &body,
            |b, body| {
                b.iter(|| {
                    native.verify_signature(&secrets, black_box(&headers), black_box(body), NOW)
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("verifier", size), &body, |b, body| {
            b.iter(|| verifier.verify(black_box(&headers), black_box(body.clone())));
        });
        group.bench_function(BenchmarkId::new("verify_layer", size), |b| {
            b.iter_batched(
                request,
                |req| service.clone().oneshot(req).now_or_never(),
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// A recorder that keeps its metrics in a registry of atomics, as
/// `metrics-exporter-prometheus` does (without the exposition).
struct RegistryRecorder(Registry<Key, AtomicStorage>);

impl Recorder for RegistryRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// The layer with and without a recorder, in one run.
fn verify_metrics<M: Measurement>(c: &mut Criterion<M>) {
    let secrets = SecretSet::single(SECRET).expect("secret");
    let layer = VerifyLayer::new(secrets.clone()).clock(FixedClock::at(NOW));
    let service = layer.layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let recorder = RegistryRecorder(Registry::atomic());
    let mut group = c.benchmark_group("verify_metrics");
    for size in [256, 16 * 1024] {
        let body = body_of(size);
        let headers = Scheme::native()
            .sign(&secrets, &Message::new("evt_bench_0001", NOW, &body))
            .expect("sign");
        let request = || {
            let mut req = Request::post("/webhooks")
                .header(header::CONTENT_LENGTH, body.len())
                .body(Full::new(body.clone()))
                .expect("request");
            req.headers_mut().extend(headers.clone());
            req
        };
        let call = |req| service.clone().oneshot(req).now_or_never();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("no_recorder", size), |b| {
            b.iter_batched(request, call, criterion::BatchSize::SmallInput);
        });
        // The layer's future completes in one poll on this thread, so a
        // thread-local recorder sees everything it records.
        let guard = metrics::set_default_local_recorder(&recorder);
        group.bench_function(BenchmarkId::new("recorder", size), |b| {
            b.iter_batched(request, call, criterion::BatchSize::SmallInput);
        });
        drop(guard);
    }
    group.finish();
    // Every request was counted, or the numbers mean nothing.
    let accepted = recorder.0.get_counter_handles();
    assert!(
        accepted
            .values()
            .any(|c| c.load(std::sync::atomic::Ordering::Relaxed) > 0)
    );
}

/// Runs the groups with the settings given on the command line.
fn benches() {
    #[cfg(unix)]
    let criterion = Criterion::default().with_measurement(cpu_time::ThreadCpuTime);
    #[cfg(not(unix))]
    let criterion = Criterion::default();
    let mut criterion = criterion.configure_from_args();
    verify(&mut criterion);
    verify_metrics(&mut criterion);
}

/// CPU time of the benchmarking thread, for criterion.
#[cfg(unix)]
#[path = "support/cpu_time.rs"]
mod cpu_time;

criterion_main!(benches);
