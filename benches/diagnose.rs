//! What a diagnosis costs next to a plain signature check, on a 1 KiB JSON
//! body: a valid request, a body with a trailing newline added (found by the
//! first change tried), and a wrong secret (every change, every pair of
//! changes and every secret reading tried before giving up).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use webhook_guard::diagnose::diagnose;
use webhook_guard::{Message, Scheme, SecretSet};

const NOW: i64 = 1_700_000_000;

fn body() -> Vec<u8> {
    let rows: Vec<String> = (0..32)
        .map(|i| format!(r#"{{"region":"r{i}","rows":{}}}"#, i * 1000))
        .collect();
    format!(
        r#"{{"event":"ingestion.completed","timestamp":"2023-11-14T22:13:20Z","tenantId":"tenant_abc123","data":{{"jobId":"job_1","parts":[{}]}}}}"#,
        rows.join(",")
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let scheme = Scheme::native();
    let secrets = SecretSet::single("bench-secret").unwrap();
    let body = body();
    assert!((900..1200).contains(&body.len()), "{}", body.len());
    let headers = scheme
        .sign(&secrets, &Message::new("evt_1", NOW, &body))
        .unwrap();
    let with_newline = [&body[..], b"\n"].concat();
    let wrong = SecretSet::single("another-secret").unwrap();
    assert!(diagnose(&scheme, &secrets, &headers, &body, NOW).is_verified());

    let mut group = c.benchmark_group("diagnose_1KiB");
    group.bench_function("verify_signature_valid", |b| {
        b.iter(|| scheme.verify_signature(&secrets, black_box(&headers), black_box(&body), NOW))
    });
    group.bench_function("diagnose_valid", |b| {
        b.iter(|| {
            diagnose(
                &scheme,
                &secrets,
                black_box(&headers),
                black_box(&body),
                NOW,
            )
        })
    });
    group.bench_function("diagnose_trailing_newline", |b| {
        b.iter(|| {
            diagnose(
                &scheme,
                &secrets,
                black_box(&headers),
                black_box(&with_newline),
                NOW,
            )
        })
    });
    group.bench_function("diagnose_wrong_secret", |b| {
        b.iter(|| diagnose(&scheme, &wrong, black_box(&headers), black_box(&body), NOW))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
