//! Invariants checked by the fuzz targets.
//!
//! The same file is compiled into `tests/fuzz_corpus.rs`, which feeds every
//! file of `fuzz/corpus/<target>/` through these functions in a plain
//! `cargo test`, so the targets keep compiling and the seeds keep passing
//! where cargo-fuzz cannot run.
//!
//! Each `check_*` panics when an invariant is broken and otherwise says what
//! happened, so tests can assert that the seeds reach the paths they are
//! meant to reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use sha2::Sha256;
use tower::ServiceExt;
use webhook_guard::event::{Envelope, Event};
use webhook_guard::extract::Webhook;
use webhook_guard::scheme::{
    NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_TIMESTAMP_HEADER, SchemeName,
};
use webhook_guard::{
    FixedClock, Message, ReplayWindow, Scheme, Secret, SecretSet, TimestampSource, Verified,
    VerifyError, VerifyErrorKind, VerifyLayer,
};

/// The secret every fuzzed request is checked against.
pub const FUZZ_SECRET: &str = "fuzz-secret-5f0c1d2e9a";
/// A second secret that stops matching at [`OLD_SECRET_EXPIRY`] (a rotation).
pub const OLD_SECRET: &str = "fuzz-old-secret-77b3";
/// Expiry of [`OLD_SECRET`], unix seconds.
pub const OLD_SECRET_EXPIRY: i64 = 1_700_000_000;
/// Body limit of the layer in the request target.
pub const BODY_LIMIT: usize = 4096;

/// The receiver's secrets: [`FUZZ_SECRET`] and the expiring [`OLD_SECRET`].
pub fn secrets() -> SecretSet {
    SecretSet::new([
        Secret::from(FUZZ_SECRET),
        Secret::from(OLD_SECRET).expires_at(OLD_SECRET_EXPIRY),
    ])
    .expect("two non-empty secrets")
}

/// Every scheme `Scheme::from_name` knows (new schemes join automatically
/// through `SCHEME_NAMES`), plus body-only mode without a required timestamp.
pub fn schemes() -> &'static [Scheme] {
    static SCHEMES: OnceLock<Vec<Scheme>> = OnceLock::new();
    SCHEMES.get_or_init(|| {
        let mut all: Vec<Scheme> = webhook_guard::scheme::SCHEME_NAMES
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| Scheme::from_name(n).expect("every listed name is known"))
            .collect();
        all.push(Scheme::native_body_only().allow_missing_timestamp());
        all
    })
}

fn pick_scheme(index: u8) -> &'static Scheme {
    let all = schemes();
    &all[usize::from(index) % all.len()]
}

/// Header names worth editing for `scheme`: the ones its `sign` writes, and
/// the native ones.
fn header_names(scheme: &Scheme) -> Vec<HeaderName> {
    let mut names: BTreeSet<String> = [
        NATIVE_ID_HEADER,
        NATIVE_TIMESTAMP_HEADER,
        NATIVE_SIGNATURE_HEADER,
        "content-type",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Ok(signed) = scheme.sign(&secrets(), &Message::new("evt_probe", 1_800_000_000, b"{}")) {
        names.extend(signed.keys().map(|k| k.as_str().to_owned()));
    }
    names
        .into_iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("valid name"))
        .collect()
}

/// A change to the request's headers.
#[derive(Arbitrary, Debug, Clone)]
pub enum HeaderEdit {
    /// Replace the header with this value.
    Set {
        /// Index into the scheme's header names.
        name: u8,
        /// The new value (skipped when not a valid header value).
        value: Vec<u8>,
    },
    /// Add one more value.
    Append {
        /// Index into the scheme's header names.
        name: u8,
        /// The value (skipped when not a valid header value).
        value: Vec<u8>,
    },
    /// Remove the header.
    Remove {
        /// Index into the scheme's header names.
        name: u8,
    },
    /// XOR one byte of the first value with `mask`.
    Flip {
        /// Index into the scheme's header names.
        name: u8,
        /// Byte position (modulo the length).
        index: u16,
        /// The bits to flip.
        mask: u8,
    },
}

fn apply_edits(headers: &mut HeaderMap, names: &[HeaderName], edits: &[HeaderEdit]) -> bool {
    let mut changed = false;
    for edit in edits.iter().take(8) {
        let pick = |i: u8| names[usize::from(i) % names.len()].clone();
        match edit {
            HeaderEdit::Set { name, value } => {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    headers.insert(pick(*name), v);
                    changed = true;
                }
            }
            HeaderEdit::Append { name, value } => {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    headers.append(pick(*name), v);
                    changed = true;
                }
            }
            HeaderEdit::Remove { name } => {
                changed |= headers.remove(pick(*name)).is_some();
            }
            HeaderEdit::Flip { name, index, mask } => {
                let name = pick(*name);
                let Some(old) = headers.get(&name) else {
                    continue;
                };
                let mut bytes = old.as_bytes().to_vec();
                if bytes.is_empty() || *mask == 0 {
                    continue;
                }
                let i = usize::from(*index) % bytes.len();
                bytes[i] ^= mask;
                if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                    headers.insert(name, v);
                    changed = true;
                }
            }
        }
    }
    changed
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',' || b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
}

/// Asserts that `headers` carry what `sign` produces for this content with
/// the secret at `secret_index`: every token of every signed header value
/// appears among the tokens of the request's values of that header.
fn assert_produced_by_sign(
    scheme: &Scheme,
    headers: &HeaderMap,
    secret_index: usize,
    id: &str,
    timestamp: i64,
    body: &[u8],
) {
    let secret = secrets()
        .iter()
        .nth(secret_index)
        .map(|s| Secret::new(s.expose_bytes().to_vec()))
        .expect("the matched index is in the set");
    let one = SecretSet::single(secret).expect("non-empty");
    let expected = scheme
        .sign(&one, &Message::new(id, timestamp, body))
        .expect("what verified can be signed");
    for (name, value) in &expected {
        // Delivery ids (`X-GitHub-Delivery`, `X-Shopify-Event-Id`) are sent
        // for the receiver's logs but not signed: verification never needs them.
        if name == webhook_guard::scheme::GITHUB_DELIVERY_HEADER
            || name == webhook_guard::scheme::SHOPIFY_EVENT_ID_HEADER
        {
            continue;
        }
        // Hex signatures name the same bytes in either case, and verification
        // accepts both; base64 is case-sensitive and compared as it is.
        let hex = !matches!(scheme.name(), SchemeName::Standard | SchemeName::Shopify);
        let normal = |t: &[u8]| {
            if hex {
                t.to_ascii_lowercase()
            } else {
                t.to_vec()
            }
        };
        let present: BTreeSet<Vec<u8>> = headers
            .get_all(name)
            .iter()
            .flat_map(|v| tokens(v.as_bytes()))
            .map(normal)
            .collect();
        for token in tokens(value.as_bytes()) {
            assert!(
                present.contains(&normal(token)),
                "verify accepted a request that sign did not produce: `{name}` lacks {:?}",
                String::from_utf8_lossy(token)
            );
        }
    }
}

/// The signatures `sign` would put in the request for this content, with
/// each secret on its own: none may appear in an error message.
fn expected_signature_tokens(
    scheme: &Scheme,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<String> {
    let mut out = Vec::new();
    for secret in secrets().iter() {
        let one =
            SecretSet::single(Secret::new(secret.expose_bytes().to_vec())).expect("non-empty");
        if let Ok(signed) = scheme.sign(&one, &Message::new(id, timestamp, body)) {
            for value in signed.values() {
                out.extend(
                    tokens(value.as_bytes())
                        .filter(|t| t.len() >= 32)
                        .map(|t| String::from_utf8_lossy(t).into_owned()),
                );
            }
        }
    }
    out
}

fn assert_no_secret_in(text: &str, signatures: &[String]) {
    assert!(!text.contains(FUZZ_SECRET), "a secret leaked: {text}");
    assert!(!text.contains(OLD_SECRET), "a secret leaked: {text}");
    for sig in signatures {
        assert!(
            !text.contains(sig.as_str()),
            "an expected signature leaked: {text}"
        );
    }
}

/// What a check observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request was accepted.
    Accepted,
    /// The request was refused for this reason.
    Rejected(VerifyErrorKind),
}

// --------------------------------------------------------------- signature

/// A request to verify: optionally produced by `sign`, then tampered with.
#[derive(Arbitrary, Debug, Clone)]
pub struct SignatureCase {
    /// Index into [`schemes`].
    pub scheme: u8,
    /// The id to sign.
    pub id: String,
    /// The timestamp to sign.
    pub timestamp: i64,
    /// Verification time, relative to `timestamp`.
    pub now_offset: i32,
    /// The body.
    pub body: Vec<u8>,
    /// Start from the headers `sign` produces for this message.
    pub start_signed: bool,
    /// Then change the headers.
    pub edits: Vec<HeaderEdit>,
    /// Then XOR one body byte: (position, mask).
    pub body_flip: Option<(u16, u8)>,
}

/// `Scheme::verify_signature` on arbitrary headers and body.
///
/// Invariants: it never panics; it succeeds only when the request carries a
/// signature that `sign` produces for the content with the matched secret,
/// and that secret is active; an untouched signed request never fails its
/// signature check; no error message holds a secret or an expected signature.
pub fn check_signature(case: &SignatureCase) -> Outcome {
    let scheme = pick_scheme(case.scheme);
    let secrets = secrets();
    let now = case.timestamp.saturating_add(i64::from(case.now_offset));
    let mut headers = HeaderMap::new();
    let mut signed = false;
    if case.start_signed {
        if let Ok(h) = scheme.sign(
            &secrets,
            &Message::new(&case.id, case.timestamp, &case.body),
        ) {
            headers = h;
            signed = true;
        }
    }
    let names = header_names(scheme);
    let edited = apply_edits(&mut headers, &names, &case.edits);
    let mut body = case.body.clone();
    if let Some((index, mask)) = case.body_flip {
        if !body.is_empty() {
            let i = usize::from(index) % body.len();
            body[i] ^= mask;
        }
    }
    let untouched = signed && !edited && body == case.body;

    match scheme.verify_signature(&secrets, &headers, &body, now) {
        Ok(matched) => {
            if matched.secret_index() == 1 {
                assert!(now < OLD_SECRET_EXPIRY, "an expired secret matched");
            }
            let ts = match matched.timestamp_source() {
                TimestampSource::SignedHeader => matched.timestamp().expect("signed timestamp"),
                _ => now,
            };
            let id = matched.id().unwrap_or("evt_probe");
            assert_produced_by_sign(scheme, &headers, matched.secret_index(), id, ts, &body);
            Outcome::Accepted
        }
        Err(err) => {
            if untouched {
                assert!(
                    !matches!(
                        err.kind(),
                        VerifyErrorKind::InvalidSignature
                            | VerifyErrorKind::MalformedHeader
                            | VerifyErrorKind::MissingHeader
                    ),
                    "a request exactly as signed failed: {err}"
                );
            }
            let sigs = expected_signature_tokens(scheme, &case.id, case.timestamp, &body);
            assert_no_secret_in(&err.to_string(), &sigs);
            Outcome::Rejected(err.kind())
        }
    }
}

// --------------------------------------------------------------- timestamp

/// A replay window, a timestamp, and a timestamp header text.
#[derive(Arbitrary, Debug, Clone)]
pub struct TimestampCase {
    /// The receiver's now.
    pub now: i64,
    /// Past tolerance in seconds.
    pub tolerance: u64,
    /// Future skew in seconds.
    pub skew: u64,
    /// A timestamp for `ReplayWindow::check`.
    pub timestamp: i64,
    /// Text sent as `X-Webhook-Timestamp` (signed) and as the body's
    /// `timestamp` field (body-only).
    pub text: Vec<u8>,
    /// Sign over the text exactly as sent instead of trimmed.
    pub sign_untrimmed: bool,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Sends `req` through `app` and returns the status, headers, the
/// `VerifyError` of a rejection, and the body.
fn send(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, Option<VerifyError>, Bytes) {
    runtime().block_on(async move {
        let res = app.oneshot(req).await.expect("infallible");
        let status = res.status();
        let err = res.extensions().get::<VerifyError>().cloned();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("in-memory body");
        (status, headers, err, body)
    })
}

fn echo_app(scheme: &Scheme, window: ReplayWindow) -> Router {
    Router::new()
        .route(
            "/webhooks",
            post(|v: Verified| async move {
                format!(
                    "{}|{}",
                    v.id(),
                    v.timestamp().map_or("none".into(), |t| t.to_string())
                )
            }),
        )
        .layer(
            VerifyLayer::new(secrets())
                .scheme(scheme.clone())
                .replay_window(window),
        )
}

fn hmac(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(FUZZ_SECRET.as_bytes()).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn window_oracle(now: i64, tolerance: u64, skew: u64, ts: i64) -> Result<(), VerifyErrorKind> {
    let age = i128::from(now) - i128::from(ts);
    if age > i128::from(tolerance) {
        Err(VerifyErrorKind::TimestampTooOld)
    } else if -age > i128::from(skew) {
        Err(VerifyErrorKind::TimestampTooNew)
    } else {
        Ok(())
    }
}

/// Parses what the native scheme accepts as a timestamp header.
fn header_oracle(text: &[u8]) -> Option<i64> {
    let t = std::str::from_utf8(text).ok()?.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Parses what body-only mode accepts as a text `timestamp` field.
fn body_text_oracle(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `ReplayWindow::check` on any `i64`, and timestamp texts through
/// `VerifyLayer` in signed-header and body-only mode.
///
/// Invariants: the window agrees with exact `i128` arithmetic (never an
/// overflow) and names the right kind; a header that is not unix seconds is
/// `MalformedHeader`; a valid one is checked against the window; a body
/// `timestamp` is read as unix seconds or RFC 3339 and checked against the
/// window, anything else is `MissingTimestamp`. Returns the signed-header
/// outcome.
pub fn check_timestamp(case: &TimestampCase) -> Outcome {
    let window = ReplayWindow::new()
        .tolerance(Duration::from_secs(case.tolerance))
        .future_skew(Duration::from_secs(case.skew))
        .clock(FixedClock::at(case.now));
    let expected = window_oracle(case.now, case.tolerance, case.skew, case.timestamp);
    match (window.check(case.timestamp), expected) {
        (Ok(()), Ok(())) => {}
        (Err(err), Err(kind)) => {
            assert_eq!(err.kind(), kind, "{err}");
            let age = i128::from(case.now) - i128::from(case.timestamp);
            let shown = if kind == VerifyErrorKind::TimestampTooOld {
                age
            } else {
                -age
            };
            assert!(err.to_string().contains(&format!("{shown} s")), "{err}");
        }
        (got, want) => panic!("window said {got:?}, expected {want:?}"),
    }

    // Signed-header mode: the text as `X-Webhook-Timestamp`.
    let mut outcome = Outcome::Rejected(VerifyErrorKind::MalformedHeader);
    if let Ok(value) = HeaderValue::from_bytes(&case.text) {
        let id = "evt_ts";
        let body = br#"{"event":"kpi.alert"}"#;
        let signed_text = if case.sign_untrimmed {
            &case.text[..]
        } else {
            case.text.trim_ascii()
        };
        let sig = hmac(&[id.as_bytes(), b".", signed_text, b".", body]);
        let mut req = Request::post("/webhooks")
            .body(Body::from(&body[..]))
            .expect("valid");
        let h = req.headers_mut();
        h.insert(NATIVE_ID_HEADER, HeaderValue::from_static(id));
        h.insert(NATIVE_TIMESTAMP_HEADER, value);
        h.insert(
            NATIVE_SIGNATURE_HEADER,
            HeaderValue::from_str(&format!("sha256={sig}")).expect("hex"),
        );
        let (status, _, err, text) = send(echo_app(&Scheme::native(), window.clone()), req);
        let want = match header_oracle(&case.text) {
            None => Err(VerifyErrorKind::MalformedHeader),
            Some(_) if signed_text != case.text.trim_ascii() => {
                Err(VerifyErrorKind::InvalidSignature)
            }
            Some(ts) => window_oracle(case.now, case.tolerance, case.skew, ts).map(|()| ts),
        };
        outcome = match want {
            Ok(ts) => {
                assert_eq!(status, StatusCode::OK, "{err:?}");
                assert_eq!(&text[..], format!("{id}|{ts}").as_bytes());
                Outcome::Accepted
            }
            Err(kind) => {
                let err = err.expect("a rejection carries its error");
                assert_eq!(err.kind(), kind, "{err}");
                assert_eq!(status, kind.status());
                Outcome::Rejected(kind)
            }
        };
    }

    // Body-only mode: the text as the body's `timestamp` string.
    let text = String::from_utf8_lossy(&case.text);
    let body = serde_json::to_vec(&serde_json::json!({ "timestamp": text })).expect("a string");
    let sig = hmac(&[&body]);
    let mut req = Request::post("/webhooks")
        .body(Body::from(body))
        .expect("valid");
    req.headers_mut().insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(&format!("sha256={sig}")).expect("hex"),
    );
    let (status, _, err, _) = send(echo_app(&Scheme::native_body_only(), window), req);
    let want = match body_text_oracle(&text) {
        None => Err(VerifyErrorKind::MissingTimestamp),
        Some(ts) => window_oracle(case.now, case.tolerance, case.skew, ts),
    };
    match want {
        Ok(()) => assert_eq!(status, StatusCode::OK, "{err:?}"),
        Err(kind) => {
            let err = err.expect("a rejection carries its error");
            assert_eq!(err.kind(), kind, "{err}");
        }
    }
    outcome
}

// ------------------------------------------------------------------- event

/// What [`check_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// A whole envelope of this type.
    Envelope(String),
    /// An event (without a valid envelope) of this type.
    Event(String),
    /// Refused with this status by `Webhook<Event>`.
    Refused(StatusCode),
}

/// `Envelope` and `Event` deserialization of arbitrary bytes.
///
/// Invariants: never panics; whatever deserializes serializes, and
/// deserializing that gives an equal value whose serialization is the same
/// JSON; `Event` agrees with `Envelope::event`; `Webhook<Event>` accepts
/// exactly what `Event` accepts, refusing invalid JSON with 400 and valid JSON
/// of the wrong shape with 422.
pub fn check_event(data: &[u8]) -> EventOutcome {
    let envelope = serde_json::from_slice::<Envelope>(data);
    let event = serde_json::from_slice::<Event>(data);
    if let Ok(env) = &envelope {
        assert_eq!(
            event.as_ref().ok(),
            Some(&env.event),
            "Event disagrees with Envelope"
        );
        let json = serde_json::to_vec(env).expect("a parsed envelope serializes");
        let back: Envelope = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        assert_eq!(&back, env, "envelope round trip");
        let again = serde_json::to_vec(&back).expect("serializes");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).expect("json"),
            serde_json::from_slice::<serde_json::Value>(&again).expect("json"),
        );
    }
    if let Ok(ev) = &event {
        let json = serde_json::to_vec(ev).expect("a parsed event serializes");
        let back: Event = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        assert_eq!(&back, ev, "event round trip");
        assert_eq!(json, serde_json::to_vec(&back).expect("serializes"));
    }
    match Webhook::<Event>::from_bytes(data) {
        Ok(Webhook(ev)) => {
            assert_eq!(
                event.as_ref().ok(),
                Some(&ev),
                "extractor disagrees with Event"
            );
            match envelope {
                Ok(env) => EventOutcome::Envelope(env.event.event_type().to_owned()),
                Err(_) => EventOutcome::Event(ev.event_type().to_owned()),
            }
        }
        Err(rejection) => {
            assert!(event.is_err(), "extractor refused what Event accepts");
            // 422 exactly when the body is JSON that serde_json can build.
            let want = match serde_json::from_slice::<serde_json::Value>(data) {
                Ok(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Err(_) => StatusCode::BAD_REQUEST,
            };
            assert_eq!(rejection.status(), want, "{rejection}");
            EventOutcome::Refused(rejection.status())
        }
    }
}

// ----------------------------------------------------------------- request

/// A whole request for `VerifyLayer` + `Webhook<Event>`.
#[derive(Arbitrary, Debug, Clone)]
pub struct RequestCase {
    /// Index into [`schemes`].
    pub scheme: u8,
    /// Sign the request before editing it.
    pub sign: bool,
    /// The id to sign.
    pub id: String,
    /// The timestamp to sign.
    pub timestamp: i64,
    /// The receiver's now, relative to `timestamp`.
    pub now_offset: i16,
    /// Start from one of the sample bodies instead of `body`.
    pub sample: Option<u8>,
    /// The body when no sample is chosen.
    pub body: Vec<u8>,
    /// XOR one body byte after signing: (position, mask).
    pub body_flip: Option<(u16, u8)>,
    /// Header changes after signing.
    pub edits: Vec<HeaderEdit>,
    /// Deliver the body in pieces of these sizes.
    pub chunks: Vec<u16>,
    /// A `Content-Length` header to send (possibly wrong).
    pub content_length: Option<u32>,
}

/// Bodies that reach the extractor's interesting paths once signed.
pub const SAMPLES: &[&str] = &[
    r#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#,
    r#"{"event":"ingestion.failed","timestamp":"2025-01-15T10:30:00+02:00","tenantId":"t","data":{"jobId":"j","table":"x","error":"disk full","retryable":true}}"#,
    r#"{"event":"kpi.alert","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{"kpiId":"k","value":1.5e3,"threshold":1000}}"#,
    r#"{"data":{"kpiId":"k","value":-0.25},"event":"kpi.computed","timestamp":"2025-01-15T10:30:00Z","tenantId":"t"}"#,
    r#"{"event":"model.trained","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{"nested":[1,2,{"a":null}]}}"#,
    r#"{"event":"dashboard.ready","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{"dashboardId":"d","widgetCount":"many"}}"#,
    r#"{"event":"analysis.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{"analysisId":"a"}"#,
];

/// A request through `VerifyLayer` and a `Webhook<Event>` handler.
///
/// Invariants: never panics; the layer's answer equals `Verifier::verify` on
/// the same headers and bytes (status and error kind), after the 413 body
/// limit; a verified request reaches the handler exactly when `Event`
/// accepts the bytes, with the verified id, and is otherwise refused with the
/// extractor's 400/422 problem response; no response holds a secret.
/// Returns the response status.
pub fn check_request(case: &RequestCase) -> StatusCode {
    let scheme = pick_scheme(case.scheme);
    let secrets = secrets();
    let now = case.timestamp.saturating_add(i64::from(case.now_offset));
    let mut body: Vec<u8> = match case.sample {
        Some(i) => SAMPLES[usize::from(i) % SAMPLES.len()].as_bytes().to_vec(),
        None => case.body.clone(),
    };
    let mut headers = HeaderMap::new();
    if case.sign {
        if let Ok(h) = scheme.sign(&secrets, &Message::new(&case.id, case.timestamp, &body)) {
            headers = h;
        }
    }
    apply_edits(&mut headers, &header_names(scheme), &case.edits);
    if let Some((index, mask)) = case.body_flip {
        if !body.is_empty() {
            let i = usize::from(index) % body.len();
            body[i] ^= mask;
        }
    }
    if let Some(len) = case.content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let window = ReplayWindow::new().clock(FixedClock::at(now));

    // The oracle: what the layer must answer.
    let declared_too_large = case
        .content_length
        .is_some_and(|len| u64::from(len) > BODY_LIMIT as u64);
    let verified = webhook_guard::Verifier::new(scheme.clone(), secrets.clone())
        .replay_window(window.clone())
        .verify(&headers, Bytes::from(body.clone()));

    // The body, in pieces.
    let mut pieces: Vec<Result<Bytes, Infallible>> = Vec::new();
    let mut rest = &body[..];
    for size in case.chunks.iter().take(16) {
        let n = usize::from(*size).min(rest.len());
        pieces.push(Ok(Bytes::copy_from_slice(&rest[..n])));
        rest = &rest[n..];
    }
    pieces.push(Ok(Bytes::copy_from_slice(rest)));
    let mut req = Request::post("/webhooks")
        .body(Body::from_stream(futures_util::stream::iter(pieces)))
        .expect("valid");
    *req.headers_mut() = headers;

    let app = Router::new()
        .route(
            "/webhooks",
            post(|v: Verified, Webhook(event): Webhook<Event>| async move {
                format!("{}\n{}", v.id(), event.event_type())
            }),
        )
        .layer(
            VerifyLayer::new(secrets)
                .scheme(scheme.clone())
                .replay_window(window)
                .body_limit(BODY_LIMIT),
        );
    // The handler echoes the id: a request that itself carries a secret's
    // text may see it again, any other must not.
    let carries_secret = |bytes: &[u8]| {
        [FUZZ_SECRET, OLD_SECRET]
            .iter()
            .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
    };
    let sent_secret =
        carries_secret(&body) || req.headers().values().any(|v| carries_secret(v.as_bytes()));
    let (status, res_headers, err, res_body) = send(app, req);
    if !sent_secret {
        assert_no_secret_in(&String::from_utf8_lossy(&res_body), &[]);
    }
    let problem = res_headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");

    if declared_too_large || body.len() > BODY_LIMIT {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            err.map(|e| e.kind()),
            Some(VerifyErrorKind::PayloadTooLarge)
        );
        return status;
    }
    match verified {
        Err(want) => {
            let err = err.expect("a rejection carries its error");
            assert_eq!(err.kind(), want.kind(), "layer: {err}; verifier: {want}");
            assert_eq!(status, want.kind().status());
            assert!(problem, "a rejection is problem+json");
        }
        Ok(verified) => {
            assert!(err.is_none());
            match Webhook::<Event>::from_bytes(&body) {
                Ok(Webhook(event)) => {
                    assert_eq!(status, StatusCode::OK);
                    let want = format!("{}\n{}", verified.id(), event.event_type());
                    assert_eq!(&res_body[..], want.as_bytes());
                }
                Err(rejection) => {
                    assert_eq!(status, rejection.status(), "{rejection}");
                    assert!(problem, "an extractor rejection is problem+json");
                }
            }
        }
    }
    status
}
