//! Errors: configuration mistakes and run-time verification failures.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// A mistake in how the crate was set up: found when a layer or secret set is
/// built, never at request time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A secret set was built from an empty list.
    #[error("no secrets given: a receiver needs at least one active secret")]
    NoSecrets,
    /// A secret could not be used as given.
    #[error("invalid secret: {reason}")]
    InvalidSecret {
        /// What was wrong (never the secret itself).
        reason: String,
    },
    /// A limit or window setting is out of range.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The name of the setting.
        setting: &'static str,
        /// What was wrong with it and what is allowed.
        reason: String,
    },
    /// A scheme name that this crate does not know.
    #[error("unknown scheme `{name}`; known schemes: {known}")]
    UnknownScheme {
        /// The name that was given.
        name: String,
        /// The names that are accepted.
        known: &'static str,
    },
}

/// The advice every signature mismatch ends with.
pub(crate) const CHECK_SECRET_AND_BODY: &str = "check that the secret is the one the sender uses \
     and that the body reaches the receiver unmodified";

/// Why a request was rejected. Stable and `Copy`; match on it to decide how to
/// react. New kinds may be added, hence `#[non_exhaustive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyErrorKind {
    /// A header the scheme needs is absent.
    MissingHeader,
    /// A header is present but cannot be parsed (bad prefix, not hex/base64,
    /// wrong length, duplicated, not a number, ...).
    MalformedHeader,
    /// No signature in the request matches any active secret.
    InvalidSignature,
    /// The signed timestamp is older than the replay window allows.
    TimestampTooOld,
    /// The signed timestamp is further in the future than the allowed clock skew.
    TimestampTooNew,
    /// Body-only mode: the signed body carries no usable `timestamp` field.
    MissingTimestamp,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body could not be read from the connection.
    BodyReadFailed,
}

impl VerifyErrorKind {
    /// Every kind, in [`index`](Self::index) order.
    pub(crate) const ALL: [Self; 8] = [
        Self::MissingHeader,
        Self::MalformedHeader,
        Self::InvalidSignature,
        Self::TimestampTooOld,
        Self::TimestampTooNew,
        Self::MissingTimestamp,
        Self::PayloadTooLarge,
        Self::BodyReadFailed,
    ];

    /// This kind's position in [`ALL`](Self::ALL) (a match, so a new kind
    /// cannot be forgotten here).
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::MissingHeader => 0,
            Self::MalformedHeader => 1,
            Self::InvalidSignature => 2,
            Self::TimestampTooOld => 3,
            Self::TimestampTooNew => 4,
            Self::MissingTimestamp => 5,
            Self::PayloadTooLarge => 6,
            Self::BodyReadFailed => 7,
        }
    }

    /// A short kebab-case name, used in logs and in the problem `type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing-header",
            Self::MalformedHeader => "malformed-header",
            Self::InvalidSignature => "invalid-signature",
            Self::TimestampTooOld => "timestamp-too-old",
            Self::TimestampTooNew => "timestamp-too-new",
            Self::MissingTimestamp => "missing-timestamp",
            Self::PayloadTooLarge => "payload-too-large",
            Self::BodyReadFailed => "body-read-failed",
        }
    }

    /// A short human title for the problem response.
    pub const fn title(self) -> &'static str {
        match self {
            Self::MissingHeader => "Webhook header missing",
            Self::MalformedHeader => "Webhook header malformed",
            Self::InvalidSignature => "Webhook signature invalid",
            Self::TimestampTooOld => "Webhook timestamp too old",
            Self::TimestampTooNew => "Webhook timestamp too far in the future",
            Self::MissingTimestamp => "Webhook body has no timestamp",
            Self::PayloadTooLarge => "Webhook payload too large",
            Self::BodyReadFailed => "Webhook body could not be read",
        }
    }

    /// The HTTP status this kind is answered with: 401 for authentication
    /// failures, 413 for size, 400 for a body that could not be read.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyReadFailed => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 9457 problem `type` URI: this kind's entry in the docs.
    pub const fn problem_type(self) -> &'static str {
        crate::problem::verify_error_type(self)
    }
}

impl fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request failed verification.
///
/// Opaque on purpose: read [`kind`](Self::kind) to branch and
/// [`Display`](fmt::Display) for a message that says what was wrong and how to
/// fix it. The message never contains a secret or the expected signature.
///
/// When [`VerifyLayer`](crate::VerifyLayer) rejects a request, a clone of this
/// error is put in the rejection response's extensions so outer layers can
/// read why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    kind: VerifyErrorKind,
    detail: Cow<'static, str>,
    receiver_detail: Option<Cow<'static, str>>,
}

impl VerifyError {
    pub(crate) fn new(kind: VerifyErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            receiver_detail: None,
        }
    }

    /// Adds what the receiver's own configuration contributed to the failure
    /// (how many secrets were active, whether public keys are set). It is
    /// logged, never answered: a caller must not learn the configuration.
    pub(crate) fn with_receiver_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.receiver_detail = Some(detail.into());
        self
    }

    pub(crate) fn missing_header(name: &'static str) -> Self {
        Self::new(
            VerifyErrorKind::MissingHeader,
            format!("the `{name}` header is missing"),
        )
    }

    pub(crate) fn malformed(name: &'static str, why: impl fmt::Display) -> Self {
        Self::new(
            VerifyErrorKind::MalformedHeader,
            format!("the `{name}` header is malformed: {why}"),
        )
    }

    /// No signature matched. The answer names only what the request carried;
    /// how many secrets were active goes to the receiver detail.
    pub(crate) fn invalid_signature(tried: usize, secrets: usize) -> Self {
        Self::new(
            VerifyErrorKind::InvalidSignature,
            format!(
                "none of the {tried} signature(s) in the request matches an active secret; {CHECK_SECRET_AND_BODY}"
            ),
        )
        .with_receiver_detail(format!("{secrets} active secret(s)"))
    }

    /// What went wrong, as a stable kind.
    pub fn kind(&self) -> VerifyErrorKind {
        self.kind
    }

    /// The human-readable explanation (the same text as `Display`): what was
    /// wrong with the request and what to check. It is what the default
    /// rejection answers, so it never depends on the receiver's
    /// configuration beyond what the request itself shows.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What the receiver's own configuration contributed, for the operator:
    /// for example `"2 active secret(s)"`, or that no ed25519 public key is
    /// set while the request carries `v1a` signatures.
    /// [`VerifyLayer`](crate::VerifyLayer) logs it at `debug` level and never
    /// puts it in a response; a custom
    /// [`on_rejection`](crate::VerifyLayer::on_rejection) should not either,
    /// since it tells an unauthenticated caller how the receiver is set up.
    pub fn receiver_detail(&self) -> Option<&str> {
        self.receiver_detail.as_deref()
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for VerifyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_sits_at_its_index() {
        for (i, kind) in VerifyErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind}");
        }
    }
}
