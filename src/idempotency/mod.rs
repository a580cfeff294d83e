//! Idempotency: each verified event is processed once, even though senders
//! retry and deliveries arrive twice, late, or at the same time.
//!
//! [`IdempotencyLayer`] sits inside [`VerifyLayer`](crate::VerifyLayer). For
//! every verified request it builds a key from the **scope** (the route
//! template by default, or a fixed name set with
//! [`IdempotencyLayer::scope`]), the **verifier's identity**
//! ([`Verified::verifier`](crate::Verified::verifier)) and the event id
//! ([`Verified::id`](crate::Verified::id)), then makes one atomic
//! insert-if-absent in an [`IdempotencyStore`]:
//!
//! | the key is | the layer | the handler |
//! |---|---|---|
//! | absent (new) | marks it in flight for the lease (5 min), calls the handler | called |
//! | in flight | answers `409 Conflict` (problem+json) with `Retry-After`, or waits for the first delivery ([`IdempotencyLayer::wait_for_in_flight`]) | not called |
//! | done | answers `200 OK`, `X-Webhook-Duplicate: true`, `{"duplicate":true,..}` | not called |
//!
//! After the handler, a `2xx` response marks the key **done** for the done
//! TTL (24 h). Anything else releases the key so that the sender's retry is
//! processed: a non-2xx response, an error from the inner service, a panic,
//! or the response future being dropped (a client that disconnects cancels
//! the handler; a drop guard releases the key on a spawned task). Failure
//! never marks an event as seen.
//!
//! ## Why the key is authenticated
//!
//! The id comes only from data the signature covers: the scheme's signed id
//! header, or, for schemes without one (native body-only, GitHub, Shopify),
//! `sha256:<hex>` of the signed body. An unsigned header such as a delivery
//! id is never used: an attacker who captured one valid delivery could
//! replay it with a new value in that header, and each copy would look like
//! a new event and be processed again.
//!
//! The rest of the key is configuration or authenticated too; nothing in it
//! is something a client can vary without the secret:
//!
//! - The **scope** is the route template axum matched (`/hooks/{source}`,
//!   nest prefixes included), never the request's own path:
//!   `/hooks/github`, `/hooks/%67ithub` and `/hooks/g%69thub` are one route
//!   and one scope. Without a template (the layer wraps a plain tower
//!   service, a fallback or a `nest_service`) every request shares one fixed
//!   scope. The query string and unsigned headers never count.
//! - The **verifier's identity** is the fingerprint of the verifier's
//!   keys (all of them, whichever matched), or a tenant name set with
//!   [`VerifyLayer::tenant`](crate::VerifyLayer::tenant). Receivers for
//!   several senders may share one store (one Redis for many tenants, each
//!   `nest`ed under its own prefix with its own secret): a sender who signs
//!   with its own secret an id that another sender will use only ever
//!   creates a key under its own identity, and the other sender's event is
//!   still processed.
//!
//! One event delivered to two routes (two templates) is processed once on
//! each; give the routes one [`IdempotencyLayer::scope`] to process it once
//! in all. A tenant name keeps deduplicating across secret rotations, the
//! default fingerprint does not when a retry of an event straddles the
//! redeploy that adds or removes a secret (see
//! [`VerifierId`](crate::VerifierId#rotation)).
//!
//! ## Choosing the TTLs
//!
//! - The **done TTL** ([`IdempotencyLayer::done_ttl`], default 24 h) must
//!   outlast the sender's whole retry horizon, manual resends included:
//!   after it, the same event is processed again.
//! - The **lease** ([`IdempotencyLayer::lease`], default 5 min) must outlast
//!   your slowest handler. It exists for crashes: a process that dies while
//!   handling an event cannot release its key, and the key frees itself when
//!   the lease expires. Each lease is owned by a random [`LeaseToken`]; only
//!   its owner can complete or release it.
//!
//! ## Duplicates while in flight
//!
//! A delivery that finds its event still being processed gets `409` with
//! `Retry-After` (default 5 s, see [`IdempotencyLayer::retry_after`]): the
//! handler is not called, and a retry later is either processed (the first
//! delivery failed) or answered as a duplicate.
//!
//! ## When the store is down
//!
//! By default the layer fails closed: `503 Service Unavailable` with
//! `Retry-After`, an `error` log line, and the handler is not called, so
//! the sender retries and nothing is processed twice.
//! [`FailMode::Open`] processes without deduplication instead.
//!
//! ## Panics
//!
//! A panic in the handler releases the key and is then **resumed**
//! unchanged: this layer does not turn panics into responses. Add
//! `tower_http::catch_panic::CatchPanicLayer` outside it if you want a 500.
//!
//! ## Metrics
//!
//! Each verified request is counted by what the layer did with it (new,
//! duplicate, in flight, store unavailable) through the
//! [`metrics`](https://docs.rs/metrics) facade; see [`metric_names`]. As
//! with [`VerifyLayer`](crate::VerifyLayer), the counters' keys are built
//! with the layer and each is registered with the recorder once, so a
//! request does not look its counter up in the recorder's registry.
//!
//! ## Stores
//!
//! - [`MokaStore`]: in process, bounded by a maximum number of keys; for a
//!   receiver that runs as one process.
//! - `RedisStore` (feature `redis`): shared by receivers on several
//!   machines; `SET key token NX PX lease` to begin, compare-and-set Lua
//!   scripts keyed by the lease token to complete and release.
//! - `PgIdempotencyStore` (feature `postgres`): shared by receivers on
//!   several machines that have PostgreSQL and no Redis; one
//!   `INSERT .. ON CONFLICT DO UPDATE .. WHERE expired` to begin,
//!   compare-and-set on the lease token to complete and release, expiries
//!   on the database server's clock.
//!
//! ## Example
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use webhook_guard::idempotency::{DUPLICATE_HEADER, IdempotencyLayer};
//! use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secrets = SecretSet::single("my-secret")?;
//! let app = Router::new()
//!     .route("/webhooks", post(|| async { "processed" }))
//!     .layer(IdempotencyLayer::in_memory()) // inner: runs after verification
//!     .layer(VerifyLayer::new(secrets.clone()).clock(FixedClock::at(1_700_000_000)));
//!
//! let body = br#"{"event":"ingestion.completed"}"#;
//! let headers = Scheme::native().sign(&secrets, &Message::new("evt_1", 1_700_000_000, body))?;
//! let delivery = || {
//!     let mut req = Request::post("/webhooks").body(Body::from(&body[..])).unwrap();
//!     req.headers_mut().extend(headers.clone());
//!     req
//! };
//!
//! // The first delivery is processed ...
//! let res = app.clone().oneshot(delivery()).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert!(res.headers().get(DUPLICATE_HEADER).is_none());
//!
//! // ... the sender's retry of the same event is answered without calling the handler.
//! let res = app.oneshot(delivery()).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()[DUPLICATE_HEADER], "true");
//! let body = axum::body::to_bytes(res.into_body(), 1024).await?;
//! assert!(body.starts_with(br#"{"duplicate":true"#));
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
pub mod metric_names;
mod moka;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod store;
mod telemetry;

pub use crate::problem::{IN_FLIGHT_TYPE, STORE_UNAVAILABLE_TYPE};
pub use future::ResponseFuture;
pub use layer::{DEFAULT_DONE_TTL, DEFAULT_LEASE, DEFAULT_RETRY_AFTER, FailMode, IdempotencyLayer};
pub use moka::{DEFAULT_CAPACITY, MokaStore};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgIdempotencyStore;
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_KEY_PREFIX, RedisStore};
pub use service::Idempotency;
pub use store::{Begin, IdempotencyStore, IdempotencyStoreError, LeaseToken, StoreFuture};

/// The former name of [`IdempotencyStoreError`].
#[deprecated(
    note = "renamed to `IdempotencyStoreError`, to tell it from `sender::DeliveryStoreError`"
)]
pub type StoreError = IdempotencyStoreError;

/// Header set to `true` on answers to a duplicate delivery (200 and 409).
pub const DUPLICATE_HEADER: &str = "x-webhook-duplicate";
