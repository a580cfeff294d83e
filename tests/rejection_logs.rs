//! What `VerifyLayer` logs: one `debug` event per rejection naming its kind,
//! a rate-limited `warn` summary, one event per verified request, and never a
//! secret or an expected signature.
//!
//! This file holds a single test on purpose: tracing caches per call site
//! whether anyone listens, and a test running on another thread can make that
//! cache miss a subscriber installed with `set_default`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod log_capture;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use tower::{Layer, ServiceExt, service_fn};
use webhook_guard::scheme::NATIVE_SIGNATURE_HEADER;
use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};

use log_capture::LogBuffer;

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "log-test-secret-c07e-0123456789";
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

/// Sends `headers` with `BODY` through `layer`; returns the status.
async fn send(layer: &VerifyLayer, headers: HeaderMap) -> u16 {
    let mut req = Request::post("/webhooks").body(Body::from(BODY)).unwrap();
    req.headers_mut().extend(headers);
    let svc = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    }));
    svc.oneshot(req).await.unwrap().status().as_u16()
}

/// The captured lines at `level` (`WARN`, `DEBUG`).
fn lines_at<'a>(text: &'a str, level: &str) -> Vec<&'a str> {
    let tag = format!(" {level} ");
    text.lines().filter(|l| l.contains(&tag)).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn log_events_never_contain_a_secret_or_the_expected_signature() {
    let logs = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

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
    for headers in [forged.clone(), malformed, stale, oversized, good] {
        statuses.push(send(&layer, headers).await);
    }
    assert_eq!(statuses, [401, 401, 401, 413, 200]);

    let text = logs.text();
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
    // Each rejection is a debug line; the first one also wrote a summary.
    let debug = lines_at(&text, "DEBUG");
    assert_eq!(
        debug
            .iter()
            .filter(|l| l.contains("webhook rejected"))
            .count(),
        4,
        "{text}"
    );
    assert_eq!(lines_at(&text, "WARN").len(), 1, "{text}");

    flood_gives_a_few_warn_lines_and_a_debug_line_each(&layer, &logs, &forged).await;
    a_due_summary_counts_the_rejections_by_kind(&logs, &forged).await;
}

/// A flood of 1,000 forged requests: one debug line each, naming the kind,
/// and no more than a couple of warn lines (one per 10 s).
async fn flood_gives_a_few_warn_lines_and_a_debug_line_each(
    layer: &VerifyLayer,
    logs: &LogBuffer,
    forged: &HeaderMap,
) {
    logs.clear();
    for _ in 0..1000 {
        assert_eq!(send(layer, forged.clone()).await, 401);
    }
    let text = logs.text();
    let debug = lines_at(&text, "DEBUG");
    assert_eq!(
        debug
            .iter()
            .filter(|l| l.contains("webhook rejected") && l.contains("kind=invalid-signature"))
            .count(),
        1000
    );
    assert!(
        debug
            .iter()
            .all(|l| l.contains("receiver=\"1 active secret(s)\"")),
        "{}",
        debug[0]
    );
    let warn = lines_at(&text, "WARN");
    assert!(warn.len() <= 2, "{} warn lines: {warn:#?}", warn.len());
}

/// Once the interval has passed, the next rejection writes a summary of all
/// rejections since the last one, by kind.
async fn a_due_summary_counts_the_rejections_by_kind(logs: &LogBuffer, forged: &HeaderMap) {
    logs.clear();
    let layer = VerifyLayer::new(SecretSet::single(SECRET).unwrap())
        .clock(FixedClock::at(NOW))
        .rejection_summary_interval(std::time::Duration::from_millis(1500));
    // The first rejection is summarized at once, the next ones wait.
    for _ in 0..6 {
        send(&layer, forged.clone()).await;
    }
    send(&layer, HeaderMap::new()).await;
    send(&layer, HeaderMap::new()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    send(&layer, forged.clone()).await;
    let text = logs.text();
    let warn = lines_at(&text, "WARN");
    assert_eq!(warn.len(), 2, "{text}");
    assert!(
        warn[0].contains(
            "1 webhook request(s) rejected (the first since start) (by kind: invalid-signature=1)"
        ),
        "{}",
        warn[0]
    );
    assert!(
        warn[1].contains("8 webhook request(s) rejected in the last 1 s (by kind: missing-header=2, invalid-signature=6)"),
        "{}",
        warn[1]
    );
}
