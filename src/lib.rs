//! # webhook-guard
//!
//! Receive webhooks safely in axum and tower services.
//!
//! [`VerifyLayer`] proves that an incoming webhook is **authentic** (an
//! HMAC-SHA256 signature over the raw body, checked in constant time against
//! any of several active secrets) and **fresh** (a signed timestamp inside a
//! [`ReplayWindow`]), before your handler runs. Rejections are RFC 9457
//! `application/problem+json` responses that never reveal a secret or the
//! expected signature.
//!
//! ```
//! use axum::{Router, routing::post};
//! use webhook_guard::{SecretSet, Verified, VerifyLayer};
//!
//! async fn on_webhook(verified: Verified) -> &'static str {
//!     // Only authentic, fresh requests get here.
//!     tracing::info!(id = verified.id(), "webhook received");
//!     "ok"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/webhooks", post(on_webhook))
//!     .layer(VerifyLayer::new(SecretSet::single("my-secret")?));
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```
//!
//! ## Wire formats
//!
//! | scheme | headers | signed content |
//! |---|---|---|
//! | [`Scheme::native`] (default) | `X-Webhook-Id`, `X-Webhook-Timestamp`, `X-Webhook-Signature: sha256=<hex>` | `{id}.{timestamp}.{body}` |
//! | [`Scheme::native_body_only`] | `X-Webhook-Signature: sha256=<hex>` | `{body}`; replay window on the body's `timestamp` field |
//!
//! ## Modules
//!
//! - [`secret`]: [`Secret`] and [`SecretSet`] (rotation, expiry, redacted `Debug`).
//! - [`scheme`]: the wire formats, with `sign` and `verify` side by side.
//! - [`replay`]: [`Clock`] and [`ReplayWindow`].
//! - [`verify`]: [`VerifyLayer`], [`VerifyWebhook`], [`Verifier`], [`Verified`].
//! - [`extract`]: axum extractors.
//! - [`problem`]: RFC 9457 rejection bodies.
//! - `sender` (feature `sender`): the sending side, signed with the same core.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testing` | no | helpers for your own tests |
//! | `sender` | no | `sender`: sign, deliver, retry, dead-letter and replay outgoing webhooks (in-memory store) |
//! | `sqlite` | no | the sender's durable SQLite store (implies `sender`) |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod extract;
pub mod problem;
pub mod replay;
pub mod scheme;
pub mod secret;
#[cfg(feature = "sender")]
#[cfg_attr(docsrs, doc(cfg(feature = "sender")))]
pub mod sender;
pub mod verify;

pub use error::{ConfigError, VerifyError, VerifyErrorKind};
pub use replay::{Clock, FixedClock, ReplayWindow, SystemClock};
pub use scheme::{
    IdSource, Message, Scheme, SchemeName, SignError, SignatureMatch, TimestampSource,
};
pub use secret::{Secret, SecretSet};
pub use verify::{ResponseFuture, Verified, Verifier, VerifyLayer, VerifyWebhook};
