//! The `native` scheme: `X-Webhook-Signature: sha256=<hex>`.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    MAX_SIGNATURES_PER_HEADER, Message, SignError, SignatureMatch, Tag, TimestampSource,
    decode_hex_digits, decode_hex_tag, find_match, hmac_tag, signature_value, validate_id,
};
use crate::error::{VerifyError, VerifyErrorKind};
use crate::replay::parse_unix_seconds;
use crate::secret::{KeyedSecret, SecretSet};

/// Header carrying the event id (native signed mode).
pub const NATIVE_ID_HEADER: &str = "x-webhook-id";
/// Header carrying the signing time in unix seconds (native signed mode).
pub const NATIVE_TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// Header carrying one or more `sha256=<hex>` signatures.
pub const NATIVE_SIGNATURE_HEADER: &str = "x-webhook-signature";
/// Prefix of each native signature.
pub const NATIVE_SIGNATURE_PREFIX: &str = "sha256=";

// Parsed once: a lookup by `&str` would parse and validate the name on every
// request.
static ID_NAME: HeaderName = HeaderName::from_static(NATIVE_ID_HEADER);
static TIMESTAMP_NAME: HeaderName = HeaderName::from_static(NATIVE_TIMESTAMP_HEADER);
static SIGNATURE_NAME: HeaderName = HeaderName::from_static(NATIVE_SIGNATURE_HEADER);

/// Reads a header that must be present exactly once (as
/// [`required_header`](super::required_header), by a parsed name).
fn required<'h>(
    headers: &'h HeaderMap,
    name: &'static HeaderName,
    text: &'static str,
) -> Result<&'h [u8], VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Err(VerifyError::missing_header(text));
    };
    if values.next().is_some() {
        return Err(VerifyError::malformed(
            text,
            "the header appears more than once",
        ));
    }
    Ok(first.as_bytes())
}

/// Checks a native id: [`validate_id`], and no `.`.
///
/// The signed content is `{id}.{timestamp}.{body}`. A dot inside the id would
/// let one signature stand for two messages: the signature of id
/// `evt.1700000000`, timestamp `1700000001` and body `B` would also verify id
/// `evt`, timestamp `1700000000` and body `1700000001.B`.
fn validate_native_id(id: &[u8]) -> Result<(), &'static str> {
    validate_id(id)?;
    if id.contains(&b'.') {
        return Err("the id must not contain `.`, which separates the signed parts");
    }
    Ok(())
}

fn tag_signed(key: &KeyedSecret, id: &[u8], ts: &[u8], body: &[u8]) -> Tag {
    hmac_tag(key, &[id, b".", ts, b".", body])
}

fn tag_body(key: &KeyedSecret, body: &[u8]) -> Tag {
    hmac_tag(key, &[body])
}

fn signature_header(tags: impl Iterator<Item = Tag>) -> HeaderValue {
    let value = tags
        .map(|t| format!("{NATIVE_SIGNATURE_PREFIX}{}", hex::encode(t)))
        .collect::<Vec<_>>()
        .join(",");
    signature_value(value)
}

pub(super) fn sign_signed(
    keys: &[&KeyedSecret],
    msg: &Message<'_>,
) -> Result<HeaderMap, SignError> {
    validate_native_id(msg.id.as_bytes()).map_err(|reason| SignError::InvalidId { reason })?;
    let ts = msg.timestamp.to_string();
    let mut headers = HeaderMap::with_capacity(3);
    let id = HeaderValue::from_str(msg.id).map_err(|_| SignError::InvalidId {
        reason: "the id cannot be carried in a header",
    })?;
    headers.insert(NATIVE_ID_HEADER, id);
    headers.insert(NATIVE_TIMESTAMP_HEADER, HeaderValue::from(msg.timestamp));
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        signature_header(
            keys.iter()
                .map(|k| tag_signed(k, msg.id.as_bytes(), ts.as_bytes(), msg.body)),
        ),
    );
    Ok(headers)
}

pub(super) fn sign_body_only(keys: &[&KeyedSecret], msg: &Message<'_>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        signature_header(keys.iter().map(|k| tag_body(k, msg.body))),
    );
    headers
}

/// Parses every `sha256=<hex>` signature from all `X-Webhook-Signature`
/// values into `buf` (at most [`MAX_SIGNATURES_PER_HEADER`], so nothing is
/// allocated). Signatures are separated by commas and/or whitespace.
pub(crate) fn parse_signatures<'b>(
    headers: &HeaderMap,
    buf: &'b mut [Tag; MAX_SIGNATURES_PER_HEADER],
) -> Result<&'b [Tag], VerifyError> {
    const NAME: &str = NATIVE_SIGNATURE_HEADER;
    let mut values = headers.get_all(&SIGNATURE_NAME).iter().peekable();
    if values.peek().is_none() {
        return Err(VerifyError::missing_header(NAME));
    }
    let mut len = 0;
    for value in values {
        // The usual value, one `sha256=<64 hex digits>`, needs no splitting;
        // anything else (or a bad digit) takes the general path below.
        if let Some(tag) = value
            .as_bytes()
            .strip_prefix(NATIVE_SIGNATURE_PREFIX.as_bytes())
            .and_then(decode_hex_digits)
        {
            let Some(slot) = buf.get_mut(len) else {
                return Err(VerifyError::malformed(
                    NAME,
                    format!("more than {MAX_SIGNATURES_PER_HEADER} signatures"),
                ));
            };
            *slot = tag;
            len += 1;
            continue;
        }
        let s = value
            .to_str()
            .map_err(|_| VerifyError::malformed(NAME, "the value is not visible ASCII"))?;
        // Visible ASCII and tabs only (checked above): every byte is a
        // character, and the only whitespace is ' ' and '\t'.
        let bytes = s.as_bytes();
        let mut start = 0;
        for end in 0..=bytes.len() {
            if end < bytes.len() && !matches!(bytes[end], b',' | b' ' | b'\t') {
                continue;
            }
            let token = &s[start..end];
            start = end + 1;
            if token.is_empty() {
                continue;
            }
            let Some(hex_part) = token.strip_prefix(NATIVE_SIGNATURE_PREFIX) else {
                return Err(VerifyError::malformed(
                    NAME,
                    "each signature must start with `sha256=` followed by 64 hex digits",
                ));
            };
            let Some(slot) = buf.get_mut(len) else {
                return Err(VerifyError::malformed(
                    NAME,
                    format!("more than {MAX_SIGNATURES_PER_HEADER} signatures"),
                ));
            };
            *slot = decode_hex_tag(NAME, "`sha256=`", hex_part)?;
            len += 1;
        }
    }
    if len == 0 {
        return Err(VerifyError::malformed(NAME, "the value holds no signature"));
    }
    Ok(&buf[..len])
}

pub(super) fn verify_signed(
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<SignatureMatch, VerifyError> {
    let id = required(headers, &ID_NAME, NATIVE_ID_HEADER)?;
    validate_native_id(id).map_err(|why| VerifyError::malformed(NATIVE_ID_HEADER, why))?;
    let ts_raw = required(headers, &TIMESTAMP_NAME, NATIVE_TIMESTAMP_HEADER)?;
    let timestamp = parse_unix_seconds(NATIVE_TIMESTAMP_HEADER, ts_raw)?;
    let ts_raw = ts_raw.trim_ascii();
    let mut buf = [[0; 32]; MAX_SIGNATURES_PER_HEADER];
    let candidates = parse_signatures(headers, &mut buf)?;
    let secret_index = find_match(secrets, now, candidates, |k| {
        tag_signed(k, id, ts_raw, body)
    })?;
    Ok(SignatureMatch::hmac(
        // validate_native_id guarantees visible ASCII, so this never
        // replaces anything.
        Some(match std::str::from_utf8(id) {
            Ok(id) => id.to_owned(),
            Err(_) => String::from_utf8_lossy(id).into_owned(),
        }),
        Some(timestamp),
        TimestampSource::SignedHeader,
        secret_index,
    ))
}

pub(super) fn verify_body_only(
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    require_timestamp: bool,
) -> Result<SignatureMatch, VerifyError> {
    let mut buf = [[0; 32]; MAX_SIGNATURES_PER_HEADER];
    let candidates = parse_signatures(headers, &mut buf)?;
    let secret_index = find_match(secrets, now, candidates, |k| tag_body(k, body))?;
    // Only authenticated bytes are parsed, and only for their timestamp.
    let timestamp = match body_timestamp(body) {
        Ok(ts) => Some(ts),
        Err(BodyTimestampError::Invalid(why)) => {
            return Err(VerifyError::new(
                VerifyErrorKind::MissingTimestamp,
                format!("the body's `timestamp` field is unusable: {why}"),
            ));
        }
        Err(BodyTimestampError::Absent(why)) if require_timestamp => {
            return Err(VerifyError::new(
                VerifyErrorKind::MissingTimestamp,
                format!(
                    "body-only mode checks the replay window on the body's signed `timestamp` field: {why}; \
                     send RFC 3339 text or unix seconds, or opt out with `Scheme::native_body_only().allow_missing_timestamp()`"
                ),
            ));
        }
        Err(BodyTimestampError::Absent(_)) => None,
    };
    let source = if timestamp.is_some() {
        TimestampSource::SignedBody
    } else {
        TimestampSource::None
    };
    Ok(SignatureMatch::hmac(None, timestamp, source, secret_index))
}

#[derive(Debug)]
pub(crate) enum BodyTimestampError {
    /// A valid JSON object without a top-level `timestamp` field: the only
    /// body that may mean "no timestamp".
    Absent(&'static str),
    /// Anything else: a `timestamp` field that is not a valid time (`null`
    /// included), a field that appears twice, or a body that is not exactly
    /// one JSON object (invalid JSON, another JSON value, trailing bytes).
    Invalid(String),
}

impl std::fmt::Display for BodyTimestampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Absent(why) => f.write_str(why),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// A top-level object key: `timestamp` or anything else (escapes decoded,
/// so `"time\u0073tamp"` is `timestamp` too, as every JSON parser reads it).
enum Key {
    Timestamp,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(if key == "timestamp" {
                    Key::Timestamp
                } else {
                    Key::Other
                })
            }
        }
        de.deserialize_identifier(KeyVisitor)
    }
}

/// The `timestamp` field of a JSON object, refusing a second one: JSON
/// parsers disagree on which of two equal keys wins, so a body that a
/// sender's parser reads one way must not read as "no timestamp" here.
struct Envelope<'a>(Option<RawTs<'a>>);

impl<'de> serde::Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Envelope<'de>, A::Error> {
                let mut timestamp = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Timestamp if timestamp.is_some() => {
                            return Err(serde::de::Error::duplicate_field("timestamp"));
                        }
                        Key::Timestamp => timestamp = Some(map.next_value::<RawTs<'de>>()?),
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Envelope(timestamp))
            }
        }
        de.deserialize_map(ObjectVisitor)
    }
}

/// Reads the top-level `timestamp` field of a JSON object body, skipping
/// everything else without building it.
///
/// Only a body that is exactly one valid JSON object without the field is
/// [`Absent`](BodyTimestampError::Absent); every other failure is
/// [`Invalid`](BodyTimestampError::Invalid), so that a body another parser
/// might read a timestamp from is never taken as "no timestamp".
pub(crate) fn body_timestamp(body: &[u8]) -> Result<i64, BodyTimestampError> {
    // Checked first so that the error for another JSON value (a long string,
    // say) does not quote the body back.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(BodyTimestampError::Invalid(
            "the body is not a JSON object".into(),
        ));
    }
    let env: Envelope<'_> = serde_json::from_slice(body).map_err(|e| {
        BodyTimestampError::Invalid(format!("the body is not one valid JSON object: {e}"))
    })?;
    match env.0 {
        None => Err(BodyTimestampError::Absent(
            "the body has no `timestamp` field",
        )),
        Some(RawTs::Int(secs)) => Ok(secs),
        Some(RawTs::Text(text)) => parse_text_timestamp(&text),
        Some(RawTs::Other) => Err(BodyTimestampError::Invalid(
            "expected an RFC 3339 string or whole unix seconds".into(),
        )),
    }
}

/// The `timestamp` field's value as far as it matters; anything else is
/// skipped without being built.
enum RawTs<'a> {
    Int(i64),
    Text(std::borrow::Cow<'a, str>),
    Other,
}

// By hand rather than `#[serde(untagged)]`, which would first copy the
// whole value (a huge array, say) into a buffer.
impl<'de: 'a, 'a> serde::Deserialize<'de> for RawTs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawTsVisitor(std::marker::PhantomData))
    }
}

struct RawTsVisitor<'a>(std::marker::PhantomData<RawTs<'a>>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for RawTsVisitor<'a> {
    type Value = RawTs<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(RawTs::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(RawTs::Other, RawTs::Int))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(RawTs::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawTs::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(RawTs::Other)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(RawTs::Text(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawTs::Text(std::borrow::Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RawTs::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(RawTs::Other)
    }
}

fn parse_text_timestamp(text: &str) -> Result<i64, BodyTimestampError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map_err(|_| {
            BodyTimestampError::Invalid(format!(
                "a {}-digit number is out of range for unix seconds",
                text.len()
            ))
        });
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            BodyTimestampError::Invalid(format!("{:?} is not RFC 3339: {e}", truncate(text)))
        })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dot_in_the_id_is_refused_on_both_sides() {
        let secrets = SecretSet::single("k").unwrap();
        let keys: Vec<_> = secrets.active_at(0).map(|(_, k)| k).collect();
        let msg = Message::new("evt.1700000000", 1_700_000_001, b"{}");
        assert!(matches!(
            sign_signed(&keys, &msg),
            Err(SignError::InvalidId { .. })
        ));

        // The signed bytes `evt.1700000000.1700000001.{}` read either as id
        // `evt.1700000000`, timestamp 1700000001, body `{}`, or as id `evt`,
        // timestamp 1700000000, body `1700000001.{}`. Only the second reading
        // is accepted ...
        let tag = tag_signed(keys[0], b"evt", b"1700000000", b"1700000001.{}");
        let mut headers = HeaderMap::new();
        headers.insert(NATIVE_TIMESTAMP_HEADER, HeaderValue::from(1_700_000_001));
        headers.insert(
            NATIVE_SIGNATURE_HEADER,
            signature_header(std::iter::once(tag)),
        );
        headers.insert(NATIVE_ID_HEADER, HeaderValue::from_static("evt.1700000000"));
        let err = verify_signed(&secrets, &headers, b"{}", 0).unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::MalformedHeader);
        assert!(err.to_string().contains("must not contain `.`"), "{err}");
        // ... and it verifies.
        headers.insert(NATIVE_ID_HEADER, HeaderValue::from_static("evt"));
        headers.insert(NATIVE_TIMESTAMP_HEADER, HeaderValue::from(1_700_000_000));
        assert!(verify_signed(&secrets, &headers, b"1700000001.{}", 0).is_ok());
    }

    #[test]
    fn negative_timestamps_are_not_signed() {
        let secrets = SecretSet::single("s").unwrap();
        let err = crate::Scheme::native()
            .sign(&secrets, &Message::new("evt_1", -5, b"{}"))
            .unwrap_err();
        assert_eq!(err, SignError::InvalidTimestamp { timestamp: -5 });
        let headers = crate::Scheme::native()
            .sign(&secrets, &Message::new("evt_1", 0, b"{}"))
            .unwrap();
        assert!(
            crate::Scheme::native()
                .verify_signature(&secrets, &headers, b"{}", 0)
                .is_ok()
        );
    }

    #[test]
    fn body_timestamp_forms() {
        assert_eq!(
            body_timestamp(br#"{"timestamp":"2025-01-15T10:30:00Z"}"#).unwrap(),
            1_736_937_000
        );
        assert_eq!(
            body_timestamp(br#"{"timestamp":1736937000}"#).unwrap(),
            1_736_937_000
        );
        assert_eq!(
            body_timestamp(br#"{"timestamp":"1736937000"}"#).unwrap(),
            1_736_937_000
        );
        assert!(matches!(
            body_timestamp(br#"{"event":"x"}"#),
            Err(BodyTimestampError::Absent(_))
        ));
        assert!(matches!(
            body_timestamp(br#" {"event":"x","data":{"timestamp":1}} "#),
            Err(BodyTimestampError::Absent(_))
        ));
        // Only a valid JSON object without the field means "no timestamp".
        for body in [
            &b"not json"[..],
            b"",
            b"[1736937000]",
            br#""{\"timestamp\":1}""#,
            b"null",
            br#"{"timestamp":null}"#,
            br#"{"timestamp":1736937000,"timestamp":1736937000}"#,
            br#"{"timestamp":1,"time\u0073tamp":2}"#,
            br#"{"event":"x"} trailing"#,
            br#"{"event":"x"}{"timestamp":1}"#,
            br#"{"event":"x""#,
        ] {
            let got = body_timestamp(body);
            assert!(
                matches!(got, Err(BodyTimestampError::Invalid(_))),
                "{:?}: {got:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            body_timestamp(br#"{"timestamp":1.5}"#),
            Err(BodyTimestampError::Invalid(_))
        ));
        assert!(matches!(
            body_timestamp(br#"{"timestamp":"yesterday"}"#),
            Err(BodyTimestampError::Invalid(_))
        ));
        assert!(matches!(
            body_timestamp(br#"{"timestamp":123456789012345678901234}"#),
            Err(BodyTimestampError::Invalid(_))
        ));
    }
}
