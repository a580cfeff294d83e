//! Standard Webhooks verification, side by side in one group: this crate
//! against the `standardwebhooks` and `svix` crates and a raw HMAC-SHA256 over
//! the same signed content, for 1 KiB and 16 KiB bodies; and the cost of one
//! `v1a` (ed25519) verification, and of a request made up to multiply the
//! `v1a` checks.
//!
//! Run: `cargo bench --bench schemes --all-features -- --warm-up-time 1 --measurement-time 3`
//!
//! Every contender is synchronous work on one thread, so on Unix the clock is
//! the thread's CPU time (as in `benches/verify.rs`): on the shared machine,
//! time spent waiting for a core would otherwise land in whichever contender
//! happened to be running and skew the ratios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use webhook_guard::{Message, ReplayWindow, Scheme, Secret, SecretSet, Verifier};

/// The Standard Webhooks specification's example secret and id.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JSON body of exactly `len` bytes shaped like the specification's example
/// (the libraries only sign UTF-8).
fn body(len: usize) -> Bytes {
    let head = br#"{"test": 2432232314, "pad": ""#;
    let tail = br#""}"#;
    let mut b = head.to_vec();
    b.resize(len - tail.len(), b'x');
    b.extend_from_slice(tail);
    assert_eq!(b.len(), len);
    Bytes::from(b)
}

fn secrets() -> SecretSet {
    SecretSet::single(Secret::from_whsec(WHSEC).unwrap()).unwrap()
}

/// Headers signed now, checked once by every contender before timing.
fn signed_headers(body: &[u8]) -> HeaderMap {
    let headers = Scheme::standard()
        .sign(&secrets(), &Message::new(ID, now(), body))
        .unwrap();
    let standard = standardwebhooks::Webhook::new(WHSEC).unwrap();
    standard.verify(body, &headers).expect("standardwebhooks");
    let svix = svix::webhooks::Webhook::new(WHSEC).unwrap();
    svix.verify(body, &headers).expect("svix");
    headers
}

fn standard_verify<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("standard_verify");
    let key = Secret::from_whsec(WHSEC).unwrap().expose_bytes().to_vec();
    for len in [1024, 16 * 1024] {
        let body = body(len);
        group.throughput(Throughput::Bytes(len as u64));

        group.bench_with_input(
            BenchmarkId::new("webhook-guard Verifier", len),
            &body,
            |b, body| {
                let headers = signed_headers(body);
                let verifier = Verifier::new(Scheme::standard(), secrets());
                verifier.verify(&headers, body.clone()).expect("ours");
                b.iter(|| {
                    black_box(
                        verifier
                            .verify(black_box(&headers), black_box(body.clone()))
                            .expect("verifies"),
                    )
                });
            },
        );

        group.bench_with_input(
            BenchmarkId::new("webhook-guard Scheme+ReplayWindow", len),
            &body,
            |b, body| {
                let headers = signed_headers(body);
                let (scheme, secrets, window) =
                    (Scheme::standard(), secrets(), ReplayWindow::new());
                b.iter(|| {
                    let now = window.now_unix();
                    let matched = scheme
                        .verify_signature(&secrets, black_box(&headers), black_box(body), now)
                        .expect("ours");
                    window
                        .check_at(matched.timestamp().expect("signed"), now)
                        .expect("fresh");
                    black_box(matched)
                });
            },
        );

        group.bench_with_input(
            BenchmarkId::new("standardwebhooks", len),
            &body,
            |b, body| {
                let headers = signed_headers(body);
                let wh = standardwebhooks::Webhook::new(WHSEC).unwrap();
                b.iter(|| {
                    wh.verify(black_box(body), black_box(&headers))
                        .expect("verifies")
                });
            },
        );

        group.bench_with_input(BenchmarkId::new("svix", len), &body, |b, body| {
            let headers = signed_headers(body);
            let wh = svix::webhooks::Webhook::new(WHSEC).unwrap();
            b.iter(|| {
                wh.verify(black_box(body), black_box(&headers))
                    .expect("verifies")
            });
        });

        // The floor: one HMAC-SHA256 over `{id}.{ts}.{body}`, keyed per call
        // as the libraries do, with no header parsing and no comparison.
        group.bench_with_input(
            BenchmarkId::new("raw HMAC-SHA256", len),
            &body,
            |b, body| {
                let ts = now().to_string();
                b.iter(|| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&key)).unwrap();
                    mac.update(ID.as_bytes());
                    mac.update(b".");
                    mac.update(ts.as_bytes());
                    mac.update(b".");
                    mac.update(black_box(body));
                    black_box(mac.finalize().into_bytes())
                });
            },
        );
    }
    group.finish();
}

#[cfg(feature = "ed25519")]
fn standard_v1a_verify<M: Measurement>(c: &mut Criterion<M>) {
    use webhook_guard::scheme::{Ed25519SigningKey, SignatureAlgorithm};

    let mut group = c.benchmark_group("standard_v1a_verify");
    let key = Ed25519SigningKey::from_seed(&[7; 32]);
    let public = key.public_key();
    // No HMAC secret is active, so the header carries the `v1a` signature alone.
    let no_hmac = SecretSet::single(Secret::from("unused").expires_at(1)).unwrap();
    for len in [1024, 16 * 1024] {
        let body = body(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(
            BenchmarkId::new("webhook-guard v1a", len),
            &body,
            |b, body| {
                let headers = Scheme::standard()
                    .with_signing_key(key.clone())
                    .sign(&no_hmac, &Message::new(ID, now(), body))
                    .unwrap();
                let verifier = Verifier::new(
                    Scheme::standard().with_public_keys([public.clone()]),
                    no_hmac.clone(),
                );
                let verified = verifier.verify(&headers, body.clone()).expect("v1a");
                assert_eq!(verified.algorithm(), SignatureAlgorithm::Ed25519);
                b.iter(|| {
                    black_box(
                        verifier
                            .verify(black_box(&headers), black_box(body.clone()))
                            .expect("verifies"),
                    )
                });
            },
        );
    }
    group.finish();
}

/// The most a made-up request can make a receiver with two public keys do:
/// a 1 MiB body with 16 `v1a` signatures (refused before any check, as 16
/// times 2 checks exceed `MAX_ED25519_CHECKS`), next to a genuine rotation
/// (2 signatures, 2 keys, the matching one checked last).
#[cfg(feature = "ed25519")]
fn standard_v1a_flood<M: Measurement>(c: &mut Criterion<M>) {
    use webhook_guard::scheme::Ed25519SigningKey;

    let mut group = c.benchmark_group("standard_v1a_1MiB_2_keys");
    let [old, new, stranger] = [1u8, 2, 3].map(|i| Ed25519SigningKey::from_seed(&[i; 32]));
    let no_hmac = SecretSet::single(Secret::from("unused").expires_at(1)).unwrap();
    let body = body(1024 * 1024);
    let ts = now();
    let v1a = |key: &Ed25519SigningKey| {
        let signed = Scheme::standard()
            .with_signing_key(key.clone())
            .sign(&no_hmac, &Message::new(ID, ts, &body))
            .unwrap();
        signed["webhook-signature"].to_str().unwrap().to_owned()
    };
    let (genuine, foreign) = (v1a(&new), v1a(&stranger));
    let verifier = Verifier::new(
        Scheme::standard().with_public_keys([old.public_key(), new.public_key()]),
        no_hmac.clone(),
    );
    let mut headers = Scheme::standard()
        .with_signing_key(new.clone())
        .sign(&no_hmac, &Message::new(ID, ts, &body))
        .unwrap();
    for (name, signatures) in [
        ("2 signatures", vec![foreign.clone(), genuine.clone()]),
        ("16 signatures", vec![foreign.clone(); 16]),
    ] {
        headers.insert("webhook-signature", signatures.join(" ").parse().unwrap());
        let headers = headers.clone();
        group.bench_function(name, |b| {
            b.iter(|| black_box(verifier.verify(black_box(&headers), black_box(body.clone()))))
        });
    }
    group.finish();
}

#[cfg(not(feature = "ed25519"))]
fn standard_v1a_verify<M: Measurement>(_: &mut Criterion<M>) {}

#[cfg(not(feature = "ed25519"))]
fn standard_v1a_flood<M: Measurement>(_: &mut Criterion<M>) {}

/// Runs both groups with the settings given on the command line.
fn benches() {
    #[cfg(unix)]
    let criterion = Criterion::default().with_measurement(cpu_time::ThreadCpuTime);
    #[cfg(not(unix))]
    let criterion = Criterion::default();
    let mut criterion = criterion.configure_from_args();
    standard_verify(&mut criterion);
    standard_v1a_verify(&mut criterion);
    standard_v1a_flood(&mut criterion);
}

/// CPU time of the benchmarking thread, for criterion.
#[cfg(unix)]
#[path = "support/cpu_time.rs"]
mod cpu_time;

criterion_main!(benches);
