//! Secrets read another way than the receiver reads them: base64 or hex
//! decoded, with or without the `whsec_` prefix.

use std::fmt;

use base64::Engine as _;

use super::budget::Budget;
use super::{Request, SkipReason};
use crate::scheme::Scheme;
use crate::secret::{Secret, SecretSet, WHSEC_PREFIX};

/// A way of reading a secret other than the one in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretEncoding {
    /// The secret text base64-decoded (after any `whsec_` prefix), as
    /// Standard Webhooks and Svix do, where this receiver uses its raw text.
    Base64Decoded,
    /// The text after the `whsec_` prefix used as raw bytes.
    WhsecPrefixStripped,
    /// The `whsec_<base64>` text itself used as raw bytes (as Stripe does),
    /// where this receiver decodes it.
    WhsecTextAsBytes,
    /// The base64 text without a prefix used as raw bytes, where this
    /// receiver decodes it.
    Base64TextAsBytes,
    /// The secret text hex-decoded, where this receiver uses its raw text.
    HexDecoded,
    /// The hex text used as raw bytes, where this receiver decodes it.
    HexTextAsBytes,
}

impl SecretEncoding {
    /// Every reading that is tried, in the order tried.
    pub const ALL: [Self; 6] = [
        Self::Base64Decoded,
        Self::WhsecPrefixStripped,
        Self::WhsecTextAsBytes,
        Self::Base64TextAsBytes,
        Self::HexDecoded,
        Self::HexTextAsBytes,
    ];

    /// The key bytes this reading gives for `secret`'s bytes, if it applies
    /// and differs from them.
    fn reread(self, bytes: &[u8]) -> Option<Vec<u8>> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        match self {
            Self::Base64Decoded => {
                let text = text?;
                let encoded = text.strip_prefix(WHSEC_PREFIX).unwrap_or(text);
                b64.decode(encoded).ok()
            }
            Self::WhsecPrefixStripped => text?
                .strip_prefix(WHSEC_PREFIX)
                .map(|rest| rest.as_bytes().to_vec()),
            Self::WhsecTextAsBytes => {
                Some(format!("{WHSEC_PREFIX}{}", b64.encode(bytes)).into_bytes())
            }
            Self::Base64TextAsBytes => Some(b64.encode(bytes).into_bytes()),
            Self::HexDecoded => hex::decode(text?).ok(),
            Self::HexTextAsBytes => Some(hex::encode(bytes).into_bytes()),
        }
        .filter(|key| !key.is_empty() && key != bytes)
    }
}

impl fmt::Display for SecretEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Base64Decoded => {
                "base64-decoded (after the `whsec_` prefix) instead of used as raw bytes"
            }
            Self::WhsecPrefixStripped => "used as raw bytes with the `whsec_` prefix stripped",
            Self::WhsecTextAsBytes => {
                "used as the raw bytes of its `whsec_...` text instead of base64-decoded"
            }
            Self::Base64TextAsBytes => {
                "used as the raw bytes of its base64 text (no `whsec_` prefix) instead of decoded"
            }
            Self::HexDecoded => "hex-decoded instead of used as raw bytes",
            Self::HexTextAsBytes => "used as the raw bytes of its hex text instead of hex-decoded",
        })
    }
}

/// The reading of a secret that makes the signature match.
///
/// # Errors
///
/// [`SkipReason::BudgetSpent`] when the budget ran out first.
pub(super) fn find_secret_encoding(
    scheme: &Scheme,
    request: &Request<'_>,
    budget: &mut Budget,
) -> Result<Option<SecretEncoding>, SkipReason> {
    for encoding in SecretEncoding::ALL {
        for secret in request.secrets.iter() {
            let Some(key) = encoding.reread(secret.expose_bytes()) else {
                continue;
            };
            let Ok(set) = SecretSet::single(Secret::new(key)) else {
                continue;
            };
            let checks = scheme.checks_per_verification(&set);
            budget.charge(request.body.len().saturating_mul(checks))?;
            if request.verifies(scheme, &set, request.body) {
                return Ok(Some(encoding));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereadings_give_other_key_bytes_or_nothing() {
        let reread = |encoding: SecretEncoding, bytes: &[u8]| encoding.reread(bytes);
        assert_eq!(
            reread(SecretEncoding::Base64Decoded, b"whsec_AAEC"),
            Some(vec![0, 1, 2])
        );
        assert_eq!(
            reread(SecretEncoding::WhsecPrefixStripped, b"whsec_AAEC"),
            Some(b"AAEC".to_vec())
        );
        assert_eq!(
            reread(SecretEncoding::WhsecTextAsBytes, &[0, 1, 2]),
            Some(b"whsec_AAEC".to_vec())
        );
        assert_eq!(
            reread(SecretEncoding::HexDecoded, b"0a0b"),
            Some(vec![10, 11])
        );
        assert_eq!(
            reread(SecretEncoding::HexTextAsBytes, &[10, 11]),
            Some(b"0a0b".to_vec())
        );
        // Not applicable: no prefix, not hex, nothing left.
        assert_eq!(reread(SecretEncoding::WhsecPrefixStripped, b"plain"), None);
        assert_eq!(reread(SecretEncoding::HexDecoded, b"not hex"), None);
        assert_eq!(reread(SecretEncoding::Base64Decoded, b"whsec_"), None);
    }
}
