//! What a diagnosis costs next to a plain signature check, on a 1 KiB JSON
//! body: a valid request, a body with a trailing newline added (found by the
//! first change tried), and a wrong secret (every change, every pair of
//! changes and every secret reading tried before giving up).
//!
//! Then the worst inputs a sender can make up, each with a made-up
//! signature: 1 MiB bodies (JSON nested 127 deep, repeated deep arrays, many
//! small keys, one long string, text that is not JSON) and a 64 KiB nested
//! one (the largest body still searched for changes), all of which must stay
//! within milliseconds.
//!
//! Run: `cargo bench --bench diagnose -- --warm-up-time 1 --measurement-time 3`
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

/// JSON nested `depth` deep around a flat array of ones, about `len` bytes.
fn deep_json(depth: usize, len: usize) -> Vec<u8> {
    let mut body = vec![b'['; depth];
    while body.len() + depth + 2 < len {
        body.extend_from_slice(b"1,");
    }
    body.push(b'1');
    body.extend(std::iter::repeat_n(b']', depth));
    body
}

/// `unit` repeated to about `len` bytes inside `open` and `close`.
fn repeated(open: &str, unit: &str, last: &str, close: &str, len: usize) -> Vec<u8> {
    let mut body = open.as_bytes().to_vec();
    while body.len() + unit.len() + last.len() + close.len() < len {
        body.extend_from_slice(unit.as_bytes());
    }
    body.extend_from_slice(last.as_bytes());
    body.extend_from_slice(close.as_bytes());
    body
}

fn adversarial(c: &mut Criterion) {
    const MIB: usize = 1024 * 1024;
    let scheme = Scheme::native();
    let secrets = SecretSet::single("bench-secret").unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-webhook-id", "evt_1".parse().unwrap());
    headers.insert("x-webhook-timestamp", NOW.into());
    let fake = format!("sha256={}", "ab".repeat(32));
    headers.insert("x-webhook-signature", fake.parse().unwrap());
    let deep_arrays = format!("{}{},", "[".repeat(125), "]".repeat(125));
    let lines: String = (0..64)
        .map(|i| format!("line {i} of some text\n"))
        .collect();
    let inputs: [(&str, Vec<u8>); 6] = [
        ("json_nested_127_1MiB", deep_json(126, MIB)),
        (
            "json_deep_arrays_1MiB",
            repeated("[", &deep_arrays, "[]", "]", MIB),
        ),
        (
            "json_small_keys_1MiB",
            repeated("{", r#""k":1,"#, r#""k":1"#, "}", MIB),
        ),
        (
            "json_long_string_1MiB",
            repeated(r#"{"s":""#, "x", "", r#""}"#, MIB),
        ),
        ("text_1MiB", repeated("", &lines, "", "", MIB)),
        ("json_nested_127_64KiB", deep_json(126, 64 * 1024)),
    ];
    let mut group = c.benchmark_group("diagnose_adversarial");
    group.sample_size(20);
    for (name, body) in &inputs {
        let d = diagnose(&scheme, &secrets, &headers, body, NOW);
        assert!(!d.is_verified());
        group.bench_function(*name, |b| {
            b.iter(|| diagnose(&scheme, &secrets, black_box(&headers), black_box(body), NOW))
        });
    }
    group.finish();
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

criterion_group!(benches, bench, adversarial);
criterion_main!(benches);
