//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`.

use http::{HeaderMap, HeaderValue};

use super::incoming::{Incoming, prefixed_hex_tag};
use super::{Message, SignatureMatch, hmac_tag, required_header, signature_value};
use crate::error::VerifyError;
use crate::replay::parse_unix_seconds;
use crate::secret::KeyedSecret;

/// Header carrying Slack's signature.
pub const SLACK_SIGNATURE_HEADER: &str = "x-slack-signature";
/// Header carrying the signed request timestamp (unix seconds).
pub const SLACK_TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

pub(super) fn sign(key: &KeyedSecret, msg: &Message<'_>) -> HeaderMap {
    let ts = msg.timestamp.to_string();
    let tag = hmac_tag(key, &[b"v0:", ts.as_bytes(), b":", msg.body]);
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(SLACK_TIMESTAMP_HEADER, HeaderValue::from(msg.timestamp));
    let value = format!("v0={}", hex::encode(tag));
    headers.insert(SLACK_SIGNATURE_HEADER, signature_value(value));
    headers
}

pub(super) fn verify(req: Incoming<'_>) -> Result<SignatureMatch, VerifyError> {
    const NAME: &str = SLACK_SIGNATURE_HEADER;
    let ts_raw = required_header(req.headers, SLACK_TIMESTAMP_HEADER)?;
    let timestamp = parse_unix_seconds(SLACK_TIMESTAMP_HEADER, ts_raw)?;
    let ts_raw = ts_raw.trim_ascii();
    let candidate = prefixed_hex_tag(NAME, req.text(NAME)?, "v0=")?;
    req.match_timestamped(&[candidate], timestamp, |k| {
        hmac_tag(k, &[b"v0:", ts_raw, b":", req.body])
    })
}
