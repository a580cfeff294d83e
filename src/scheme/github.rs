//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.

use http::HeaderMap;

use super::incoming::{Incoming, body_signature_headers, prefixed_hex_tag};
use super::{Message, SignatureMatch, hmac_tag};
use crate::error::VerifyError;
use crate::secret::KeyedSecret;

/// Header carrying GitHub's HMAC-SHA256 signature.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// GitHub's delivery GUID (not signed).
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// GitHub's event name, such as `push` (not signed).
pub const GITHUB_EVENT_HEADER: &str = "x-github-event";

pub(super) fn sign(key: &KeyedSecret, msg: &Message<'_>) -> HeaderMap {
    let tag = hmac_tag(key, &[msg.body]);
    let value = format!("sha256={}", hex::encode(tag));
    body_signature_headers(
        GITHUB_SIGNATURE_HEADER,
        value,
        GITHUB_DELIVERY_HEADER,
        msg.id,
    )
}

pub(super) fn verify(req: Incoming<'_>) -> Result<SignatureMatch, VerifyError> {
    const NAME: &str = GITHUB_SIGNATURE_HEADER;
    let candidate = prefixed_hex_tag(NAME, req.text(NAME)?, "sha256=")?;
    req.match_body_tag(candidate, GITHUB_DELIVERY_HEADER)
}
