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
        match self {
            Self::MissingHeader => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.MissingHeader"
            }
            Self::MalformedHeader => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.MalformedHeader"
            }
            Self::InvalidSignature => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.InvalidSignature"
            }
            Self::TimestampTooOld => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.TimestampTooOld"
            }
            Self::TimestampTooNew => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.TimestampTooNew"
            }
            Self::MissingTimestamp => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.MissingTimestamp"
            }
            Self::PayloadTooLarge => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.PayloadTooLarge"
            }
            Self::BodyReadFailed => {
                "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.BodyReadFailed"
            }
        }
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
}

impl VerifyError {
    pub(crate) fn new(kind: VerifyErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
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

    pub(crate) fn invalid_signature(tried: usize, secrets: usize) -> Self {
        Self::new(
            VerifyErrorKind::InvalidSignature,
            format!(
                "none of the {tried} signature(s) in the request matches any of the {secrets} active secret(s); \
                 check that the secret is the one the sender uses and that the body reaches the receiver unmodified"
            ),
        )
    }

    /// What went wrong, as a stable kind.
    pub fn kind(&self) -> VerifyErrorKind {
        self.kind
    }

    /// The human-readable explanation (the same text as `Display`).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for VerifyError {}
