//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.

use http::{HeaderMap, HeaderValue};

use super::{
    Message, SignatureMatch, TimestampSource, decode_hex_tag, find_match, hmac_tag,
    informational_id, required_text, signature_value,
};
use crate::error::VerifyError;
use crate::secret::{KeyedSecret, SecretSet};

/// Header carrying GitHub's HMAC-SHA256 signature.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// GitHub's delivery GUID (not signed).
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// GitHub's event name, such as `push` (not signed).
pub const GITHUB_EVENT_HEADER: &str = "x-github-event";

pub(super) fn sign(key: &KeyedSecret, msg: &Message<'_>) -> HeaderMap {
    let tag = hmac_tag(key, &[msg.body]);
    let mut headers = HeaderMap::with_capacity(2);
    let value = format!("sha256={}", hex::encode(tag));
    headers.insert(GITHUB_SIGNATURE_HEADER, signature_value(value));
    if let Ok(id) = HeaderValue::from_str(msg.id) {
        headers.insert(GITHUB_DELIVERY_HEADER, id);
    }
    headers
}

pub(super) fn verify(
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<SignatureMatch, VerifyError> {
    const NAME: &str = GITHUB_SIGNATURE_HEADER;
    let value = required_text(headers, NAME)?;
    let Some(hex_part) = value.strip_prefix("sha256=") else {
        return Err(VerifyError::malformed(
            NAME,
            "expected `sha256=` followed by 64 hex digits",
        ));
    };
    let candidate = decode_hex_tag(NAME, "`sha256=`", hex_part)?;
    let index = find_match(secrets, now, &[candidate], |k| hmac_tag(k, &[body]))?;
    let mut matched = SignatureMatch::hmac(None, None, TimestampSource::None, index);
    matched.delivery_id = informational_id(headers, GITHUB_DELIVERY_HEADER);
    Ok(matched)
}
