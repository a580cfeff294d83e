//! Wire formats: how a signature travels in headers and what bytes it covers.
//!
//! A [`Scheme`] is a value: pick one with a constructor such as
//! [`Scheme::native`], [`Scheme::standard`] or [`Scheme::github`]. Each scheme
//! has [`sign`](Scheme::sign) and [`verify_signature`](Scheme::verify_signature)
//! side by side, so a sender and a receiver built on this crate agree by
//! construction. Both are pure: no I/O, no clock (the caller passes "now").
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
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
//!
//! # One layer per provider
//!
//! Every scheme plugs into the same [`VerifyLayer`](crate::VerifyLayer);
//! only the constructor and the way the secret is read change. Key rotation
//! works the same everywhere: put the old and the new secret in the
//! [`SecretSet`] (optionally with [`Secret::expires_at`] on the old one) and
//! watch [`Verified::secret_index`](crate::Verified::secret_index).
//!
//! **Standard Webhooks / Svix** — secrets are `whsec_<base64>`; the text as
//! the provider prints it works (`SecretSet::single("whsec_...")`), or let the
//! scheme decode them:
//!
//! ```
//! use webhook_guard::{Scheme, SecretSet, VerifyLayer};
//!
//! let scheme = Scheme::standard();
//! let secret = scheme.parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let layer = VerifyLayer::new(SecretSet::single(secret)?).scheme(scheme);
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```
//!
//! **GitHub** — no signed timestamp, so add the idempotency layer for
//! replays; the event name is in `X-GitHub-Event`:
//!
//! ```
//! use http::HeaderMap;
//! use webhook_guard::{Scheme, SecretSet};
//!
//! // The example from GitHub's documentation.
//! let secrets = SecretSet::single("It's a Secret to Everybody")?;
//! let mut headers = HeaderMap::new();
//! headers.insert(
//!     "x-hub-signature-256",
//!     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".parse()?,
//! );
//! let matched = Scheme::github().verify_signature(&secrets, &headers, b"Hello, World!", 0)?;
//! assert_eq!(matched.timestamp(), None); // GitHub signs no timestamp
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Stripe** — the key is the `whsec_...` string itself, not decoded:
//!
//! ```
//! use webhook_guard::{Scheme, SecretSet, VerifyLayer};
//!
//! let scheme = Scheme::stripe();
//! let secret = scheme.parse_secret("whsec_test_secret")?; // the string's bytes
//! let layer = VerifyLayer::new(SecretSet::single(secret)?).scheme(scheme);
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```
//!
//! **Slack** — the signing secret from the app's "Basic Information" page:
//!
//! ```
//! use webhook_guard::{Scheme, SecretSet, VerifyLayer};
//!
//! let layer = VerifyLayer::new(SecretSet::single("8f742231b10e8888abcd99yyyzzz85a5")?)
//!     .scheme(Scheme::slack());
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```
//!
//! **Shopify** — the app's client secret; no signed timestamp (use the
//! idempotency layer):
//!
//! ```
//! use webhook_guard::{Scheme, SecretSet, VerifyLayer};
//!
//! let layer = VerifyLayer::new(SecretSet::single("shpss_client_secret")?)
//!     .scheme(Scheme::shopify());
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```
//!
//! **The platform's own body-only signatures** (`createHmac('sha256',
//! secret).update(body).digest('hex')`) — widen the window to the sender's
//! retry horizon, since the checked timestamp is the event's:
//!
//! ```
//! use std::time::Duration;
//! use webhook_guard::{Scheme, SecretSet, VerifyLayer};
//!
//! let layer = VerifyLayer::new(SecretSet::single("my-secret")?)
//!     .scheme(Scheme::native_body_only())
//!     .tolerance(Duration::from_secs(30 * 60));
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```

mod facts;
mod github;
mod incoming;
mod native;
mod shopify;
mod slack;
mod standard;
mod stripe;

use std::fmt;

use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, VerifyError};
use crate::secret::{KeyedSecret, Secret, SecretSet};
use incoming::Incoming;

pub use github::{GITHUB_DELIVERY_HEADER, GITHUB_EVENT_HEADER, GITHUB_SIGNATURE_HEADER};
pub(crate) use native::body_timestamp;
pub use native::{
    NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_SIGNATURE_PREFIX, NATIVE_TIMESTAMP_HEADER,
};
pub use shopify::{SHOPIFY_EVENT_ID_HEADER, SHOPIFY_SIGNATURE_HEADER, SHOPIFY_TOPIC_HEADER};
pub use slack::{SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER};
pub use standard::{
    ALWAYS_CHECKED_V1A_SIGNATURES, MAX_ED25519_CHECKS, STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER, STANDARD_TIMESTAMP_HEADER, SVIX_ID_HEADER, SVIX_SIGNATURE_HEADER,
    SVIX_TIMESTAMP_HEADER,
};
#[cfg(feature = "ed25519")]
pub use standard::{Ed25519PublicKey, Ed25519SigningKey, WHPK_PREFIX, WHSK_PREFIX};
pub use stripe::STRIPE_SIGNATURE_HEADER;

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
    /// Standard Webhooks / Svix: `webhook-signature: v1,<base64>` over
    /// `{id}.{timestamp}.{body}`.
    Standard,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body.
    GitHub,
    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>` over `{t}.{body}`.
    Stripe,
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`.
    Slack,
    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
}

impl SchemeName {
    /// The name as used in configuration (`WEBHOOK_SCHEME`) and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::NativeBodyOnly => "native-body-only",
            Self::Standard => "standard",
            Self::GitHub => "github",
            Self::Stripe => "stripe",
            Self::Slack => "slack",
            Self::Shopify => "shopify",
        }
    }
}

impl fmt::Display for SchemeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a configuration name: any [`as_str`](SchemeName::as_str), in any
/// case and with surrounding spaces, and the aliases `svix`,
/// `standard-webhooks` and `standardwebhooks` (for `standard`),
/// `native_body_only` and `body-only` (for `native-body-only`).
///
/// ```
/// use webhook_guard::SchemeName;
///
/// assert_eq!("Svix".parse::<SchemeName>().unwrap(), SchemeName::Standard);
/// assert!("svix-webhooks".parse::<SchemeName>().is_err());
/// ```
impl std::str::FromStr for SchemeName {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Self, ConfigError> {
        let lower = name.trim().to_ascii_lowercase();
        let canonical = match lower.as_str() {
            "native_body_only" | "body-only" => "native-body-only",
            "standard-webhooks" | "standardwebhooks" | "svix" => "standard",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|known| known.as_str() == canonical)
            .ok_or_else(|| ConfigError::UnknownScheme {
                name: name.to_owned(),
                known: SCHEME_NAMES,
            })
    }
}

/// Serializes as [`as_str`](SchemeName::as_str).
impl serde::Serialize for SchemeName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Reads what [`FromStr`](std::str::FromStr) reads.
impl<'de> serde::Deserialize<'de> for SchemeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the timestamp that the replay window checks comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimestampSource {
    /// A signed header (native signed mode, Standard Webhooks, Stripe, Slack).
    SignedHeader,
    /// The signed body's own `timestamp` field (native body-only mode).
    SignedBody,
    /// The request carried no signed timestamp (GitHub, Shopify): only the
    /// idempotency layer protects against replays.
    None,
}

/// Where the id that deduplicates the event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdSource {
    /// An id header that the signature covers.
    SignedHeader,
    /// No signed id: the id is `sha256:` followed by the hex SHA-256 of the
    /// signed body, so an attacker cannot vary it.
    ContentHash,
}

/// The algorithm of the signature that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    HmacSha256,
    /// Ed25519 with a public key (Standard Webhooks `v1a`).
    Ed25519,
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
    pub(crate) algorithm: SignatureAlgorithm,
    pub(crate) delivery_id: Option<String>,
}

impl SignatureMatch {
    /// A match of an `algorithm` signature made with key `secret_index`
    /// (in the [`SecretSet`](crate::SecretSet) for HMAC, in the scheme's
    /// public keys for Ed25519).
    fn new(
        algorithm: SignatureAlgorithm,
        id: Option<String>,
        timestamp: Option<i64>,
        timestamp_source: TimestampSource,
        secret_index: usize,
    ) -> Self {
        Self {
            id,
            timestamp,
            timestamp_source,
            secret_index,
            algorithm,
            delivery_id: None,
        }
    }

    /// A match of an HMAC-SHA256 signature, the schemes' common case.
    fn hmac(
        id: Option<String>,
        timestamp: Option<i64>,
        timestamp_source: TimestampSource,
        secret_index: usize,
    ) -> Self {
        let algorithm = SignatureAlgorithm::HmacSha256;
        Self::new(algorithm, id, timestamp, timestamp_source, secret_index)
    }

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
    /// Index of the key that matched: in the [`SecretSet`] for HMAC
    /// signatures, in the scheme's public keys for Ed25519 ones.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }
    /// The algorithm of the signature that matched.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
    /// The provider's own delivery id (`X-GitHub-Delivery`,
    /// `X-Shopify-Event-Id`) when the scheme has no signed id. **Not
    /// signed**: good for logs and support tickets, never for deduplication.
    pub fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_deref()
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
    /// No secret in the set (and no signing key) is active at the message's
    /// timestamp.
    #[error("no secret in the set is active at timestamp {timestamp}")]
    NoActiveSecret {
        /// The message's timestamp.
        timestamp: i64,
    },
    /// The timestamp cannot be carried by the wire format (negative).
    #[error("timestamp {timestamp} cannot be signed: unix seconds must not be negative")]
    InvalidTimestamp {
        /// The message's timestamp.
        timestamp: i64,
    },
}

#[derive(Clone)]
enum Kind {
    Native,
    NativeBodyOnly { require_timestamp: bool },
    Standard(Box<standard::StandardKeys>),
    GitHub,
    Stripe,
    Slack,
    Shopify,
}

/// A webhook wire format. Cheap to clone.
///
/// | constructor | headers | signed content | timestamp | id |
/// |---|---|---|---|---|
/// | [`native`](Self::native) | `X-Webhook-Id`, `X-Webhook-Timestamp`, `X-Webhook-Signature: sha256=<hex>` | `{id}.{ts}.{body}` | signed header | signed header |
/// | [`native_body_only`](Self::native_body_only) | `X-Webhook-Signature: sha256=<hex>` | `{body}` | body `timestamp` field | body hash |
/// | [`standard`](Self::standard) | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64>` (or `svix-*`) | `{id}.{ts}.{body}` | signed header | signed header |
/// | [`github`](Self::github) | `X-Hub-Signature-256: sha256=<hex>` | `{body}` | none | body hash |
/// | [`stripe`](Self::stripe) | `Stripe-Signature: t=<ts>,v1=<hex>` | `{t}.{body}` | signed header | body hash |
/// | [`slack`](Self::slack) | `X-Slack-Signature: v0=<hex>`, `X-Slack-Request-Timestamp` | `v0:{ts}:{body}` | signed header | body hash |
/// | [`shopify`](Self::shopify) | `X-Shopify-Hmac-Sha256: <b64>` | `{body}` | none | body hash |
#[derive(Clone)]
pub struct Scheme {
    kind: Kind,
}

impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Scheme");
        d.field("name", &self.name());
        match &self.kind {
            Kind::NativeBodyOnly { require_timestamp } => {
                d.field("require_timestamp", require_timestamp);
            }
            Kind::Standard(keys) => {
                d.field("keys", keys);
            }
            _ => {}
        }
        d.finish()
    }
}

impl Default for Scheme {
    fn default() -> Self {
        Self::native()
    }
}

/// The names [`Scheme::from_name`] accepts, comma separated (`svix` and
/// `standard-webhooks` are accepted as aliases of `standard`): every
/// [`SchemeName::as_str`], in declaration order.
pub const SCHEME_NAMES: &str = facts::NAME_LIST;

impl Scheme {
    /// The default: headers `X-Webhook-Id`, `X-Webhook-Timestamp` (unix
    /// seconds) and `X-Webhook-Signature: sha256=<hex>`, where the HMAC-SHA256
    /// covers `{id}.{timestamp}.{body}`. Id and timestamp are signed, so the
    /// replay window and deduplication rest on authenticated data. The id is
    /// 1 to 256 visible ASCII characters other than `.`, so the signed content
    /// splits into its parts in exactly one way.
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

    /// [Standard Webhooks](https://www.standardwebhooks.com/) (and Svix):
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>`
    /// (several, space separated), where the HMAC-SHA256 covers
    /// `{id}.{timestamp}.{body}`. The `svix-id`, `svix-timestamp` and
    /// `svix-signature` headers are accepted too.
    ///
    /// Secrets are handed out as `whsec_<base64>` and the key is the decoded
    /// base64. Give the text as it is (`SecretSet::single("whsec_...")`,
    /// `NewDestination::new(url, "whsec_...")`): under this scheme a text
    /// secret starting with `whsec_` is read that way (see
    /// [`Scheme::read_secret`]). [`Secret::from_whsec`] and
    /// [`Scheme::parse_secret`] decode it explicitly. With the `ed25519` feature, `v1a,<base64>` signatures are
    /// verified against the keys given to `Scheme::with_public_keys`.
    pub fn standard() -> Self {
        Self {
            kind: Kind::Standard(Box::default()),
        }
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    ///
    /// GitHub signs **no timestamp**, so no replay window applies: a captured
    /// delivery stays valid forever. Put the idempotency layer after the
    /// verify layer; the dedup id is the SHA-256 of the signed body (the
    /// `X-GitHub-Delivery` header is not signed and is only reported as
    /// [`Verified::delivery_id`](crate::Verified::delivery_id)). The event
    /// name is in the unsigned `X-GitHub-Event` header.
    pub fn github() -> Self {
        Self { kind: Kind::GitHub }
    }

    /// Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
    /// where the HMAC-SHA256 covers `{t}.{body}`. Every `v1` is tried; other
    /// schemes such as `v0` are ignored. The key is the bytes of the secret
    /// string as shown in the dashboard (`whsec_...` is **not** decoded).
    pub fn stripe() -> Self {
        Self { kind: Kind::Stripe }
    }

    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`, with
    /// the timestamp in `X-Slack-Request-Timestamp`. The key is the signing
    /// secret string's bytes.
    pub fn slack() -> Self {
        Self { kind: Kind::Slack }
    }

    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body, keyed with
    /// the app's client secret string.
    ///
    /// Shopify signs **no timestamp**: rely on the idempotency layer for
    /// replays. The dedup id is the SHA-256 of the signed body;
    /// `X-Shopify-Event-Id` is unsigned and only reported as
    /// [`Verified::delivery_id`](crate::Verified::delivery_id).
    pub fn shopify() -> Self {
        Self {
            kind: Kind::Shopify,
        }
    }

    /// Body-only mode: accept a body that is a JSON object without a
    /// top-level `timestamp` field. Such requests then have no replay
    /// protection except idempotency. Has no effect on other schemes.
    ///
    /// Everything else is still refused as an unusable timestamp
    /// ([`VerifyErrorKind::MissingTimestamp`](crate::VerifyErrorKind::MissingTimestamp)):
    /// a `timestamp` that is present but not a valid time (`null` too) is
    /// checked as usual, and a body that is not exactly one valid JSON object
    /// (not JSON, another JSON value, trailing bytes after the object) or
    /// that has the `timestamp` key twice is never taken as "no timestamp",
    /// since another JSON parser might read a timestamp from it.
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
        name.parse().map(Self::for_name)
    }

    /// This scheme's name.
    pub fn name(&self) -> SchemeName {
        match self.kind {
            Kind::Native => SchemeName::Native,
            Kind::NativeBodyOnly { .. } => SchemeName::NativeBodyOnly,
            Kind::Standard(_) => SchemeName::Standard,
            Kind::GitHub => SchemeName::GitHub,
            Kind::Stripe => SchemeName::Stripe,
            Kind::Slack => SchemeName::Slack,
            Kind::Shopify => SchemeName::Shopify,
        }
    }

    /// The bytes of the ed25519 public keys (Standard Webhooks `v1a`), in
    /// the order of [`SignatureMatch::secret_index`]; empty for other schemes.
    pub(crate) fn ed25519_public_key_bytes(&self) -> Vec<[u8; 32]> {
        match &self.kind {
            Kind::Standard(keys) => keys.public_key_bytes(),
            _ => Vec::new(),
        }
    }

    /// The labels of the ed25519 public keys, in the order of
    /// [`SignatureMatch::secret_index`]; empty for other schemes.
    pub(crate) fn ed25519_key_labels(&self) -> Vec<Option<&str>> {
        match &self.kind {
            Kind::Standard(keys) => keys.public_key_labels(),
            _ => Vec::new(),
        }
    }

    /// Where the deduplication id of a verified request comes from.
    pub fn id_source(&self) -> IdSource {
        match self.kind {
            Kind::Native | Kind::Standard(_) => IdSource::SignedHeader,
            _ => IdSource::ContentHash,
        }
    }

    /// Whether requests of this scheme carry a signed timestamp, so that the
    /// replay window applies (body-only mode: when the body has one).
    pub fn has_signed_timestamp(&self) -> bool {
        !matches!(self.kind, Kind::GitHub | Kind::Shopify)
    }

    /// Turns a secret as a platform hands it out into key bytes, the way this
    /// scheme's own libraries do: Standard Webhooks decodes `whsec_<base64>`
    /// (the prefix is optional here, as in those libraries); every other
    /// scheme uses the string's bytes as they are. The result is key bytes
    /// ([`Secret::is_text`] is `false`), used as they are under any scheme.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecret`] when a Standard Webhooks secret is not
    /// valid base64, or any secret is empty.
    pub fn parse_secret(&self, text: &str) -> Result<Secret, ConfigError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ConfigError::InvalidSecret {
                reason: "the secret is empty".into(),
            });
        }
        match self.kind {
            Kind::Standard(_) => Secret::from_whsec(text),
            // The key, as bytes: no other scheme reads it again.
            _ => Ok(Secret::new(text.as_bytes())),
        }
    }

    /// The key bytes a sender signs with for `secret` under this scheme.
    ///
    /// A secret given as bytes is returned as it is. A secret given as text
    /// is read the way the scheme's providers print it: under
    /// [`standard`](Self::standard), `whsec_<base64>` becomes the decoded
    /// bytes (what the Standard Webhooks and Svix libraries verify with);
    /// under every other scheme the text's bytes are the key (Stripe's
    /// `whsec_...` included). The expiry is kept.
    ///
    /// ```
    /// use webhook_guard::{Scheme, Secret};
    ///
    /// let key = Scheme::standard().read_secret(Secret::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))?;
    /// assert_eq!(key.expose_bytes().len(), 24);
    /// let key = Scheme::stripe().read_secret(Secret::from("whsec_test_secret"))?;
    /// assert_eq!(key.expose_bytes(), b"whsec_test_secret");
    /// # Ok::<(), webhook_guard::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecret`] under the standard scheme for text
    /// that is not `whsec_` followed by base64: the message says where the
    /// text goes wrong (never what it holds) and how to pass the key instead.
    pub fn read_secret(&self, secret: Secret) -> Result<Secret, ConfigError> {
        if !secret.is_text() || !matches!(self.kind, Kind::Standard(_)) {
            return Ok(secret);
        }
        match secret.decode_whsec_text() {
            Some(Ok(decoded)) => Ok(decoded),
            Some(Err(ConfigError::InvalidSecret { reason })) => Err(ConfigError::InvalidSecret {
                reason: format!(
                    "{reason}; the standard scheme reads a text secret as `whsec_` followed by the base64 of the key, \
                     as Svix and Standard Webhooks print it; to sign with the text's own bytes instead, \
                     pass them as bytes (`Secret::new(text.as_bytes())`)"
                ),
            }),
            Some(Err(other)) => Err(other),
            None => Err(ConfigError::InvalidSecret {
                reason: "the standard scheme reads a text secret as `whsec_` followed by the base64 of the key, \
                         and this one has no `whsec_` prefix; if it is the base64 of the key, add the prefix \
                         (or use `Secret::from_whsec`); to sign with the text's own bytes, pass them as bytes \
                         (`Secret::new(text.as_bytes())`)"
                    .into(),
            }),
        }
    }

    /// Signs `msg` with every secret of `secrets` that is active at the
    /// message's timestamp, and returns the headers to send with the body.
    ///
    /// Native and Standard Webhooks carry several signatures in one header, so
    /// during a rotation both the old and the new secret sign and a receiver
    /// holding either accepts. GitHub, Stripe (one `v1` per secret), Slack and
    /// Shopify follow their providers' formats; GitHub, Slack and Shopify
    /// carry one signature, made with the first active secret.
    ///
    /// # Errors
    ///
    /// [`SignError`] when the id or timestamp cannot be carried by the wire
    /// format or no secret is active.
    pub fn sign(&self, secrets: &SecretSet, msg: &Message<'_>) -> Result<HeaderMap, SignError> {
        let keys: Vec<_> = secrets.active_at(msg.timestamp).map(|(_, k)| k).collect();
        let has_signing_key = matches!(&self.kind, Kind::Standard(k) if k.can_sign());
        if keys.is_empty() && !has_signing_key {
            return Err(SignError::NoActiveSecret {
                timestamp: msg.timestamp,
            });
        }
        // Only schemes that send the timestamp need it to be expressible as
        // unix seconds; for the others it only decides which secrets are active.
        let sends_timestamp = matches!(
            self.kind,
            Kind::Native | Kind::Standard(_) | Kind::Stripe | Kind::Slack
        );
        if sends_timestamp && msg.timestamp < 0 {
            return Err(SignError::InvalidTimestamp {
                timestamp: msg.timestamp,
            });
        }
        match &self.kind {
            Kind::Native => native::sign_signed(&keys, msg),
            Kind::NativeBodyOnly { .. } => Ok(native::sign_body_only(&keys, msg)),
            Kind::Standard(std_keys) => standard::sign(std_keys, &keys, msg),
            Kind::GitHub => Ok(github::sign(keys[0], msg)),
            Kind::Stripe => Ok(stripe::sign(&keys, msg)),
            Kind::Slack => Ok(slack::sign(keys[0], msg)),
            Kind::Shopify => Ok(shopify::sign(keys[0], msg)),
        }
    }

    /// How many times one verification with `secrets` may hash the signed
    /// content at most: once per secret, plus the most `v1a` checks of a
    /// Standard Webhooks scheme with public keys.
    pub(crate) fn checks_per_verification(&self, secrets: &SecretSet) -> usize {
        let public_keys = match &self.kind {
            Kind::Standard(keys) => keys.public_key_count(),
            _ => 0,
        };
        let ed25519_checks = if public_keys == 0 {
            0
        } else {
            (public_keys * ALWAYS_CHECKED_V1A_SIGNATURES).max(MAX_ED25519_CHECKS)
        };
        secrets.len() + ed25519_checks
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
        let incoming = Incoming {
            secrets,
            headers,
            body,
            now,
        };
        match &self.kind {
            Kind::Native => native::verify_signed(secrets, headers, body, now),
            Kind::NativeBodyOnly { require_timestamp } => {
                native::verify_body_only(secrets, headers, body, now, *require_timestamp)
            }
            Kind::Standard(keys) => standard::verify(keys, secrets, headers, body, now),
            Kind::GitHub => github::verify(incoming),
            Kind::Stripe => stripe::verify(incoming),
            Kind::Slack => slack::verify(incoming),
            Kind::Shopify => shopify::verify(incoming),
        }
    }
}

/// A header value made of the characters signatures are written in (hex,
/// base64, `=`, `,`, spaces and `t=`/`v1=` labels), which are always valid.
pub(crate) fn signature_value(text: String) -> http::HeaderValue {
    http::HeaderValue::try_from(text).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// An HMAC-SHA256 tag.
pub(crate) type Tag = [u8; 32];

/// HMAC-SHA256 over the concatenation of `parts`, from the precomputed state
/// keyed with the secret's bytes as they are, without building the
/// concatenation.
pub(crate) fn hmac_tag(key: &KeyedSecret, parts: &[&[u8]]) -> Tag {
    key.bytes_state().tag(parts)
}

/// Compares every candidate with every active secret's tag, each comparison
/// in constant time; returns the matching secret's index.
pub(crate) fn find_match(
    secrets: &SecretSet,
    now: i64,
    candidates: &[Tag],
    tag_of: impl Fn(&KeyedSecret) -> Tag,
) -> Result<usize, VerifyError> {
    let mut active = 0;
    for (index, key) in secrets.active_at(now) {
        active += 1;
        let expected = tag_words(&tag_of(key));
        let mut hit = subtle::Choice::from(0);
        for candidate in candidates {
            hit |= expected.ct_eq(&tag_words(candidate));
        }
        if bool::from(hit) {
            return Ok(index);
        }
    }
    Err(VerifyError::invalid_signature(candidates.len(), active))
}

/// A tag as four words, so a constant-time comparison takes four steps
/// instead of 32 (each step of `subtle` goes through an optimization barrier).
fn tag_words(tag: &Tag) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(tag.chunks_exact(8)) {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(bytes);
        *word = u64::from_ne_bytes(chunk);
    }
    words
}

/// Decodes 64 hex digits into a tag.
pub(crate) fn decode_hex_tag(
    header: &'static str,
    what: &str,
    hex_part: &str,
) -> Result<Tag, VerifyError> {
    if hex_part.len() != 64 {
        return Err(VerifyError::malformed(
            header,
            format!(
                "a {what} signature must be 64 hex digits, found {} characters",
                hex_part.len()
            ),
        ));
    }
    decode_hex_digits(hex_part.as_bytes()).ok_or_else(|| {
        VerifyError::malformed(
            header,
            format!("a {what} signature contains non-hex characters"),
        )
    })
}

/// Decodes exactly 64 hex digits (either case) into a tag; `None` for any
/// other length or a byte that is not a hex digit.
///
/// The received signature is public, so decoding it need not be constant
/// time; a table lookup per digit is several times faster than `hex`'s
/// per-digit branches.
pub(crate) fn decode_hex_digits(digits: &[u8]) -> Option<Tag> {
    if digits.len() != 64 {
        return None;
    }
    let mut tag = [0u8; 32];
    let mut invalid = 0u8;
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        invalid |= (hi | lo) & 0xF0;
        *byte = (hi << 4) | (lo & 0x0F);
    }
    (invalid == 0).then_some(tag)
}

/// The value of each ASCII hex digit (either case); `0xFF` for any other byte.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xFF_u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes standard base64 into exactly `N` bytes.
pub(crate) fn decode_b64_exact<const N: usize>(
    header: &'static str,
    what: &str,
    b64: &str,
) -> Result<[u8; N], VerifyError> {
    use base64::Engine as _;
    // Base64 of N bytes is at most 4 * ceil(N / 3) characters: refuse longer
    // input before decoding anything.
    if b64.len() > N.div_ceil(3) * 4 {
        return Err(VerifyError::malformed(
            header,
            format!("a {what} signature must decode to {N} bytes; it is too long"),
        ));
    }
    let mut out = [0u8; N];
    let mut buf = [0u8; 128];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(b64.as_bytes(), &mut buf)
        .map_err(|_| {
            VerifyError::malformed(header, format!("a {what} signature is not valid base64"))
        })?;
    if n != N {
        return Err(VerifyError::malformed(
            header,
            format!("a {what} signature must decode to {N} bytes, found {n}"),
        ));
    }
    out.copy_from_slice(&buf[..N]);
    Ok(out)
}

/// Reads a header that must appear at most once, as visible ASCII text.
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

/// Reads a header that must be present exactly once, as text.
pub(crate) fn required_text<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<&'h str, VerifyError> {
    let raw = required_header(headers, name)?;
    std::str::from_utf8(raw)
        .map(str::trim)
        .map_err(|_| VerifyError::malformed(name, "the value is not UTF-8"))
}

/// An unsigned, informational id header, kept only when it is sane.
pub(crate) fn informational_id(headers: &HeaderMap, name: &'static str) -> Option<String> {
    let value = headers.get(name)?.as_bytes();
    validate_id(value).ok()?;
    String::from_utf8(value.to_vec()).ok()
}

/// Checks an id before it is signed or accepted: 1 to 256 visible ASCII
/// characters, so it cannot smuggle bytes a log line would misrender.
///
/// Dots are allowed here for Standard Webhooks compatibility (other senders'
/// ids may contain them); the native scheme refuses them on top, because with
/// a dotted id one signature over `{id}.{timestamp}.{body}` could stand for a
/// second (id, timestamp, body) split.
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
