//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body.

use base64::Engine as _;
use http::HeaderMap;

use super::incoming::{Incoming, body_signature_headers};
use super::{Message, SignatureMatch, decode_b64_exact, hmac_tag};
use crate::error::VerifyError;
use crate::secret::KeyedSecret;

/// Header carrying Shopify's base64 HMAC-SHA256 signature.
pub const SHOPIFY_SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";
/// Shopify's event id (not signed).
pub const SHOPIFY_EVENT_ID_HEADER: &str = "x-shopify-event-id";
/// Shopify's topic, such as `orders/create` (not signed).
pub const SHOPIFY_TOPIC_HEADER: &str = "x-shopify-topic";

pub(super) fn sign(key: &KeyedSecret, msg: &Message<'_>) -> HeaderMap {
    let tag = hmac_tag(key, &[msg.body]);
    let value = base64::engine::general_purpose::STANDARD.encode(tag);
    body_signature_headers(
        SHOPIFY_SIGNATURE_HEADER,
        value,
        SHOPIFY_EVENT_ID_HEADER,
        msg.id,
    )
}

pub(super) fn verify(req: Incoming<'_>) -> Result<SignatureMatch, VerifyError> {
    const NAME: &str = SHOPIFY_SIGNATURE_HEADER;
    let value = req.text(NAME)?;
    if value.is_empty() {
        return Err(VerifyError::malformed(NAME, "the value is empty"));
    }
    let candidate = decode_b64_exact::<32>(NAME, "base64 HMAC-SHA256", value)?;
    req.match_body_tag(candidate, SHOPIFY_EVENT_ID_HEADER)
}
