//! What is known about each scheme by name: the headers it needs, the headers
//! that give its requests away, and where its requests claim their time.
//! [`crate::diagnose`] reads these, so a new scheme is described here once.

use http::HeaderMap;

use super::{
    GITHUB_DELIVERY_HEADER, GITHUB_SIGNATURE_HEADER, NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER,
    NATIVE_TIMESTAMP_HEADER, SHOPIFY_EVENT_ID_HEADER, SHOPIFY_SIGNATURE_HEADER,
    SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER, STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER, STRIPE_SIGNATURE_HEADER, SVIX_ID_HEADER, SVIX_SIGNATURE_HEADER,
    SVIX_TIMESTAMP_HEADER, Scheme, SchemeName, body_timestamp,
};

impl SchemeName {
    /// Every scheme, in the order of [`SCHEME_NAMES`](super::SCHEME_NAMES).
    pub(crate) const ALL: [Self; 7] = [
        Self::Native,
        Self::NativeBodyOnly,
        Self::Standard,
        Self::GitHub,
        Self::Stripe,
        Self::Slack,
        Self::Shopify,
    ];

    /// Whether this is one of the crate's own two modes, which share their
    /// signature header.
    pub(crate) const fn is_native(self) -> bool {
        matches!(self, Self::Native | Self::NativeBodyOnly)
    }

    /// The headers a request of this scheme needs. Standard Webhooks needs
    /// the `svix-*` set when `headers` carries `svix-signature`, else the
    /// `webhook-*` set.
    pub(crate) fn required_headers(self, headers: &HeaderMap) -> &'static [&'static str] {
        match self {
            Self::Native => &[
                NATIVE_ID_HEADER,
                NATIVE_TIMESTAMP_HEADER,
                NATIVE_SIGNATURE_HEADER,
            ],
            Self::NativeBodyOnly => &[NATIVE_SIGNATURE_HEADER],
            Self::Standard if headers.contains_key(SVIX_SIGNATURE_HEADER) => {
                &[SVIX_ID_HEADER, SVIX_TIMESTAMP_HEADER, SVIX_SIGNATURE_HEADER]
            }
            Self::Standard => &[
                STANDARD_ID_HEADER,
                STANDARD_TIMESTAMP_HEADER,
                STANDARD_SIGNATURE_HEADER,
            ],
            Self::GitHub => &[GITHUB_SIGNATURE_HEADER],
            Self::Stripe => &[STRIPE_SIGNATURE_HEADER],
            Self::Slack => &[SLACK_TIMESTAMP_HEADER, SLACK_SIGNATURE_HEADER],
            Self::Shopify => &[SHOPIFY_SIGNATURE_HEADER],
        }
    }

    /// The headers that carry a request's delivery or event id, signed or
    /// not, in the order they are looked for.
    pub(crate) const fn id_headers(self) -> &'static [&'static str] {
        match self {
            Self::Native => &[NATIVE_ID_HEADER],
            Self::Standard => &[STANDARD_ID_HEADER, SVIX_ID_HEADER],
            Self::GitHub => &[GITHUB_DELIVERY_HEADER],
            Self::Shopify => &[SHOPIFY_EVENT_ID_HEADER],
            Self::NativeBodyOnly | Self::Stripe | Self::Slack => &[],
        }
    }

    /// The signature headers that mark a request as this scheme's, each
    /// with the name of the provider that sends it, for a request that
    /// [`fits`](Self::fits) the scheme.
    pub(crate) const fn identifying_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Native => &[(NATIVE_SIGNATURE_HEADER, "signed native")],
            Self::NativeBodyOnly => &[(NATIVE_SIGNATURE_HEADER, "body-only native")],
            Self::Standard => &[
                (STANDARD_SIGNATURE_HEADER, "Standard Webhooks"),
                (SVIX_SIGNATURE_HEADER, "Svix"),
            ],
            Self::GitHub => &[(GITHUB_SIGNATURE_HEADER, "GitHub")],
            Self::Stripe => &[(STRIPE_SIGNATURE_HEADER, "Stripe")],
            Self::Slack => &[(SLACK_SIGNATURE_HEADER, "Slack")],
            Self::Shopify => &[(SHOPIFY_SIGNATURE_HEADER, "Shopify")],
        }
    }

    /// Whether `headers` tell this scheme apart from another with the same
    /// signature header: the two native modes share theirs, and signed mode
    /// also has its id and timestamp headers.
    pub(crate) fn fits(self, headers: &HeaderMap) -> bool {
        let signed_native =
            headers.contains_key(NATIVE_ID_HEADER) && headers.contains_key(NATIVE_TIMESTAMP_HEADER);
        match self {
            Self::Native => signed_native,
            Self::NativeBodyOnly => !signed_native,
            _ => true,
        }
    }

    /// The timestamp a request of this scheme claims, read without checking
    /// its signature (`None` when it has none, or none that reads as unix
    /// seconds).
    pub(crate) fn claimed_timestamp(self, headers: &HeaderMap, body: &[u8]) -> Option<i64> {
        let header_seconds = |name: &str| -> Option<i64> {
            let text = headers.get(name)?.to_str().ok()?.trim();
            digits(text)
        };
        match self {
            Self::Native => header_seconds(NATIVE_TIMESTAMP_HEADER),
            Self::Standard => header_seconds(STANDARD_TIMESTAMP_HEADER)
                .or_else(|| header_seconds(SVIX_TIMESTAMP_HEADER)),
            Self::Slack => header_seconds(SLACK_TIMESTAMP_HEADER),
            Self::Stripe => {
                let value = headers.get(STRIPE_SIGNATURE_HEADER)?.to_str().ok()?;
                value
                    .split(',')
                    .find_map(|item| item.trim().strip_prefix("t="))
                    .and_then(digits)
            }
            // Read the way the scheme reads it, without building the body.
            Self::NativeBodyOnly => body_timestamp(body).ok(),
            Self::GitHub | Self::Shopify => None,
        }
    }
}

impl Scheme {
    /// The scheme named `name`, with its default settings.
    pub(crate) fn for_name(name: SchemeName) -> Self {
        match name {
            SchemeName::Native => Self::native(),
            SchemeName::NativeBodyOnly => Self::native_body_only(),
            SchemeName::Standard => Self::standard(),
            SchemeName::GitHub => Self::github(),
            SchemeName::Stripe => Self::stripe(),
            SchemeName::Slack => Self::slack(),
            SchemeName::Shopify => Self::shopify(),
        }
    }
}

/// Every [`SchemeName::as_str`] joined with `", "`, built at compile time
/// so the list cannot drift from [`SchemeName::ALL`].
pub(super) const NAME_LIST: &str = match std::str::from_utf8(&NAME_LIST_BYTES) {
    Ok(list) => list,
    Err(_) => panic!("scheme names are ASCII"),
};

const NAME_SEPARATOR: &[u8] = b", ";

const NAME_LIST_LEN: usize = {
    let mut len = 0;
    let mut i = 0;
    while i < SchemeName::ALL.len() {
        if i > 0 {
            len += NAME_SEPARATOR.len();
        }
        len += SchemeName::ALL[i].as_str().len();
        i += 1;
    }
    len
};

const NAME_LIST_BYTES: [u8; NAME_LIST_LEN] = {
    let mut out = [0u8; NAME_LIST_LEN];
    let mut at = 0;
    let mut i = 0;
    while i < SchemeName::ALL.len() {
        let piece: &[u8] = if i > 0 { NAME_SEPARATOR } else { b"" };
        let mut j = 0;
        while j < piece.len() {
            out[at] = piece[j];
            at += 1;
            j += 1;
        }
        let name = SchemeName::ALL[i].as_str().as_bytes();
        let mut j = 0;
        while j < name.len() {
            out[at] = name[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    out
};

/// `text` as a non-negative integer when it is ASCII digits only.
fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::SCHEME_NAMES;

    #[test]
    fn every_name_is_listed_and_builds_its_scheme() {
        let names: Vec<&str> = SchemeName::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(names.join(", "), SCHEME_NAMES);
        assert_eq!(
            SCHEME_NAMES,
            "native, native-body-only, standard, github, stripe, slack, shopify"
        );
        for name in SchemeName::ALL {
            assert_eq!(Scheme::for_name(name).name(), name);
            assert_eq!(Scheme::from_name(name.as_str()).unwrap().name(), name);
        }
        for (alias, name) in [
            (" SVIX ", SchemeName::Standard),
            ("standard-webhooks", SchemeName::Standard),
            ("standardwebhooks", SchemeName::Standard),
            ("body-only", SchemeName::NativeBodyOnly),
            ("Native_Body_Only", SchemeName::NativeBodyOnly),
        ] {
            assert_eq!(Scheme::from_name(alias).unwrap().name(), name, "{alias}");
        }
        assert!(Scheme::from_name("svix-webhooks").is_err());
    }
}
