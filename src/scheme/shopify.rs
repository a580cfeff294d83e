//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};

use super::{
    Message, SignatureMatch, TimestampSource, decode_b64_exact, find_match, hmac_tag,
    informational_id, required_text, signature_value,
};
use crate::error::VerifyError;
use crate::secret::{KeyedSecret, SecretSet};

/// Header carrying Shopify's base64 HMAC-SHA256 signature.
pub const SHOPIFY_SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";
/// Shopify's event id (not signed).
pub const SHOPIFY_EVENT_ID_HEADER: &str = "x-shopify-event-id";
/// Shopify's topic, such as `orders/create` (not signed).
pub const SHOPIFY_TOPIC_HEADER: &str = "x-shopify-topic";

pub(super) fn sign(key: &KeyedSecret, msg: &Message<'_>) -> HeaderMap {
    let tag = hmac_tag(key, &[msg.body]);
    let value = base64::engine::general_purpose::STANDARD.encode(tag);
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(SHOPIFY_SIGNATURE_HEADER, signature_value(value));
    if let Ok(id) = HeaderValue::from_str(msg.id) {
        headers.insert(SHOPIFY_EVENT_ID_HEADER, id);
    }
    headers
}

pub(super) fn verify(
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<SignatureMatch, VerifyError> {
    const NAME: &str = SHOPIFY_SIGNATURE_HEADER;
    let value = required_text(headers, NAME)?;
    if value.is_empty() {
        return Err(VerifyError::malformed(NAME, "the value is empty"));
    }
    let candidate = decode_b64_exact::<32>(NAME, "base64 HMAC-SHA256", value)?;
    let index = find_match(secrets, now, &[candidate], |k| hmac_tag(k, &[body]))?;
    let mut matched = SignatureMatch::hmac(None, None, TimestampSource::None, index);
    matched.delivery_id = informational_id(headers, SHOPIFY_EVENT_ID_HEADER);
    Ok(matched)
}
