//! Wire formats: how a signature travels in headers and what bytes it covers.
//!
//! A [`Scheme`] is a value: pick one with a constructor such as
//! [`Scheme::native`] or [`Scheme::native_body_only`]. Each scheme has
//! [`sign`](Scheme::sign) and [`verify_signature`](Scheme::verify_signature)
//! side by side, so a sender and a receiver built on this crate agree by
//! construction. Both are pure: no I/O, no clock (the caller passes "now").
//!
//! ```
//! use http::HeaderMap;
//! use webhook_guard::{Message, Scheme, SecretSet};
//!
//! let secrets = SecretSet::single("my-secret")?;
//! let scheme = Scheme::native();
//! let body = br#"{"event":"ingestion.completed"}"#;
//! let msg = Message::new("evt_1", 1_700_000_000, body);
//!
//! let headers: HeaderMap = scheme.sign(&secrets, &msg)?;
//! let matched = scheme.verify_signature(&secrets, &headers, body, 1_700_000_000)?;
//! assert_eq!(matched.id(), Some("evt_1"));
//! assert_eq!(matched.timestamp(), Some(1_700_000_000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod native;

use std::fmt;

use http::HeaderMap;

use crate::error::{ConfigError, VerifyError};
use crate::secret::SecretSet;

pub use native::{
    NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_SIGNATURE_PREFIX, NATIVE_TIMESTAMP_HEADER,
};

/// Most signatures accepted in one signature header; more is refused as
/// malformed so a request cannot make the receiver compare without bound.
pub const MAX_SIGNATURES_PER_HEADER: usize = 16;

/// The names of the wire formats, for logs, metrics and [`Verified`](crate::Verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemeName {
    /// `X-Webhook-Signature: sha256=<hex>` over `{id}.{timestamp}.{body}`.
    Native,
    /// `X-Webhook-Signature: sha256=<hex>` over the raw body only.
    NativeBodyOnly,
}

impl SchemeName {
    /// The name as used in configuration (`WEBHOOK_SCHEME`) and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::NativeBodyOnly => "native-body-only",
        }
    }
}

impl fmt::Display for SchemeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the timestamp that the replay window checks comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimestampSource {
    /// A signed header (native signed mode and most provider schemes).
    SignedHeader,
    /// The signed body's own `timestamp` field (native body-only mode).
    SignedBody,
    /// The request carried no signed timestamp: only idempotency protects
    /// against replays.
    None,
}

/// Where the id that deduplicates the event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdSource {
    /// An id header that the signature covers.
    SignedHeader,
    /// No signed id: the id is `sha256:` followed by the hex SHA-256 of the
    /// signed content, so an attacker cannot vary it.
    ContentHash,
}

/// The message a sender signs.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// A unique id for the event, kept across every delivery attempt.
    pub id: &'a str,
    /// Unix seconds at signing time.
    pub timestamp: i64,
    /// The exact body bytes that will be sent.
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    /// A message with this id, timestamp (unix seconds) and body.
    pub fn new(id: &'a str, timestamp: i64, body: &'a [u8]) -> Self {
        Self {
            id,
            timestamp,
            body,
        }
    }
}

/// What a successful signature check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureMatch {
    pub(crate) id: Option<String>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) timestamp_source: TimestampSource,
    pub(crate) secret_index: usize,
}

impl SignatureMatch {
    /// The signed id, when the scheme carries one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    /// The signed timestamp (unix seconds), when the scheme carries one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    /// Where [`timestamp`](Self::timestamp) came from.
    pub fn timestamp_source(&self) -> TimestampSource {
        self.timestamp_source
    }
    /// Index in the [`SecretSet`] of the secret that matched.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }
}

/// A failure to sign: the message cannot be expressed in the wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The id is empty, too long or has characters a header cannot carry
    /// unambiguously.
    #[error("invalid message id: {reason}")]
    InvalidId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The timestamp cannot be carried by the wire format (a negative unix
    /// time, which receivers refuse as malformed).
    #[error("invalid message timestamp {timestamp}: unix seconds must not be negative")]
    InvalidTimestamp {
        /// The message's timestamp.
        timestamp: i64,
    },
    /// No secret in the set is active at the message's timestamp.
    #[error("no secret in the set is active at timestamp {timestamp}")]
    NoActiveSecret {
        /// The message's timestamp.
        timestamp: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Native,
    NativeBodyOnly { require_timestamp: bool },
}

/// A webhook wire format. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    kind: Kind,
}

impl Default for Scheme {
    fn default() -> Self {
        Self::native()
    }
}

/// The names [`Scheme::from_name`] accepts.
pub const SCHEME_NAMES: &str = "native, native-body-only";

impl Scheme {
    /// The default: headers `X-Webhook-Id`, `X-Webhook-Timestamp` (unix
    /// seconds) and `X-Webhook-Signature: sha256=<hex>`, where the HMAC-SHA256
    /// covers `{id}.{timestamp}.{body}`. Id and timestamp are signed, so the
    /// replay window and deduplication rest on authenticated data.
    pub fn native() -> Self {
        Self { kind: Kind::Native }
    }

    /// Body-only mode, compatible with senders and receivers that run
    /// `createHmac('sha256', secret).update(body).digest('hex')`:
    /// `X-Webhook-Signature: sha256=<hex>` over the raw body.
    ///
    /// No header is signed, so the replay window checks the body's own
    /// `timestamp` field (RFC 3339 text or unix seconds). That is the time the
    /// **event** happened, not the time of this delivery attempt: the window
    /// must cover the sender's whole retry horizon (for the platform's default
    /// of retries after 1, 5 and 15 minutes, at least 25 minutes — say
    /// `Duration::from_secs(30 * 60)`), or late retries are refused.
    ///
    /// A body without a usable `timestamp` is refused unless
    /// [`allow_missing_timestamp`](Self::allow_missing_timestamp) is set.
    pub fn native_body_only() -> Self {
        Self {
            kind: Kind::NativeBodyOnly {
                require_timestamp: true,
            },
        }
    }

    /// Body-only mode: accept bodies that carry no `timestamp` field (or are
    /// not JSON). Such requests then have no replay protection except
    /// idempotency. A timestamp that *is* present is still checked. Has no
    /// effect on other schemes.
    #[must_use]
    pub fn allow_missing_timestamp(mut self) -> Self {
        if let Kind::NativeBodyOnly { require_timestamp } = &mut self.kind {
            *require_timestamp = false;
        }
        self
    }

    /// Looks a scheme up by its configuration name (see [`SCHEME_NAMES`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownScheme`] for any other name.
    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "native" => Ok(Self::native()),
            "native-body-only" | "native_body_only" | "body-only" => Ok(Self::native_body_only()),
            _ => Err(ConfigError::UnknownScheme {
                name: name.to_owned(),
                known: SCHEME_NAMES,
            }),
        }
    }

    /// This scheme's name.
    pub fn name(&self) -> SchemeName {
        match self.kind {
            Kind::Native => SchemeName::Native,
            Kind::NativeBodyOnly { .. } => SchemeName::NativeBodyOnly,
        }
    }

    /// Where the deduplication id of a verified request comes from.
    pub fn id_source(&self) -> IdSource {
        match self.kind {
            Kind::Native => IdSource::SignedHeader,
            Kind::NativeBodyOnly { .. } => IdSource::ContentHash,
        }
    }

    /// Signs `msg` with every secret of `secrets` that is active at the
    /// message's timestamp, and returns the headers to send with the body.
    ///
    /// Several active secrets (a rotation in progress) give several
    /// signatures in one header; a receiver holding either secret accepts.
    ///
    /// # Errors
    ///
    /// [`SignError`] when the id cannot be carried by the wire format or no
    /// secret is active.
    pub fn sign(&self, secrets: &SecretSet, msg: &Message<'_>) -> Result<HeaderMap, SignError> {
        let keys: Vec<_> = secrets.active_at(msg.timestamp).map(|(_, k)| k).collect();
        if keys.is_empty() {
            return Err(SignError::NoActiveSecret {
                timestamp: msg.timestamp,
            });
        }
        match self.kind {
            Kind::Native => native::sign_signed(&keys, msg),
            Kind::NativeBodyOnly { .. } => Ok(native::sign_body_only(&keys, msg)),
        }
    }

    /// Checks the request's signature against every secret active at `now`
    /// (unix seconds; only used for secret expiry), in constant time.
    ///
    /// This does **not** check the replay window; [`Verifier`](crate::Verifier)
    /// and [`VerifyLayer`](crate::VerifyLayer) do both.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] whose kind says what was missing, malformed or wrong.
    pub fn verify_signature(
        &self,
        secrets: &SecretSet,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<SignatureMatch, VerifyError> {
        match self.kind {
            Kind::Native => native::verify_signed(secrets, headers, body, now),
            Kind::NativeBodyOnly { require_timestamp } => {
                native::verify_body_only(secrets, headers, body, now, require_timestamp)
            }
        }
    }
}

/// Reads a header that must appear at most once.
///
/// `Ok(None)` when absent; an error when duplicated (two values make the
/// signed content ambiguous).
pub(crate) fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h [u8]>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::malformed(
            name,
            "the header appears more than once",
        ));
    }
    Ok(Some(first.as_bytes()))
}

/// Reads a header that must be present exactly once.
pub(crate) fn required_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<&'h [u8], VerifyError> {
    single_header(headers, name)?.ok_or_else(|| VerifyError::missing_header(name))
}

/// Checks an id before it is signed or accepted: 1 to 256 visible ASCII
/// characters, so it cannot blur into the `.`-separated signed content's
/// timestamp or smuggle bytes a log line would misrender.
pub(crate) fn validate_id(id: &[u8]) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("the id is empty");
    }
    if id.len() > 256 {
        return Err("the id is longer than 256 bytes");
    }
    if !id.iter().all(|b| b.is_ascii_graphic()) {
        return Err("the id must be visible ASCII (no spaces or control characters)");
    }
    Ok(())
}
