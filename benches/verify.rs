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

/// Runs the group with the settings given on the command line.
fn benches() {
    #[cfg(unix)]
    let criterion = Criterion::default().with_measurement(cpu_time::ThreadCpuTime);
    #[cfg(not(unix))]
    let criterion = Criterion::default();
    verify(&mut criterion.configure_from_args());
}

/// CPU time of the benchmarking thread, for criterion.
#[cfg(unix)]
mod cpu_time {
    use std::time::Duration;

    use criterion::Throughput;
    use criterion::measurement::{Measurement, ValueFormatter};
    use rustix::time::{ClockId, clock_gettime};

    /// Measures the CPU time the current thread consumed.
    pub(super) struct ThreadCpuTime;

    fn now() -> Duration {
        let t = clock_gettime(ClockId::ThreadCPUTime);
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
        Duration::new(secs, nanos)
    }

    impl Measurement for ThreadCpuTime {
        type Intermediate = Duration;
        type Value = Duration;

        fn start(&self) -> Duration {
            now()
        }
        fn end(&self, start: Duration) -> Duration {
            now().saturating_sub(start)
        }
        fn add(&self, a: &Duration, b: &Duration) -> Duration {
            *a + *b
        }
        fn zero(&self) -> Duration {
            Duration::ZERO
        }
        fn to_f64(&self, value: &Duration) -> f64 {
            value.as_nanos() as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            &Nanoseconds
        }
    }

    /// Formats nanoseconds as criterion's wall-time formatter does.
    struct Nanoseconds;

    impl ValueFormatter for Nanoseconds {
        fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
            let (factor, unit) = if typical < 1e3 {
                (1.0, "ns")
            } else if typical < 1e6 {
                (1e-3, "µs")
            } else if typical < 1e9 {
                (1e-6, "ms")
            } else {
                (1e-9, "s")
            };
            values.iter_mut().for_each(|v| *v *= factor);
            unit
        }

        fn scale_throughputs(
            &self,
            typical: f64,
            throughput: &Throughput,
            values: &mut [f64],
        ) -> &'static str {
            let (per_iteration, base, units) = match *throughput {
                Throughput::Bytes(n) => (n, 1024.0, ["  B/s", "KiB/s", "MiB/s", "GiB/s"]),
                Throughput::BytesDecimal(n) => (n, 1000.0, ["  B/s", "KB/s", "MB/s", "GB/s"]),
                Throughput::Elements(n) => {
                    (n, 1000.0, [" elem/s", "Kelem/s", "Melem/s", "Gelem/s"])
                }
            };
            let per_second = |nanos: f64| per_iteration as f64 * (1e9 / nanos);
            let typical = per_second(typical);
            let mut scale = 1.0;
            let mut unit = units[0];
            for next in &units[1..] {
                if typical < scale * base {
                    break;
                }
                scale *= base;
                unit = next;
            }
            values.iter_mut().for_each(|v| *v = per_second(*v) / scale);
            unit
        }

        fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
            "ns"
        }
    }
}

criterion_main!(benches);
