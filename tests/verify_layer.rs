//! `VerifyLayer` through `tower::ServiceExt::oneshot`: every rejection kind,
//! what the handler receives, and what never leaks.
//!
//! The inner service is a `service_fn` echo handler that counts its calls, so
//! each rejection test also proves that the handler did not run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tower::{Layer, ServiceExt, service_fn};
use webhook_guard::problem::PROBLEM_JSON;
use webhook_guard::scheme::{NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_TIMESTAMP_HEADER};
use webhook_guard::{
    FixedClock, IdSource, Message, Scheme, SchemeName, Secret, SecretSet, SignatureAlgorithm,
    TimestampSource, Verified, VerifyError, VerifyErrorKind, VerifyLayer,
};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "layer-test-secret-3f9a1c";
const BODY: &[u8] = br#"{"event":"ingestion.completed","timestamp":"2023-11-14T22:13:20Z"}"#;

fn secrets() -> SecretSet {
    SecretSet::single(SECRET).unwrap()
}

fn layer() -> VerifyLayer {
    VerifyLayer::new(secrets()).clock(FixedClock::at(NOW))
}

fn body_only_layer(scheme: Scheme) -> VerifyLayer {
    layer().scheme(scheme)
}

/// The headers a sender holding `SECRET` sends.
fn signed_headers(id: &str, ts: i64, body: &[u8]) -> HeaderMap {
    Scheme::native()
        .sign(&secrets(), &Message::new(id, ts, body))
        .unwrap()
}

/// The hex signature the receiver expects for this message: it must never be
/// shown to a client.
fn expected_hex(id: &str, ts: i64, body: &[u8]) -> String {
    let headers = signed_headers(id, ts, body);
    let value = headers[NATIVE_SIGNATURE_HEADER].to_str().unwrap();
    value.strip_prefix("sha256=").unwrap().to_owned()
}

fn request<B>(headers: HeaderMap, body: B) -> Request<B> {
    let mut req = Request::post("/webhooks").body(body).unwrap();
    req.headers_mut().extend(headers);
    req
}

/// One call of the echo handler: the body it read and the `Verified` it found.
type Call = (Bytes, Option<Verified>);

/// What the echo handler saw.
#[derive(Clone, Default)]
struct Handler {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Call>>>,
}

impl Handler {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last(&self) -> Call {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }

    /// An echo service: answers 200 with the body it received.
    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send {
        let this = self.clone();
        service_fn(move |req: Request<Body>| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                let verified = req.extensions().get::<Verified>().cloned();
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                this.seen.lock().unwrap().push((bytes.clone(), verified));
                Ok::<_, Infallible>(Response::new(Body::from(bytes)))
            }
        })
    }
}

/// Sends `req` through `layer` around a fresh echo handler.
async fn send<B>(layer: &VerifyLayer, req: Request<B>) -> (Response<Body>, Handler)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handler = Handler::default();
    let res = layer.layer(handler.service()).oneshot(req).await.unwrap();
    (res, handler)
}

/// Checks everything a rejection must be and returns the error.
///
/// `forbidden` lists strings the response must not contain anywhere (the
/// expected signature); the secret is always forbidden.
async fn assert_rejected(
    res: Response<Body>,
    handler: &Handler,
    kind: VerifyErrorKind,
    forbidden: &[&str],
) -> VerifyError {
    assert_eq!(handler.calls(), 0, "the handler must not run on {kind}");
    assert_eq!(res.status(), kind.status(), "{kind}");
    assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    let err = res
        .extensions()
        .get::<VerifyError>()
        .cloned()
        .expect("the VerifyError is in the response extensions");
    assert_eq!(err.kind(), kind, "{err}");
    let headers = format!("{:?}", res.headers());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    for needle in forbidden.iter().chain([&SECRET]) {
        assert!(
            !text.contains(needle),
            "response body leaks {needle}: {text}"
        );
        assert!(!headers.contains(needle), "response headers leak {needle}");
    }
    // Whatever the case, no signature-sized hex appears: the expected
    // signature of any request is 64 hex digits.
    assert!(longest_hex_run(&text) < 32, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["type"], kind.problem_type());
    assert!(
        kind.problem_type().ends_with(&format!("#variant.{kind:?}")),
        "the type names the kind"
    );
    assert_eq!(json["title"], kind.title());
    assert_eq!(json["status"], kind.status().as_u16());
    assert_eq!(json["detail"], err.detail());
    err
}

/// The length of the longest run of hex digits in `text`.
fn longest_hex_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn longest_hex_run_finds_signatures() {
    let sig = expected_hex("evt_1", NOW, BODY);
    assert_eq!(longest_hex_run(&format!("detail: {sig}.")), 64);
    assert_eq!(longest_hex_run("timestamp is 9223372035154775807 s"), 19);
}

/// A request body that records how often it was polled. Yields the given
/// chunks (or errors) one per poll, and may claim an exact size.
struct RecordingBody {
    chunks: VecDeque<Result<Bytes, io::Error>>,
    polls: Arc<AtomicUsize>,
    exact: Option<u64>,
    /// Once the chunks are out, stay pending (a client that stops sending)
    /// instead of ending.
    stall: bool,
}

impl RecordingBody {
    fn new(chunks: impl IntoIterator<Item = Result<Bytes, io::Error>>) -> (Self, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let body = Self {
            chunks: chunks.into_iter().collect(),
            polls: polls.clone(),
            exact: None,
            stall: false,
        };
        (body, polls)
    }
}

impl http_body::Body for RecordingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        this.polls.fetch_add(1, Ordering::SeqCst);
        match this.chunks.pop_front() {
            None if this.stall => Poll::Pending,
            chunk => Poll::Ready(chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

// ---------------------------------------------------------------------------
// Accepted requests

#[tokio::test]
async fn valid_request_reaches_the_handler_with_the_same_bytes() {
    // Not UTF-8, with every byte value, so nothing can be re-encoded on the way.
    let body: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
    let headers = signed_headers("evt_bytes", NOW - 10, &body);
    let (res, handler) = send(&layer(), request(headers, Body::from(body.clone()))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.calls(), 1);
    let (seen, verified) = handler.last();
    assert_eq!(seen, body);
    let verified = verified.expect("a Verified in the request extensions");
    assert_eq!(verified.id(), "evt_bytes");
    assert_eq!(verified.id_source(), IdSource::SignedHeader);
    assert_eq!(verified.timestamp(), Some(NOW - 10));
    assert_eq!(verified.timestamp_source(), TimestampSource::SignedHeader);
    assert_eq!(verified.scheme(), SchemeName::Native);
    assert_eq!(verified.secret_index(), 0);
    assert_eq!(verified.algorithm(), SignatureAlgorithm::HmacSha256);
    assert_eq!(verified.delivery_id(), None);
    assert_eq!(verified.body(), &body);
    // The echo handler's response passes through unchanged.
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, body);
}

#[tokio::test]
async fn body_in_many_chunks_is_reassembled_exactly() {
    let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let headers = signed_headers("evt_chunks", NOW, &body);
    let chunks = body
        .chunks(97)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    let (stream, _) = RecordingBody::new(chunks);
    let (res, handler) = send(&layer(), request(headers, stream)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.last().0, body);
}

#[tokio::test]
async fn rotation_reports_which_secret_matched() {
    let old = "old-secret-0b7e";
    let new = "new-secret-55d2";
    let sender = SecretSet::single(old).unwrap();
    let headers = Scheme::native()
        .sign(&sender, &Message::new("evt_rot", NOW, BODY))
        .unwrap();

    // The receiver holds the new secret first and the old one second.
    let receiver = SecretSet::new([Secret::from(new), Secret::from(old)]).unwrap();
    let layer = VerifyLayer::new(receiver).clock(FixedClock::at(NOW));
    let (res, handler) = send(&layer, request(headers.clone(), Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.last().1.unwrap().secret_index(), 1);

    // Still active one second before its expiry ...
    let receiver =
        SecretSet::new([Secret::from(new), Secret::from(old).expires_at(NOW + 1)]).unwrap();
    let layer = VerifyLayer::new(receiver).clock(FixedClock::at(NOW));
    let (res, handler) = send(&layer, request(headers.clone(), Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.last().1.unwrap().secret_index(), 1);

    // ... and refused from the expiry instant on.
    let receiver = SecretSet::new([Secret::from(new), Secret::from(old).expires_at(NOW)]).unwrap();
    let layer = VerifyLayer::new(receiver).clock(FixedClock::at(NOW));
    let (res, handler) = send(&layer, request(headers.clone(), Body::from(BODY))).await;
    let sig = headers[NATIVE_SIGNATURE_HEADER].to_str().unwrap();
    let err = assert_rejected(
        res,
        &handler,
        VerifyErrorKind::InvalidSignature,
        &[old, new, &sig[7..]],
    )
    .await;
    assert!(!err.detail().contains("active secret(s)"), "{err}");
    assert_eq!(err.receiver_detail(), Some("1 active secret(s)"), "{err}");
}

/// The status and body `layer` answers `headers` with.
async fn answer(layer: &VerifyLayer, headers: &HeaderMap) -> (StatusCode, Bytes, VerifyError) {
    let (res, _) = send(layer, request(headers.clone(), Body::from(BODY))).await;
    let status = res.status();
    let err = res.extensions().get::<VerifyError>().cloned().unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, body, err)
}

#[tokio::test]
async fn a_bad_signature_is_answered_the_same_whatever_the_receiver_holds() {
    let three = SecretSet::new([
        Secret::from(SECRET),
        Secret::from("second-secret-77"),
        Secret::from("third-secret-88"),
    ])
    .unwrap();
    let mut forged = signed_headers("evt_forged", NOW, BODY);
    forged.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&format!("sha256={}", "ab".repeat(32))).unwrap(),
    );
    let (status, one_body, one_err) = answer(&layer(), &forged).await;
    let three_layer = VerifyLayer::new(three.clone()).clock(FixedClock::at(NOW));
    let (_, three_body, three_err) = answer(&three_layer, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(one_body, three_body, "the answer tells how many secrets");
    let text = String::from_utf8(one_body.to_vec()).unwrap();
    assert!(text.contains("check that the secret"), "{text}");
    // The operator still learns it, from the error (logged at debug).
    assert_eq!(one_err.receiver_detail(), Some("1 active secret(s)"));
    assert_eq!(three_err.receiver_detail(), Some("3 active secret(s)"));

    // Standard Webhooks: a forged `v1` and `v1a` pair, then a lone `v1a`.
    use base64::Engine as _;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    let standard = |set: SecretSet, scheme: Scheme| {
        VerifyLayer::new(set)
            .scheme(scheme)
            .clock(FixedClock::at(NOW))
    };
    #[cfg_attr(not(feature = "ed25519"), allow(unused_mut))]
    let mut layers = vec![
        standard(secrets(), Scheme::standard()),
        standard(three, Scheme::standard()),
    ];
    #[cfg(feature = "ed25519")]
    {
        let key = webhook_guard::Ed25519SigningKey::from_seed(&[9; 32]).public_key();
        layers.push(standard(
            secrets(),
            Scheme::standard().with_public_keys([key]),
        ));
    }
    for signature in [
        format!("v1,{} v1a,{}", b64(32), b64(64)),
        format!("v1a,{}", b64(64)),
    ] {
        let mut headers = Scheme::standard()
            .sign(&secrets(), &Message::new("evt_std", NOW, BODY))
            .unwrap();
        headers.insert(
            webhook_guard::scheme::STANDARD_SIGNATURE_HEADER,
            HeaderValue::from_str(&signature).unwrap(),
        );
        let mut bodies = Vec::new();
        for layer in &layers {
            let (status, body, err) = answer(layer, &headers).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
            assert!(err.receiver_detail().is_some(), "{err}");
            bodies.push(body);
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "{signature}: answers differ: {bodies:?}"
        );
        let text = String::from_utf8(bodies[0].to_vec()).unwrap();
        assert!(!text.contains("public key(s)"), "{text}");
        assert!(!text.contains("no public key"), "{text}");
    }
}

#[tokio::test]
async fn window_edges_are_inclusive() {
    for ts in [NOW - 300, NOW + 300] {
        let headers = signed_headers("evt_edge", ts, BODY);
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        assert_eq!(res.status(), StatusCode::OK, "{ts}");
        assert_eq!(handler.calls(), 1);
    }
}

#[tokio::test]
async fn surrounding_whitespace_in_the_timestamp_is_not_signed() {
    let mut headers = signed_headers("evt_ws", NOW, BODY);
    headers.insert(
        NATIVE_TIMESTAMP_HEADER,
        HeaderValue::from_str(&format!(" {NOW}\t")).unwrap(),
    );
    let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.last().1.unwrap().timestamp(), Some(NOW));
}

// ---------------------------------------------------------------------------
// Missing and duplicated headers

#[tokio::test]
async fn each_missing_header_is_named() {
    let sig = expected_hex("evt_1", NOW, BODY);
    for name in [
        NATIVE_ID_HEADER,
        NATIVE_TIMESTAMP_HEADER,
        NATIVE_SIGNATURE_HEADER,
    ] {
        let mut headers = signed_headers("evt_1", NOW, BODY);
        headers.remove(name);
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::MissingHeader, &[&sig]).await;
        assert!(err.detail().contains(name), "{err}");
    }
}

#[tokio::test]
async fn duplicated_id_or_timestamp_is_malformed() {
    let sig = expected_hex("evt_1", NOW, BODY);
    for (name, extra) in [
        (NATIVE_ID_HEADER, "evt_2".to_owned()),
        (NATIVE_ID_HEADER, "evt_1".to_owned()),
        (NATIVE_TIMESTAMP_HEADER, (NOW + 1).to_string()),
        (NATIVE_TIMESTAMP_HEADER, NOW.to_string()),
    ] {
        let mut headers = signed_headers("evt_1", NOW, BODY);
        headers.append(name, HeaderValue::from_str(&extra).unwrap());
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::MalformedHeader, &[&sig]).await;
        assert!(err.detail().contains(name), "{err}");
        assert!(err.detail().contains("more than once"), "{err}");
    }
}

#[tokio::test]
async fn repeated_signature_headers_are_read_as_one_list() {
    // Several signature lines are several candidate signatures (a sender
    // rotating its key); one of them matching is enough ...
    let mut headers = signed_headers("evt_1", NOW, BODY);
    let wrong = format!("sha256={}", "ab".repeat(32));
    headers.append(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&wrong).unwrap(),
    );
    let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.calls(), 1);

    // ... and none matching is an invalid signature.
    let sig = expected_hex("evt_1", NOW, BODY);
    let mut headers = signed_headers("evt_1", NOW, BODY);
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&wrong).unwrap(),
    );
    headers.append(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&wrong).unwrap(),
    );
    let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::InvalidSignature, &[&sig]).await;
    assert!(err.detail().contains("none of the 2 signature(s)"), "{err}");
}

// ---------------------------------------------------------------------------
// Malformed and wrong signatures

#[tokio::test]
async fn malformed_signatures_are_refused_with_the_reason() {
    let sig = expected_hex("evt_1", NOW, BODY);
    let seventeen = vec![format!("sha256={sig}"); 17].join(",");
    let cases: Vec<(String, &str)> = vec![
        (format!("sha1={sig}"), "must start with `sha256=`"),
        (format!("SHA256={sig}"), "must start with `sha256=`"),
        (sig.clone(), "must start with `sha256=`"),
        (format!("sha256={}", "zz".repeat(32)), "non-hex"),
        (format!("sha256={}", &sig[..63]), "found 63 characters"),
        (format!("sha256={sig}00"), "found 66 characters"),
        ("sha256=".to_owned(), "found 0 characters"),
        (
            format!("sha256={sig},v1={sig}"),
            "must start with `sha256=`",
        ),
        (seventeen, "more than 16 signatures"),
        (" , ".to_owned(), "holds no signature"),
    ];
    for (value, reason) in cases {
        let mut headers = signed_headers("evt_1", NOW, BODY);
        headers.insert(
            NATIVE_SIGNATURE_HEADER,
            HeaderValue::from_str(&value).unwrap(),
        );
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        // The correct signature is in some of these requests; the response
        // still must not echo it.
        let err = assert_rejected(res, &handler, VerifyErrorKind::MalformedHeader, &[&sig]).await;
        assert!(err.detail().contains(reason), "{value}: {err}");
        assert!(err.detail().contains(NATIVE_SIGNATURE_HEADER), "{err}");
    }
}

#[tokio::test]
async fn too_many_signatures_across_repeated_headers_are_malformed() {
    let sig = expected_hex("evt_1", NOW, BODY);
    let nine = vec![format!("sha256={sig}"); 9].join(" ");
    let mut headers = signed_headers("evt_1", NOW, BODY);
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&nine).unwrap(),
    );
    headers.append(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&nine).unwrap(),
    );
    let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::MalformedHeader, &[&sig]).await;
    assert!(err.detail().contains("more than 16"), "{err}");
}

#[tokio::test]
async fn non_ascii_signature_header_is_malformed() {
    let mut headers = signed_headers("evt_1", NOW, BODY);
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_bytes(b"sha256=\xff\xfe").unwrap(),
    );
    let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
    assert_rejected(res, &handler, VerifyErrorKind::MalformedHeader, &[]).await;
}

#[tokio::test]
async fn malformed_ids_are_refused() {
    let long = "a".repeat(257);
    for id in [
        &b""[..],
        b"evt 1",
        b"evt_\xc3\xa9",
        b"evt.1700000000",
        long.as_bytes(),
    ] {
        let mut headers = signed_headers("evt_1", NOW, BODY);
        headers.insert(NATIVE_ID_HEADER, HeaderValue::from_bytes(id).unwrap());
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::MalformedHeader, &[]).await;
        assert!(err.detail().contains(NATIVE_ID_HEADER), "{err}");
    }
}

#[tokio::test]
async fn wrong_secret_tampered_body_and_swapped_id_are_invalid_signatures() {
    let sig = expected_hex("evt_1", NOW, BODY);
    let forged = Scheme::native()
        .sign(
            &SecretSet::single("attacker-guess").unwrap(),
            &Message::new("evt_1", NOW, BODY),
        )
        .unwrap();
    let mut swapped = signed_headers("evt_1", NOW, BODY);
    swapped.insert(NATIVE_ID_HEADER, HeaderValue::from_static("evt_2"));
    let mut tampered = BODY.to_vec();
    tampered[5] ^= 0x01;
    let cases = [
        ("wrong secret", forged, BODY.to_vec()),
        ("swapped id", swapped, BODY.to_vec()),
        (
            "tampered body",
            signed_headers("evt_1", NOW, BODY),
            tampered,
        ),
        ("empty body", signed_headers("evt_1", NOW, BODY), Vec::new()),
    ];
    for (case, headers, body) in cases {
        let (res, handler) = send(&layer(), request(headers, Body::from(body))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::InvalidSignature, &[&sig]).await;
        assert!(
            err.detail().contains("none of the 1 signature(s)"),
            "{case}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------
// Timestamps

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let cases = [
        (
            NOW - 301,
            VerifyErrorKind::TimestampTooOld,
            "301 s in the past; tolerance is 300 s",
        ),
        (
            0,
            VerifyErrorKind::TimestampTooOld,
            "1700000000 s in the past",
        ),
        (
            NOW + 301,
            VerifyErrorKind::TimestampTooNew,
            "301 s in the future; allowed clock skew is 300 s",
        ),
        (
            i64::MAX,
            VerifyErrorKind::TimestampTooNew,
            "9223372035154775807 s in the future",
        ),
        (
            NOW * 1000,
            VerifyErrorKind::TimestampTooNew,
            "looks like milliseconds",
        ),
        (
            NOW * 1_000_000,
            VerifyErrorKind::TimestampTooNew,
            "looks like microseconds",
        ),
    ];
    for (ts, kind, message) in cases {
        // Correctly signed: the signature is authentic, only the time is off.
        let sig = expected_hex("evt_t", ts, BODY);
        let headers = signed_headers("evt_t", ts, BODY);
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        let err = assert_rejected(res, &handler, kind, &[&sig]).await;
        assert!(err.detail().contains(message), "{ts}: {err}");
    }
}

#[tokio::test]
async fn unparsable_timestamps_are_malformed() {
    let cases = [
        ("12345678901234567890", "20-digit number is out of range"),
        ("99999999999999999999999", "23-digit number is out of range"),
        ("-1", "ASCII digits only"),
        ("1700000000.5", "ASCII digits only"),
        ("1.7e9", "ASCII digits only"),
        ("", "empty"),
        ("2023-11-14T22:13:20Z", "ASCII digits only"),
    ];
    for (value, message) in cases {
        let mut headers = signed_headers("evt_1", NOW, BODY);
        headers.insert(
            NATIVE_TIMESTAMP_HEADER,
            HeaderValue::from_str(value).unwrap(),
        );
        let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::MalformedHeader, &[]).await;
        assert!(err.detail().contains(message), "{value:?}: {err}");
        assert!(err.detail().contains(NATIVE_TIMESTAMP_HEADER), "{err}");
    }
}

#[tokio::test]
async fn a_forged_stale_request_is_reported_as_forged() {
    // The signature is checked before the window: a timestamp rejection always
    // means an authentic request.
    let mut headers = signed_headers("evt_1", NOW - 10_000, BODY);
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&format!("sha256={}", "00".repeat(32))).unwrap(),
    );
    let (res, handler) = send(&layer(), request(headers, Body::from(BODY))).await;
    assert_rejected(res, &handler, VerifyErrorKind::InvalidSignature, &[]).await;
}

#[tokio::test]
async fn tolerance_and_skew_are_configurable() {
    let layer = layer()
        .tolerance(std::time::Duration::from_secs(3600))
        .future_skew(std::time::Duration::from_secs(5));
    let headers = signed_headers("evt_1", NOW - 3000, BODY);
    let (res, _) = send(&layer, request(headers, Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = signed_headers("evt_1", NOW + 6, BODY);
    let (res, handler) = send(&layer, request(headers, Body::from(BODY))).await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::TimestampTooNew, &[]).await;
    assert!(err.detail().contains("allowed clock skew is 5 s"), "{err}");
}

// ---------------------------------------------------------------------------
// Body-only mode

fn body_only_headers(body: &[u8]) -> HeaderMap {
    Scheme::native_body_only()
        .sign(&secrets(), &Message::new("unused", NOW, body))
        .unwrap()
}

#[tokio::test]
async fn body_only_checks_the_body_timestamp() {
    let layer = body_only_layer(Scheme::native_body_only());
    // BODY carries "timestamp":"2023-11-14T22:13:20Z", which is NOW.
    let (res, handler) = send(&layer, request(body_only_headers(BODY), Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (seen, verified) = handler.last();
    assert_eq!(seen, BODY);
    let verified = verified.unwrap();
    assert_eq!(verified.scheme(), SchemeName::NativeBodyOnly);
    assert_eq!(verified.timestamp(), Some(NOW));
    assert_eq!(verified.timestamp_source(), TimestampSource::SignedBody);
    assert_eq!(verified.id_source(), IdSource::ContentHash);
    assert_eq!(
        verified.id(),
        format!("sha256:{}", hex::encode(Sha256::digest(BODY)))
    );

    let stale = br#"{"event":"kpi.alert","timestamp":1699999000}"#;
    let (res, handler) = send(
        &layer,
        request(body_only_headers(stale), Body::from(&stale[..])),
    )
    .await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::TimestampTooOld, &[]).await;
    assert!(err.detail().contains("1000 s in the past"), "{err}");

    let future = br#"{"timestamp":9223372036854775807}"#;
    let (res, handler) = send(
        &layer,
        request(body_only_headers(future), Body::from(&future[..])),
    )
    .await;
    assert_rejected(res, &handler, VerifyErrorKind::TimestampTooNew, &[]).await;
}

#[tokio::test]
async fn body_only_without_timestamp_is_refused_unless_allowed() {
    let no_ts = br#"{"event":"kpi.alert","data":{}}"#;
    let sig = Scheme::native_body_only()
        .sign(&secrets(), &Message::new("unused", NOW, no_ts))
        .unwrap()[NATIVE_SIGNATURE_HEADER]
        .to_str()
        .unwrap()[7..]
        .to_owned();
    let strict = body_only_layer(Scheme::native_body_only());
    let (res, handler) = send(
        &strict,
        request(body_only_headers(no_ts), Body::from(&no_ts[..])),
    )
    .await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::MissingTimestamp, &[&sig]).await;
    assert!(err.detail().contains("allow_missing_timestamp"), "{err}");

    let lenient = body_only_layer(Scheme::native_body_only().allow_missing_timestamp());
    let (res, handler) = send(
        &lenient,
        request(body_only_headers(no_ts), Body::from(&no_ts[..])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let verified = handler.last().1.unwrap();
    assert_eq!(verified.timestamp(), None);
    assert_eq!(verified.timestamp_source(), TimestampSource::None);

    // A timestamp that is present is still checked, allowed or not.
    for body in [
        &br#"{"timestamp":"yesterday"}"#[..],
        br#"{"timestamp":1.5}"#,
    ] {
        let (res, handler) =
            send(&lenient, request(body_only_headers(body), Body::from(body))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::MissingTimestamp, &[]).await;
        assert!(err.detail().contains("unusable"), "{err}");
    }
    let stale = br#"{"timestamp":"2020-01-01T00:00:00Z"}"#;
    let (res, handler) = send(
        &lenient,
        request(body_only_headers(stale), Body::from(&stale[..])),
    )
    .await;
    assert_rejected(res, &handler, VerifyErrorKind::TimestampTooOld, &[]).await;
}

#[tokio::test]
async fn body_only_allows_no_timestamp_only_for_a_json_object_without_the_key() {
    let lenient = body_only_layer(Scheme::native_body_only().allow_missing_timestamp());
    // Each of these is signed, and each would, read by some JSON parser,
    // either carry the stale timestamp or be no object at all: none may pass
    // as "no timestamp" and so escape the window.
    for body in [
        // Two `timestamp` keys: parsers disagree on which one wins.
        &br#"{"event":"kpi.alert","timestamp":1000,"timestamp":1000}"#[..],
        br#"{"timestamp":1000,"time\u0073tamp":1000}"#,
        // Trailing bytes after the object.
        br#"{"event":"kpi.alert"} {"timestamp":1000}"#,
        br#"{"event":"kpi.alert"}garbage"#,
        // Not an object, or not JSON at all.
        br#"[{"timestamp":1000}]"#,
        b"[1000]",
        b"1000",
        br#""{\"timestamp\":1000}""#,
        b"event=kpi.alert&timestamp=1000",
        b"",
        br#"{"event":"kpi.alert""#,
        // A key that is present but holds no time.
        br#"{"event":"kpi.alert","timestamp":null}"#,
    ] {
        let (res, handler) =
            send(&lenient, request(body_only_headers(body), Body::from(body))).await;
        let err = assert_rejected(res, &handler, VerifyErrorKind::MissingTimestamp, &[]).await;
        assert!(
            err.detail().contains("unusable"),
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
    }
    // A JSON object without the key (surrounding whitespace allowed) is the
    // one body that may carry no timestamp.
    let no_ts = b" {\"event\":\"kpi.alert\",\"data\":{\"timestamp\":1000}}\n";
    let (res, handler) = send(
        &lenient,
        request(body_only_headers(no_ts), Body::from(&no_ts[..])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.last().1.unwrap().timestamp(), None);
}

#[tokio::test]
async fn body_only_needs_no_id_or_timestamp_header_but_a_valid_signature() {
    let layer = body_only_layer(Scheme::native_body_only());
    let mut tampered = BODY.to_vec();
    tampered[2] ^= 0x20;
    let (res, handler) = send(
        &layer,
        request(body_only_headers(BODY), Body::from(tampered)),
    )
    .await;
    assert_rejected(res, &handler, VerifyErrorKind::InvalidSignature, &[]).await;
    let (res, handler) = send(&layer, request(HeaderMap::new(), Body::from(BODY))).await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::MissingHeader, &[]).await;
    assert!(err.detail().contains(NATIVE_SIGNATURE_HEADER), "{err}");
}

// ---------------------------------------------------------------------------
// Body size and read errors

#[tokio::test]
async fn content_length_over_the_limit_is_refused_before_reading() {
    let body = vec![b'x'; 65];
    let mut headers = signed_headers("evt_big", NOW, &body);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(65));
    let (stream, polls) = RecordingBody::new([Ok(Bytes::from(body))]);
    // Without draining (tested below), nothing reads the refused body later.
    let layer = layer()
        .body_limit(64)
        .drain_rejected_body(0, Duration::ZERO);
    let (res, handler) = send(&layer, request(headers, stream)).await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::PayloadTooLarge, &[]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(polls.load(Ordering::SeqCst), 0, "the body was never polled");
    assert!(err.detail().contains("65 bytes (Content-Length)"), "{err}");
    assert!(err.detail().contains("limit is 64 bytes"), "{err}");
}

#[tokio::test]
async fn body_exactly_at_the_limit_passes() {
    let body = vec![b'x'; 64];
    let mut headers = signed_headers("evt_limit", NOW, &body);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(64));
    let (res, handler) = send(
        &layer().body_limit(64),
        request(headers, Body::from(body.clone())),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handler.last().0, body);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_cut_off() {
    // No Content-Length: ten 16-byte chunks against a 64-byte limit.
    let chunks = (0..10).map(|i| Ok(Bytes::from(vec![b'a' + i; 16])));
    let (stream, polls) = RecordingBody::new(chunks);
    let full: Vec<u8> = (0..10).flat_map(|i| vec![b'a' + i; 16]).collect();
    let headers = signed_headers("evt_stream", NOW, &full);
    let req = request(headers, stream);
    let handler = Handler::default();
    let layer = layer()
        .body_limit(64)
        .drain_rejected_body(0, Duration::ZERO);
    let res = layer.layer(handler.service()).oneshot(req).await.unwrap();
    let err = assert_rejected(res, &handler, VerifyErrorKind::PayloadTooLarge, &[]).await;
    assert!(err.detail().contains("limit of 64 bytes"), "{err}");
    // Reading stopped at the first chunk past the limit.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(polls.load(Ordering::SeqCst) <= 5, "polled {polls:?} times");
}

/// Sends `req` through `layer` with a 64-byte limit, checks the 413, and
/// returns how often the body was polled once the drain had time to run,
/// and whether the body was dropped by then.
async fn polls_after_413(
    layer: VerifyLayer,
    req: Request<RecordingBody>,
    polls: Arc<AtomicUsize>,
) -> (usize, bool) {
    let (res, handler) = send(&layer.body_limit(64), req).await;
    assert_rejected(res, &handler, VerifyErrorKind::PayloadTooLarge, &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    (polls.load(Ordering::SeqCst), Arc::strong_count(&polls) == 1)
}

fn oversized(
    chunks: usize,
    content_length: Option<usize>,
) -> (Request<RecordingBody>, Arc<AtomicUsize>) {
    let (body, polls) = RecordingBody::new((0..chunks).map(|_| Ok(Bytes::from(vec![b'x'; 16]))));
    let mut headers = HeaderMap::new();
    if let Some(len) = content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    (request(headers, body), polls)
}

#[tokio::test]
async fn a_refused_body_is_read_to_its_end_after_the_answer() {
    // Declared too large: answered before reading, then read to the end
    // (ten chunks and the end of the body).
    let (req, polls) = oversized(10, Some(160));
    assert_eq!(polls_after_413(layer(), req, polls).await, (11, true));
    // Found too large while streaming: the same.
    let (req, polls) = oversized(10, None);
    assert_eq!(polls_after_413(layer(), req, polls).await, (11, true));
}

#[tokio::test]
async fn draining_a_refused_body_is_bounded() {
    let capped = || layer().drain_rejected_body(64, Duration::from_secs(5));
    // At most 64 bytes more are read: four chunks past the five that went
    // over the 64-byte limit while streaming.
    let (req, polls) = oversized(100, None);
    assert_eq!(polls_after_413(capped(), req, polls).await, (9, true));
    // A declared length beyond the cap is not read at all.
    let (req, polls) = oversized(100, Some(1600));
    assert_eq!(polls_after_413(capped(), req, polls).await, (0, true));
    // Neither is a body the client waits to be asked for.
    let (mut req, polls) = oversized(10, Some(160));
    req.headers_mut()
        .insert(header::EXPECT, HeaderValue::from_static("100-Continue"));
    assert_eq!(polls_after_413(layer(), req, polls).await, (0, true));
    // Nor anything with draining turned off.
    let off = layer().drain_rejected_body(usize::MAX, Duration::ZERO);
    let (req, polls) = oversized(10, Some(160));
    assert_eq!(polls_after_413(off, req, polls).await, (0, true));
    let off = layer().drain_rejected_body(0, Duration::from_secs(5));
    let (req, polls) = oversized(10, None);
    assert_eq!(polls_after_413(off, req, polls).await, (5, true));
    // A body that stops sending is dropped when the time is up.
    let (mut req, polls) = oversized(1, Some(160));
    req.body_mut().stall = true;
    let slow = layer().drain_rejected_body(1024, Duration::from_millis(100));
    let (polled, dropped) = polls_after_413(slow, req, polls).await;
    assert!(
        polled >= 2 && dropped,
        "polled {polled} times, dropped: {dropped}"
    );
    let (mut req, polls) = oversized(1, Some(160));
    req.body_mut().stall = true;
    let patient = layer().drain_rejected_body(1024, Duration::from_secs(5));
    assert_eq!(polls_after_413(patient, req, polls).await, (2, false));
}

#[tokio::test]
async fn content_length_that_understates_the_body_is_still_limited() {
    let body = vec![b'y'; 200];
    let mut headers = signed_headers("evt_liar", NOW, &body);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(10));
    let (res, handler) = send(&layer().body_limit(64), request(headers, Body::from(body))).await;
    assert_rejected(res, &handler, VerifyErrorKind::PayloadTooLarge, &[]).await;
}

#[tokio::test]
async fn body_read_error_is_a_400() {
    let chunks = [
        Ok(Bytes::from_static(b"{\"event\":")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer went away",
        )),
    ];
    let (stream, _) = RecordingBody::new(chunks);
    let headers = signed_headers("evt_err", NOW, BODY);
    let (res, handler) = send(&layer(), request(headers, stream)).await;
    let err = assert_rejected(res, &handler, VerifyErrorKind::BodyReadFailed, &[]).await;
    assert_eq!(err.kind().status(), StatusCode::BAD_REQUEST);
    assert!(err.detail().contains("peer went away"), "{err}");
}

// ---------------------------------------------------------------------------
// Plumbing

#[derive(Debug, Clone, PartialEq, Eq)]
struct InnerFailure(&'static str);

#[tokio::test]
async fn inner_service_error_passes_through_untouched() {
    let svc = layer().layer(service_fn(|_req: Request<Body>| async {
        Err::<Response<Body>, _>(InnerFailure("database down"))
    }));
    let headers = signed_headers("evt_1", NOW, BODY);
    let err: InnerFailure = svc
        .clone()
        .oneshot(request(headers, Body::from(BODY)))
        .await
        .unwrap_err();
    assert_eq!(err, InnerFailure("database down"));
    // A rejection is still a response, not the inner error.
    let res = svc
        .oneshot(request(HeaderMap::new(), Body::from(BODY)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// An inner service that is never ready: its `poll_ready` fails.
#[derive(Clone)]
struct Unavailable;

impl tower::Service<Request<Body>> for Unavailable {
    type Response = Response<Body>;
    type Error = InnerFailure;
    type Future = std::future::Ready<Result<Response<Body>, InnerFailure>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), InnerFailure>> {
        Poll::Ready(Err(InnerFailure("overloaded")))
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        unreachable!("call without readiness")
    }
}

#[tokio::test]
async fn inner_readiness_error_passes_through() {
    let mut svc = webhook_guard::Verify::new(Unavailable, &layer());
    let err = ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .err()
        .unwrap();
    assert_eq!(err, InnerFailure("overloaded"));
}

#[tokio::test]
async fn on_rejection_replaces_the_response() {
    let layer = layer().on_rejection(|err| {
        let mut res = Response::new(Body::from(format!("nope: {}", err.kind())));
        *res.status_mut() = StatusCode::FORBIDDEN;
        res
    });
    let sig = expected_hex("evt_1", NOW, BODY);
    let mut headers = signed_headers("evt_1", NOW, BODY);
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&format!("sha256={}", "11".repeat(32))).unwrap(),
    );
    let (res, handler) = send(&layer, request(headers, Body::from(BODY))).await;
    assert_eq!(handler.calls(), 0);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get(header::CONTENT_TYPE).is_none());
    assert_eq!(
        res.extensions().get::<VerifyError>().unwrap().kind(),
        VerifyErrorKind::InvalidSignature
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "nope: invalid-signature");
    assert!(!String::from_utf8_lossy(&body).contains(&sig));

    // Over-limit rejections go through it too.
    let mut headers = signed_headers("evt_1", NOW, BODY);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(1 << 30));
    let (res, _) = send(&layer, request(headers, Body::from(BODY))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "nope: payload-too-large");
}

#[tokio::test]
async fn verified_extractor_without_the_layer_is_a_loud_500() {
    use axum::{Router, routing::post};
    let app: Router = Router::new().route(
        "/webhooks",
        post(|v: Verified| async move { v.id().to_owned() }),
    );
    let headers = signed_headers("evt_1", NOW, BODY);
    let res = app
        .oneshot(request(headers, Body::from(BODY)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], 500);
    assert!(
        json["detail"].as_str().unwrap().contains("VerifyLayer"),
        "{json}"
    );
}

#[tokio::test]
async fn verified_extractor_behind_the_layer_works_in_a_router() {
    use axum::{Router, routing::post};
    let app: Router = Router::new()
        .route(
            "/webhooks",
            post(|v: Verified| async move { format!("{}:{}", v.id(), v.secret_index()) }),
        )
        .layer(layer());
    let headers = signed_headers("evt_router", NOW, BODY);
    let res = app
        .oneshot(request(headers, Body::from(BODY)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "evt_router:0");
}

#[test]
fn debug_output_never_shows_secrets() {
    let binary = vec![0x42u8, 0x13, 0x37, 0x99];
    let set = SecretSet::new([Secret::from(SECRET), Secret::new(binary.clone())]).unwrap();
    let layer = VerifyLayer::new(set.clone())
        .scheme(Scheme::native_body_only())
        .clock(FixedClock::at(NOW));
    let service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let shown = [
        format!("{set:?}"),
        format!("{set:#?}"),
        format!("{layer:?}"),
        format!("{layer:#?}"),
        format!("{:?}", layer.verifier()),
        format!("{service:?}"),
    ];
    let forbidden = [
        SECRET.to_owned(),
        hex::encode(SECRET),
        format!("{:?}", SECRET.as_bytes()),
        hex::encode(&binary),
        format!("{binary:?}"),
        "66, 19, 55".to_owned(),
    ];
    for text in &shown {
        for needle in &forbidden {
            assert!(!text.contains(needle.as_str()), "{text} shows {needle}");
        }
    }
    assert!(shown[0].contains("redacted"), "{}", shown[0]);
    assert!(shown[2].contains("VerifyLayer"), "{}", shown[2]);
}
