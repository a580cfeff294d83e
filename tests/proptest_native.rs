//! Property tests for the native scheme, signed and body-only modes: every
//! signed message verifies, and every flipped bit is refused with the kind
//! the flip calls for.
//!
//! Where a flip can leave the request valid (an upper-case hex digit encodes
//! the same signature; another signature of a rotated set still matches),
//! the oracle below says so and the test checks exactly that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use proptest::sample::Index;
use webhook_guard::scheme::{NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_TIMESTAMP_HEADER};
use webhook_guard::{
    Message, Scheme, SecretSet, SignError, TimestampSource, VerifyError, VerifyErrorKind,
};

/// What verifying a modified request must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Accepted, matched by the secret at this index.
    Accepted(usize),
    Rejected(VerifyErrorKind),
}

fn outcome(result: &Result<webhook_guard::SignatureMatch, VerifyError>) -> Expect {
    match result {
        Ok(m) => Expect::Accepted(m.secret_index()),
        Err(e) => Expect::Rejected(e.kind()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Signed,
    BodyOnly,
}

impl Mode {
    fn scheme(self) -> Scheme {
        match self {
            Mode::Signed => Scheme::native(),
            Mode::BodyOnly => Scheme::native_body_only().allow_missing_timestamp(),
        }
    }
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Signed), Just(Mode::BodyOnly)]
}

fn secrets() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 1..=3)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..600)
}

/// Ids a sender may use: 1 to 256 visible ASCII characters other than `.`.
fn id() -> impl Strategy<Value = String> {
    "[!-\\-/-~]{1,256}"
}

/// Unix seconds as a sender writes them (non-negative).
fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![0..=i64::MAX, 1_600_000_000i64..2_000_000_000]
}

fn set(keys: &[Vec<u8>]) -> SecretSet {
    SecretSet::new(keys.iter().cloned()).unwrap()
}

/// The hex signatures of a `sha256=<hex>[,sha256=<hex>...]` header, decoded.
fn tags_of(value: &[u8]) -> Vec<[u8; 32]> {
    std::str::from_utf8(value)
        .unwrap()
        .split(',')
        .map(|t| {
            let mut tag = [0; 32];
            hex::decode_to_slice(t.strip_prefix("sha256=").unwrap(), &mut tag).unwrap();
            tag
        })
        .collect()
}

/// Flips one bit of one byte of `bytes`.
fn flip(bytes: &[u8], at: Index, bit: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let i = at.index(out.len());
    out[i] ^= 1 << bit;
    out
}

/// Oracle for a modified id header (signed mode).
fn expect_for_id(value: &[u8]) -> Expect {
    let valid = !value.is_empty()
        && value.len() <= 256
        && value.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
    if valid {
        Expect::Rejected(VerifyErrorKind::InvalidSignature)
    } else {
        Expect::Rejected(VerifyErrorKind::MalformedHeader)
    }
}

/// Oracle for a modified timestamp header (signed mode). HTTP does not count
/// surrounding whitespace as part of a value.
fn expect_for_timestamp(value: &[u8], original: &[u8]) -> Expect {
    let trimmed = value.trim_ascii();
    let digits = !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit);
    let fits = std::str::from_utf8(trimmed)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .is_some();
    if digits && fits {
        assert_ne!(trimmed, original, "a flip always changes the digits");
        Expect::Rejected(VerifyErrorKind::InvalidSignature)
    } else {
        Expect::Rejected(VerifyErrorKind::MalformedHeader)
    }
}

/// Oracle for a modified signature header: the wire format says signatures
/// are `sha256=` + 64 hex digits (either case), separated by commas or
/// whitespace, at most 16. Anything else is malformed; a well-formed header
/// passes exactly when it still carries the signature of an active secret.
fn expect_for_signature(value: &[u8], originals: &[[u8; 32]]) -> Expect {
    const MALFORMED: Expect = Expect::Rejected(VerifyErrorKind::MalformedHeader);
    if !value
        .iter()
        .all(|&b| (b' '..=b'~').contains(&b) || b == b'\t')
    {
        return MALFORMED;
    }
    let text = std::str::from_utf8(value).unwrap();
    let tokens: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() || tokens.len() > 16 {
        return MALFORMED;
    }
    let mut found = Vec::new();
    for token in tokens {
        let Some(hex_part) = token.strip_prefix("sha256=") else {
            return MALFORMED;
        };
        let mut tag = [0; 32];
        if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut tag).is_err() {
            return MALFORMED;
        }
        found.push(tag);
    }
    match originals.iter().position(|o| found.contains(o)) {
        Some(index) => Expect::Accepted(index),
        None => Expect::Rejected(VerifyErrorKind::InvalidSignature),
    }
}

/// What body-only mode (`allow_missing_timestamp`) answers when the signature
/// matched the secret at `index`: only a JSON object without a `timestamp`
/// field may carry no timestamp; any other body (arbitrary bytes are almost
/// never a JSON object) is refused as an unusable timestamp, which is checked
/// only after the signature.
fn body_only_expect(body: &[u8], index: usize) -> Expect {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(object) if !object.contains_key("timestamp") => Expect::Accepted(index),
        _ => Expect::Rejected(VerifyErrorKind::MissingTimestamp),
    }
}

/// What `mode` answers for `body` when the signature matched the secret at
/// `index`.
fn expect_matched(mode: Mode, body: &[u8], index: usize) -> Expect {
    match mode {
        Mode::Signed => Expect::Accepted(index),
        Mode::BodyOnly => body_only_expect(body, index),
    }
}

/// Replaces one header with `value`; `None` when HTTP cannot carry it (such a
/// request never reaches a receiver).
fn with_header(headers: &HeaderMap, name: &'static str, value: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = headers.clone();
    headers.insert(name, value);
    Some(headers)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn signed_round_trip(keys in secrets(), id in id(), ts in timestamp(), body in body()) {
        let secrets = set(&keys);
        let headers = Scheme::native().sign(&secrets, &Message::new(&id, ts, &body)).unwrap();
        prop_assert_eq!(tags_of(headers[NATIVE_SIGNATURE_HEADER].as_bytes()).len(), keys.len());
        let m = Scheme::native().verify_signature(&secrets, &headers, &body, ts).unwrap();
        prop_assert_eq!(m.id(), Some(id.as_str()));
        prop_assert_eq!(m.timestamp(), Some(ts));
        prop_assert_eq!(m.timestamp_source(), TimestampSource::SignedHeader);
        prop_assert_eq!(m.secret_index(), 0);
        // Any one secret of the set verifies the request on its own.
        for key in &keys {
            let alone = SecretSet::single(key.clone()).unwrap();
            prop_assert!(Scheme::native().verify_signature(&alone, &headers, &body, ts).is_ok());
        }
    }

    #[test]
    fn any_i64_timestamp_is_signed_verifiably_or_refused(
        mode in mode(),
        id in id(),
        ts in any::<i64>(),
        body in body(),
    ) {
        let secrets = SecretSet::single("k").unwrap();
        let scheme = mode.scheme();
        // Body-only mode sends no timestamp, so any value can be signed; the
        // signed mode's header carries unix seconds, which are never negative.
        match scheme.sign(&secrets, &Message::new(&id, ts, &body)) {
            Ok(headers) => {
                prop_assert!(ts >= 0 || mode == Mode::BodyOnly);
                let result = scheme.verify_signature(&secrets, &headers, &body, ts);
                prop_assert_eq!(outcome(&result), expect_matched(mode, &body, 0));
            }
            Err(err) => {
                prop_assert!(ts < 0 && mode == Mode::Signed);
                prop_assert_eq!(err, SignError::InvalidTimestamp { timestamp: ts });
            }
        }
    }

    #[test]
    fn ids_with_a_dot_are_refused_on_both_sides(
        head in id(),
        tail in "[!-~]{0,100}",
        ts in timestamp(),
        body in body(),
    ) {
        let secrets = SecretSet::single("k").unwrap();
        let dotted = format!("{head}.{tail}");
        let err = Scheme::native().sign(&secrets, &Message::new(&dotted, ts, &body)).unwrap_err();
        prop_assert!(matches!(err, SignError::InvalidId { .. }), "{:?}", err);
        // A request carrying such an id is malformed, whatever it is
        // signed with.
        let msg = Message::new(&head, ts, &body);
        let mut headers = Scheme::native().sign(&secrets, &msg).unwrap();
        headers.insert(NATIVE_ID_HEADER, HeaderValue::from_str(&dotted).unwrap());
        let result = Scheme::native().verify_signature(&secrets, &headers, &body, ts);
        prop_assert_eq!(outcome(&result), Expect::Rejected(VerifyErrorKind::MalformedHeader));
    }

    #[test]
    fn body_only_round_trip(keys in secrets(), ts in timestamp(), body in body()) {
        let secrets = set(&keys);
        let scheme = Mode::BodyOnly.scheme();
        let headers = scheme.sign(&secrets, &Message::new("unused", ts, &body)).unwrap();
        prop_assert_eq!(headers.len(), 1);
        let result = scheme.verify_signature(&secrets, &headers, &body, ts);
        prop_assert_eq!(outcome(&result), body_only_expect(&body, 0));
        if let Ok(m) = result {
            prop_assert_eq!(m.id(), None);
        }
        for key in &keys {
            let alone = SecretSet::single(key.clone()).unwrap();
            let result = scheme.verify_signature(&alone, &headers, &body, ts);
            prop_assert_eq!(outcome(&result), body_only_expect(&body, 0));
        }
        // The same bytes as the value of a JSON object's field always pass.
        let object = serde_json::to_vec(&serde_json::json!({ "data": hex::encode(&body) })).unwrap();
        let headers = scheme.sign(&secrets, &Message::new("unused", ts, &object)).unwrap();
        let m = scheme.verify_signature(&secrets, &headers, &object, ts).unwrap();
        prop_assert_eq!(m.secret_index(), 0);
        prop_assert_eq!(m.id(), None);
        prop_assert_eq!(m.timestamp_source(), TimestampSource::None);
    }

    #[test]
    fn body_only_reads_the_signed_timestamp(
        keys in secrets(),
        ts in 0i64..253_402_300_800, // up to 9999-12-31T23:59:59Z
        rfc3339 in any::<bool>(),
        text in ".{0,64}",
    ) {
        let timestamp = if rfc3339 {
            let t = time::OffsetDateTime::from_unix_timestamp(ts).unwrap();
            let formatted = t.format(&time::format_description::well_known::Rfc3339).unwrap();
            serde_json::Value::from(formatted)
        } else {
            serde_json::Value::from(ts)
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "event": "ingestion.completed", "data": { "text": text }, "timestamp": timestamp,
        })).unwrap();
        let secrets = set(&keys);
        let scheme = Scheme::native_body_only();
        let headers = scheme.sign(&secrets, &Message::new("unused", ts, &body)).unwrap();
        let m = scheme.verify_signature(&secrets, &headers, &body, ts).unwrap();
        prop_assert_eq!(m.timestamp(), Some(ts));
        prop_assert_eq!(m.timestamp_source(), TimestampSource::SignedBody);
    }

    #[test]
    fn flipped_body_bit_is_an_invalid_signature(
        mode in mode(),
        keys in secrets(),
        id in id(),
        ts in timestamp(),
        body in prop::collection::vec(any::<u8>(), 1..600),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let secrets = set(&keys);
        let scheme = mode.scheme();
        let headers = scheme.sign(&secrets, &Message::new(&id, ts, &body)).unwrap();
        let tampered = flip(&body, at, bit);
        let result = scheme.verify_signature(&secrets, &headers, &tampered, ts);
        prop_assert_eq!(outcome(&result), Expect::Rejected(VerifyErrorKind::InvalidSignature));
    }

    #[test]
    fn flipped_id_bit_is_refused(
        keys in secrets(),
        id in id(),
        ts in timestamp(),
        body in body(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let secrets = set(&keys);
        let headers = Scheme::native().sign(&secrets, &Message::new(&id, ts, &body)).unwrap();
        let value = flip(id.as_bytes(), at, bit);
        let Some(tampered) = with_header(&headers, NATIVE_ID_HEADER, &value) else {
            // Control characters and DEL cannot be sent at all.
            prop_assert!(value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f));
            return Ok(());
        };
        let result = Scheme::native().verify_signature(&secrets, &tampered, &body, ts);
        prop_assert_eq!(outcome(&result), expect_for_id(&value), "id {:?}", value);
    }

    #[test]
    fn flipped_timestamp_bit_is_refused(
        keys in secrets(),
        id in id(),
        ts in timestamp(),
        body in body(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let secrets = set(&keys);
        let headers = Scheme::native().sign(&secrets, &Message::new(&id, ts, &body)).unwrap();
        let original = ts.to_string();
        let value = flip(original.as_bytes(), at, bit);
        let Some(tampered) = with_header(&headers, NATIVE_TIMESTAMP_HEADER, &value) else {
            prop_assert!(value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f));
            return Ok(());
        };
        let result = Scheme::native().verify_signature(&secrets, &tampered, &body, ts);
        prop_assert_eq!(
            outcome(&result),
            expect_for_timestamp(&value, original.as_bytes()),
            "timestamp {:?}", String::from_utf8_lossy(&value)
        );
    }

    #[test]
    fn flipped_signature_bit_is_refused(
        mode in mode(),
        keys in secrets(),
        id in id(),
        ts in timestamp(),
        body in body(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let secrets = set(&keys);
        let scheme = mode.scheme();
        let headers = scheme.sign(&secrets, &Message::new(&id, ts, &body)).unwrap();
        let original = headers[NATIVE_SIGNATURE_HEADER].as_bytes();
        let value = flip(original, at, bit);
        let Some(tampered) = with_header(&headers, NATIVE_SIGNATURE_HEADER, &value) else {
            prop_assert!(value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f));
            return Ok(());
        };
        let expected = match expect_for_signature(&value, &tags_of(original)) {
            Expect::Accepted(index) => expect_matched(mode, &body, index),
            rejected => rejected,
        };
        if keys.len() == 1 {
            // With one secret the only way to pass is the same signature
            // written with a hex letter in the other case.
            if let Expect::Accepted(_) = expected {
                prop_assert!(value.eq_ignore_ascii_case(original));
            }
        }
        let result = scheme.verify_signature(&secrets, &tampered, &body, ts);
        prop_assert_eq!(
            outcome(&result),
            expected,
            "signature {:?}", String::from_utf8_lossy(&value)
        );
    }
}
