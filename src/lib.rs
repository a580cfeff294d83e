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
//! | [`Scheme::standard`] (Standard Webhooks, Svix) | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64>` (also `svix-*`; `v1a` ed25519 with feature `ed25519`) | `{id}.{timestamp}.{body}` |
//! | [`Scheme::github`] | `X-Hub-Signature-256: sha256=<hex>` | `{body}` (no timestamp) |
//! | [`Scheme::stripe`] | `Stripe-Signature: t=<ts>,v1=<hex>` | `{t}.{body}` |
//! | [`Scheme::slack`] | `X-Slack-Signature: v0=<hex>`, `X-Slack-Request-Timestamp` | `v0:{ts}:{body}` |
//! | [`Scheme::shopify`] | `X-Shopify-Hmac-Sha256: <b64>` | `{body}` (no timestamp) |
//!
//! A signature header may carry several signatures (rotation on the sender);
//! a [`SecretSet`] may hold several secrets (rotation on the receiver). Any
//! match of any active secret passes.
//!
//! ## Modules
//!
//! - [`secret`]: [`Secret`] and [`SecretSet`] (rotation, expiry, redacted `Debug`).
//! - [`scheme`]: the wire formats, with `sign` and `verify` side by side.
//! - [`replay`]: [`Clock`] (the one clock, read in seconds here and in
//!   milliseconds by the sender) and [`ReplayWindow`].
//! - [`verify`]: [`VerifyLayer`], [`Verify`], [`Verifier`], [`Verified`];
//!   its metrics in [`verify::metric_names`].
//! - [`idempotency`]: [`IdempotencyLayer`], each event processed once, with
//!   [`MokaStore`] in process, `RedisStore` or `PgIdempotencyStore` across
//!   machines; its metrics in [`idempotency::metric_names`].
//! - [`event`]: the platform's events as types: [`Envelope`], [`Event`]
//!   (with [`Event::Unknown`] so a new event type never fails a delivery).
//! - [`extract`]: axum extractors: [`Webhook<E>`](Webhook) (typed body,
//!   400/422 problem rejections naming the JSON path), [`Verified`],
//!   [`VerifiedBytes`].
//! - `testing` (feature `testing`): signed requests for your own tests in one
//!   line, and a fixed clock.
//! - [`problem`]: RFC 9457 rejection bodies.
//! - [`diagnose`]: why a request does not verify (body changed, secret read another way, clock off).
//! - `sender` (feature `sender`): the sending side, signed with the same core.
//! - `inbox` (feature `inbox`): store verified webhooks durably, answer at
//!   once, process them in workers with retries, a dead letter queue and
//!   back-pressure.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `ed25519` | no | Standard Webhooks `v1a` signatures (`Ed25519PublicKey`, `Ed25519SigningKey`) |
//! | `redis` | no | `idempotency::RedisStore`: one idempotency store shared by several receivers |
//! | `postgres` | no | `idempotency::PgIdempotencyStore`: the same in PostgreSQL, for fleets without Redis; with `sender`, `sender::PgStore`: one delivery queue shared by several sender nodes; with `inbox`, `inbox::PgInboxStore`: one inbox shared by several receivers |
//! | `cli` | no | the `webhook-guard` command (`listen`, `send`, `sign`, `verify`); adds nothing to the library |
//! | `testing` | no | `testing`: signed requests for any scheme in one line, [`FixedClock`] |
//! | `sender` | no | `sender`: sign, deliver, retry, dead-letter and replay outgoing webhooks (in-memory store) |
//! | `sqlite` | no | the sender's durable SQLite store (implies `sender`) |
//! | `inbox` | no | `inbox`: `InboxLayer`, workers, retries, dead letters, back-pressure, metrics (`metrics` facade); SQLite (bundled) and memory stores; does not need `sender` |
//! | `console` | no | `sender::console`: the operator console, a JSON API and web page for destinations, delivery history and the DLQ, and with `inbox` an inbox view (implies `sender`) |
//! | `opentelemetry` | no | trace context through `tracing-opentelemetry`: `publish` takes the current span's trace as the event's `traceparent`; the receiver's `webhook.receive` span and the inbox's `inbox.process` span continue the sender's trace (see [`trace_context`]) |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

mod cached_metric;
pub mod diagnose;
#[cfg(any(feature = "sender", feature = "inbox"))]
mod durable;
pub mod error;
pub mod event;
pub mod extract;
pub mod idempotency;
#[cfg(feature = "inbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
pub mod inbox;
#[cfg(feature = "postgres")]
mod postgres;
pub mod problem;
pub mod replay;
pub mod scheme;
pub mod secret;
#[cfg(feature = "sender")]
#[cfg_attr(docsrs, doc(cfg(feature = "sender")))]
pub mod sender;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod trace_context;
pub mod verify;

pub use error::{ConfigError, VerifyError, VerifyErrorKind};
pub use event::{Envelope, Event};
pub use extract::{VerifiedBytes, Webhook, WebhookRejection};
pub use idempotency::{IdempotencyLayer, IdempotencyStore, MokaStore};
pub use replay::{Clock, FixedClock, ReplayWindow, SystemClock};
#[cfg(feature = "ed25519")]
pub use scheme::{Ed25519PublicKey, Ed25519SigningKey};
pub use scheme::{
    IdSource, Message, Scheme, SchemeName, SignError, SignatureAlgorithm, SignatureMatch,
    TimestampSource,
};
pub use secret::{MIN_SECRET_LEN, Secret, SecretSet, WHSEC_PREFIX};
#[allow(deprecated)]
pub use verify::VerifyWebhook;
pub use verify::{Verified, Verifier, VerifierId, Verify, VerifyLayer};

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
