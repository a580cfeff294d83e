//! Extraction of a 1 KiB `ingestion.completed`: typed `Webhook<Event>` against
//! `axum::Json<serde_json::Value>` on the same bytes.
//!
//! `cargo bench --bench extract -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use axum::Json;
use axum::body::Body;
use axum::extract::FromRequest;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use http::{Request, header};
use serde_json::Value;
use webhook_guard::event::Event;
use webhook_guard::extract::Webhook;
use webhook_guard::{FixedClock, Message, ReplayWindow, Scheme, SecretSet, Verifier};

/// A realistic `ingestion.completed` of about 1 KiB, in the platform's field
/// order (`event` first): the catalogue fields, optional ones, and fields
/// this version does not know (ignored).
fn body() -> Bytes {
    let columns: Vec<String> = (0..24).map(|i| format!("\"column_{i:02}\"")).collect();
    let build = |note: &str| {
        format!(
            r#"{{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{{"jobId":"job_01JHBX3Q5T9M2N7K4W8R6Y1ZPC","table":"sales_data","rowsIngested":15234,"duration":3200,"rowsRejected":12,"source":"s3://acme-data-lake/exports/2025/01/15/sales_data.csv.gz","bytesIngested":73400320,"columns":[{}],"labels":{{"team":"revenue","pipeline":"nightly","region":"eu-west-1"}},"note":"{note}"}}}}"#,
            columns.join(",")
        )
    };
    let base = build("").len();
    let bytes = build(&"x".repeat(1024usize.saturating_sub(base))).into_bytes();
    assert_eq!(bytes.len(), 1024);
    Bytes::from(bytes)
}

fn bench(c: &mut Criterion) {
    let body = body();
    // Sanity: both paths accept these bytes and the typed one sees the variant.
    assert!(matches!(
        Webhook::<Event>::from_bytes(&body).unwrap().0,
        Event::IngestionCompleted(_)
    ));
    assert!(Json::<Value>::from_bytes(&body).is_ok());

    let mut group = c.benchmark_group("parse_1k");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(BenchmarkId::new("Webhook<Event>", body.len()), |b| {
        b.iter(|| Webhook::<Event>::from_bytes(black_box(&body)).unwrap())
    });
    group.bench_function(BenchmarkId::new("Json<Value>", body.len()), |b| {
        b.iter(|| Json::<Value>::from_bytes(black_box(&body)).unwrap())
    });
    // The slow path: `data` before `event` (as sorted-key serializers write
    // it) is buffered as a `Value` first.
    let data_first =
        Bytes::from(serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap());
    assert!(data_first.starts_with(b"{\"data\""));
    group.bench_function(
        BenchmarkId::new("Webhook<Event> data first", body.len()),
        |b| b.iter(|| Webhook::<Event>::from_bytes(black_box(&data_first)).unwrap()),
    );
    group.finish();

    // Through `FromRequest`, as a handler gets them: the typed extractor reads
    // the bytes VerifyLayer left in the extensions, `Json` reads the body.
    let secrets = SecretSet::single("bench-secret").unwrap();
    let headers = Scheme::native()
        .sign(&secrets, &Message::new("evt_1", 1_700_000_000, &body))
        .unwrap();
    let verified = Verifier::new(Scheme::native(), secrets)
        .replay_window(ReplayWindow::new().clock(FixedClock::at(1_700_000_000)))
        .verify(&headers, body.clone())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("extract_1k");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(BenchmarkId::new("Webhook<Event>", body.len()), |b| {
        b.iter(|| {
            let mut req = Request::post("/").body(Body::from(body.clone())).unwrap();
            req.extensions_mut().insert(verified.clone());
            rt.block_on(Webhook::<Event>::from_request(req, &()))
                .unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("Json<Value>", body.len()), |b| {
        b.iter(|| {
            let mut req = Request::post("/").body(Body::from(body.clone())).unwrap();
            req.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            rt.block_on(Json::<Value>::from_request(req, &())).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
