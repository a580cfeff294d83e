//! What `VerifyLayer` logs: one event per rejection naming its kind, one per
//! verified request, and never a secret or an expected signature.
//!
//! This file holds a single test on purpose: tracing caches per call site
//! whether anyone listens, and a test running on another thread can make that
//! cache miss a subscriber installed with `set_default`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod log_capture;
use log_capture::LogBuffer;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use tower::{Layer, ServiceExt, service_fn};
use webhook_guard::scheme::NATIVE_SIGNATURE_HEADER;
use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "log-test-secret-c07e";
const BODY: &[u8] = br#"{"event":"kpi.alert"}"#;

fn signed_headers(id: &str, ts: i64) -> HeaderMap {
    let secrets = SecretSet::single(SECRET).unwrap();
    Scheme::native()
        .sign(&secrets, &Message::new(id, ts, BODY))
        .unwrap()
}

fn expected_hex(id: &str, ts: i64) -> String {
    signed_headers(id, ts)[NATIVE_SIGNATURE_HEADER]
        .to_str()
        .unwrap()[7..]
        .to_owned()
}

/// The length of the longest run of hex digits in `text`.
fn longest_hex_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "current_thread")]
async fn log_events_never_contain_a_secret_or_the_expected_signature() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut forbidden = vec![SECRET.to_owned(), hex::encode(SECRET)];
    // A forged request, a malformed one, a stale one, an oversized one and a
    // good one.
    let mut forged = signed_headers("evt_a", NOW);
    forbidden.push(expected_hex("evt_a", NOW));
    forged.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&format!("sha256={}", "cd".repeat(32))).unwrap(),
    );
    // The malformed request carries the first 60 hex digits of its expected
    // signature; the logs must not echo even part of it.
    let mut malformed = signed_headers("evt_b", NOW);
    forbidden.push(expected_hex("evt_b", NOW));
    let short = format!("sha256={}", &expected_hex("evt_b", NOW)[..60]);
    malformed.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&short).unwrap(),
    );
    let stale = signed_headers("evt_c", NOW - 1000);
    forbidden.push(expected_hex("evt_c", NOW - 1000));
    let mut oversized = signed_headers("evt_d", NOW);
    oversized.insert(header::CONTENT_LENGTH, HeaderValue::from(1 << 30));
    let good = signed_headers("evt_e", NOW);
    forbidden.push(expected_hex("evt_e", NOW));

    let layer = VerifyLayer::new(SecretSet::single(SECRET).unwrap()).clock(FixedClock::at(NOW));
    let mut statuses = Vec::new();
    for headers in [forged, malformed, stale, oversized, good] {
        let mut req = Request::post("/webhooks").body(Body::from(BODY)).unwrap();
        req.headers_mut().extend(headers);
        let svc = layer.layer(service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let res = svc.oneshot(req).await.unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 413, 200]);

    let text = logs.take();
    for kind in [
        "kind=invalid-signature",
        "kind=malformed-header",
        "kind=timestamp-too-old",
        "kind=payload-too-large",
    ] {
        assert!(text.contains(kind), "no `{kind}` event in:\n{text}");
    }
    assert_eq!(text.matches("webhook rejected").count(), 4, "{text}");
    assert!(text.contains("webhook verified"), "{text}");
    assert!(text.contains("id=evt_e"), "{text}");
    for needle in &forbidden {
        assert!(
            !text.contains(needle.as_str()),
            "logs leak {needle}:\n{text}"
        );
    }
    assert!(
        longest_hex_run(&text) < 32,
        "logs hold signature-sized hex:\n{text}"
    );
}
