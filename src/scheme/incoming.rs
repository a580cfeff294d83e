//! What the provider schemes (GitHub, Stripe, Slack, Shopify) share when
//! they read and check a signature header, and when they write one.

use http::{HeaderMap, HeaderValue};

use super::{
    SignatureMatch, Tag, TimestampSource, decode_hex_tag, find_match, hmac_tag, informational_id,
    required_text, signature_value,
};
use crate::error::VerifyError;
use crate::secret::{KeyedSecret, SecretSet};

/// A request whose signature is being checked, with the secrets to check
/// it against and the time their expiry is judged at (unix seconds).
#[derive(Clone, Copy)]
pub(super) struct Incoming<'a> {
    pub(super) secrets: &'a SecretSet,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a [u8],
    pub(super) now: i64,
}

impl<'a> Incoming<'a> {
    /// The header `name`, present exactly once, as trimmed text.
    pub(super) fn text(&self, name: &'static str) -> Result<&'a str, VerifyError> {
        required_text(self.headers, name)
    }

    /// Checks `candidates` against the tag (`tag_of`) of each secret active
    /// now, over content that carries `timestamp`, read from a signed header
    /// (Stripe, Slack).
    pub(super) fn match_timestamped(
        &self,
        candidates: &[Tag],
        timestamp: i64,
        tag_of: impl Fn(&KeyedSecret) -> Tag,
    ) -> Result<SignatureMatch, VerifyError> {
        let index = find_match(self.secrets, self.now, candidates, tag_of)?;
        Ok(SignatureMatch::hmac(
            None,
            Some(timestamp),
            TimestampSource::SignedHeader,
            index,
        ))
    }

    /// Checks `candidate`, an HMAC over the body alone, and keeps the
    /// unsigned delivery id of `id_header` (GitHub, Shopify).
    pub(super) fn match_body_tag(
        &self,
        candidate: Tag,
        id_header: &'static str,
    ) -> Result<SignatureMatch, VerifyError> {
        let index = find_match(self.secrets, self.now, &[candidate], |k| {
            hmac_tag(k, &[self.body])
        })?;
        let mut matched = SignatureMatch::hmac(None, None, TimestampSource::None, index);
        matched.delivery_id = informational_id(self.headers, id_header);
        Ok(matched)
    }
}

/// The tag in `value`, the text of header `name`: `prefix` followed by 64
/// hex digits (GitHub's `sha256=`, Slack's `v0=`).
pub(super) fn prefixed_hex_tag(
    name: &'static str,
    value: &str,
    prefix: &str,
) -> Result<Tag, VerifyError> {
    let Some(hex_part) = value.strip_prefix(prefix) else {
        return Err(VerifyError::malformed(
            name,
            format!("expected `{prefix}` followed by 64 hex digits"),
        ));
    };
    decode_hex_tag(name, &format!("`{prefix}`"), hex_part)
}

/// The headers of a body-only signature: `name: value`, and the message id
/// under `id_header` when it can be a header value (GitHub, Shopify).
pub(super) fn body_signature_headers(
    name: &'static str,
    value: String,
    id_header: &'static str,
    id: &str,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(name, signature_value(value));
    if let Ok(id) = HeaderValue::from_str(id) {
        headers.insert(id_header, id);
    }
    headers
}
