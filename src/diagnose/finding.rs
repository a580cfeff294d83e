//! What a diagnosis found, and why it left guesses out.

use std::fmt;

use super::time::write_outside_window;
use super::{BodyChange, SecretEncoding, TimestampUnit};
use crate::scheme::SchemeName;

/// One thing learned about why a request does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// A header the scheme needs is absent.
    MissingHeader {
        /// The header's name (lower case).
        header: &'static str,
    },
    /// The request carries the signature header of another scheme.
    LooksLikeOtherScheme {
        /// The scheme the headers belong to.
        scheme: SchemeName,
        /// The provider's name, such as `GitHub`.
        provider: &'static str,
        /// The header that gave it away.
        header: &'static str,
        /// Whether the request verifies with that scheme and the same secrets.
        verifies: bool,
    },
    /// The timestamp is outside the replay window.
    TimestampOutsideWindow {
        /// The timestamp as sent.
        timestamp: i64,
        /// The time of the check (unix seconds).
        now: i64,
        /// How old a timestamp may be, in seconds.
        tolerance: u64,
        /// How far in the future a timestamp may be, in seconds.
        future_skew: u64,
        /// The unit the value appears to be in.
        unit: TimestampUnit,
        /// Whether the signature itself is valid (then only the time is wrong).
        signature_verified: bool,
    },
    /// The signature matches the body after undoing these changes, in order:
    /// the body was changed between signing and checking.
    BodyChanged {
        /// What happened to the body after it was signed.
        changes: Vec<BodyChange>,
    },
    /// The signature matches when the secret is read another way.
    SecretEncoding {
        /// How the sender reads the secret.
        encoding: SecretEncoding,
    },
    /// The signature matches neither the body with any common change nor the
    /// secret read any other way.
    NoCauseFound,
    /// Nothing tried matched, but some guesses were left out to keep the
    /// diagnosis cheap (see the [module docs](crate::diagnose#cost)): the cause may be
    /// among them.
    GuessesSkipped {
        /// Why they were left out.
        reason: SkipReason,
    },
}

/// Why a diagnosis left some guesses out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// The body is larger than [`MAX_BODY_FOR_CHANGES`](super::MAX_BODY_FOR_CHANGES): no change to it was
    /// tried.
    BodyTooLarge {
        /// The body's length in bytes.
        len: usize,
        /// The largest body that is searched.
        limit: usize,
    },
    /// The guesses tried built and hashed [`GUESS_BUDGET`](super::GUESS_BUDGET) bytes: the rest
    /// were not tried.
    BudgetSpent {
        /// The budget, in bytes.
        budget: usize,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLarge { len, limit } => write!(
                f,
                "changes to the body after signing were not tried: the body is {len} bytes, \
                 more than the {limit} that are searched"
            ),
            Self::BudgetSpent { budget } => write!(
                f,
                "not every change to the body or reading of the secret was tried: \
                 together they would build and hash more than {budget} bytes"
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader { header } => write!(f, "the `{header}` header is missing"),
            Self::LooksLikeOtherScheme {
                scheme,
                provider,
                header,
                verifies,
            } => {
                write!(
                    f,
                    "this looks like a {provider} delivery (it carries `{header}`): use the `{scheme}` scheme"
                )?;
                if *verifies {
                    f.write_str("; the request verifies with it")?;
                }
                Ok(())
            }
            Self::TimestampOutsideWindow {
                timestamp,
                now,
                tolerance,
                future_skew,
                unit,
                signature_verified,
            } => {
                let limit = if now >= timestamp { tolerance } else { future_skew };
                write_outside_window(f, *timestamp, *now, *limit, *unit)?;
                if !signature_verified {
                    f.write_str(" (the signature does not verify either)")?;
                }
                Ok(())
            }
            Self::BodyChanged { changes } => {
                f.write_str("the signature matches the body as it was before it was changed: ")?;
                for (i, change) in changes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", and ")?;
                    }
                    write!(f, "{change}")?;
                }
                f.write_str(
                    "; verify the raw bytes exactly as received, before any parsing or re-encoding",
                )
            }
            Self::SecretEncoding { encoding } => write!(
                f,
                "the signature matches with the secret {encoding}: the sender reads the secret differently from this receiver"
            ),
            Self::NoCauseFound => f.write_str(
                "the signature matches no common change to the body and no other reading of the secret: \
                 most likely the secret differs from the sender's (a rotated, test-mode or other endpoint's secret), \
                 or the body was changed in another way",
            ),
            Self::GuessesSkipped { reason } => write!(
                f,
                "the signature matches nothing that was tried; {reason}"
            ),
        }
    }
}
