//! Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>]` over `{t}.{body}`.

use http::HeaderMap;

use super::incoming::Incoming;
use super::{
    MAX_SIGNATURES_PER_HEADER, Message, SignatureMatch, decode_hex_tag, hmac_tag, signature_value,
};
use crate::error::VerifyError;
use crate::replay::parse_unix_seconds;
use crate::secret::KeyedSecret;

/// Header carrying Stripe's timestamp and signatures.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";

pub(super) fn sign(keys: &[&KeyedSecret], msg: &Message<'_>) -> HeaderMap {
    let ts = msg.timestamp.to_string();
    let mut value = format!("t={ts}");
    for key in keys {
        let tag = hmac_tag(key, &[ts.as_bytes(), b".", msg.body]);
        value.push_str(",v1=");
        value.push_str(&hex::encode(tag));
    }
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(STRIPE_SIGNATURE_HEADER, signature_value(value));
    headers
}

pub(super) fn verify(req: Incoming<'_>) -> Result<SignatureMatch, VerifyError> {
    const NAME: &str = STRIPE_SIGNATURE_HEADER;
    let value = req.text(NAME)?;
    let mut ts_raw: Option<&str> = None;
    let mut candidates = Vec::with_capacity(1);
    // Items are not trimmed: like Stripe's own libraries, a key such as
    // ` v1` (after `, `) is not `v1` and is ignored.
    for item in value.split(',') {
        if item.is_empty() {
            continue;
        }
        let Some((key, val)) = item.split_once('=') else {
            return Err(VerifyError::malformed(
                NAME,
                "each item must be `key=value` (`t=<unix seconds>` or `v1=<hex>`)",
            ));
        };
        match key {
            "t" if ts_raw.is_some() => {
                return Err(VerifyError::malformed(NAME, "`t=` appears more than once"));
            }
            "t" => ts_raw = Some(val),
            "v1" => {
                if candidates.len() == MAX_SIGNATURES_PER_HEADER {
                    return Err(VerifyError::malformed(
                        NAME,
                        format!("more than {MAX_SIGNATURES_PER_HEADER} `v1=` signatures"),
                    ));
                }
                candidates.push(decode_hex_tag(NAME, "`v1=`", val)?);
            }
            // Other schemes (`v0=` test-mode signatures, future versions) are ignored.
            _ => {}
        }
    }
    let Some(ts_raw) = ts_raw else {
        return Err(VerifyError::malformed(NAME, "no `t=` timestamp"));
    };
    let timestamp = parse_unix_seconds(NAME, ts_raw.as_bytes())?;
    if candidates.is_empty() {
        return Err(VerifyError::malformed(
            NAME,
            "no `v1=` signature (other schemes such as `v0=` are not accepted)",
        ));
    }
    req.match_timestamped(&candidates, timestamp, |k| {
        hmac_tag(k, &[ts_raw.as_bytes(), b".", req.body])
    })
}
