//! The verifying middleware: [`VerifyLayer`], [`Verify`] and its
//! [`ResponseFuture`], plus [`Verifier`] for use without tower.
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use webhook_guard::{FixedClock, Message, Scheme, SecretSet, Verified, VerifyLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secrets = SecretSet::single("my-secret")?;
//! let app = Router::new()
//!     .route("/webhooks", post(|v: Verified| async move { v.id().to_owned() }))
//!     .layer(VerifyLayer::new(secrets.clone()).clock(FixedClock::at(1_700_000_000)));
//!
//! // A correctly signed request passes ...
//! let body = br#"{"event":"ingestion.completed"}"#;
//! let headers = Scheme::native().sign(&secrets, &Message::new("evt_1", 1_700_000_000, body))?;
//! let mut req = Request::post("/webhooks").body(Body::from(&body[..]))?;
//! req.headers_mut().extend(headers);
//! let res = app.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // ... an unsigned one does not.
//! let req = Request::post("/webhooks").body(Body::from(&body[..]))?;
//! let res = app.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod diagnosis;
mod drain;
mod future;
mod identity;
mod layer;
pub mod metric_names;
mod service;
mod summary;
mod telemetry;
mod verified;

pub use diagnosis::{DiagnoseConfig, FailureCause};
pub use drain::{DEFAULT_DRAIN_BYTES, DEFAULT_DRAIN_TIME};
pub use future::ResponseFuture;
pub use identity::VerifierId;
pub use layer::{DEFAULT_BODY_LIMIT, VerifyLayer};
pub use service::Verify;

/// The former name of [`Verify`], the service [`VerifyLayer`] builds.
#[deprecated(note = "renamed to `Verify`: `VerifyLayer` builds `Verify`, as `XLayer` builds `X`")]
pub type VerifyWebhook<S> = Verify<S>;
pub use summary::DEFAULT_REJECTION_SUMMARY_INTERVAL;
pub use verified::{Verified, Verifier};
