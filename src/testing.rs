//! Helpers for your own tests: signed requests in one line and a fixed clock.
//!
//! Enabled by the `testing` feature; add it to your dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! webhook-guard = { version = "0.1", features = ["testing"] }
//! ```
//!
//! [`signed_request`] builds an `http::Request` signed exactly as a sender
//! using the same [`Scheme`] would sign it, for any scheme; hand it to your
//! router with `tower::ServiceExt::oneshot`. Pin the receiver's clock with
//! [`FixedClock`] and sign at the same instant with
//! [`SignedRequest::timestamp`] so tests do not depend on the wall clock.
//!
//! ```
//! use axum::{Router, routing::post};
//! use http::StatusCode;
//! use time::macros::datetime;
//! use tower::ServiceExt;
//! use webhook_guard::event::{Envelope, Event, KpiAlert};
//! use webhook_guard::testing::{FixedClock, SignedRequest, signed_request};
//! use webhook_guard::{Scheme, SecretSet, VerifyLayer, Webhook};
//!
//! async fn handler(Webhook(event): Webhook<Event>) -> StatusCode {
//!     match event {
//!         Event::KpiAlert(alert) if alert.value > alert.threshold => StatusCode::ACCEPTED,
//!         _ => StatusCode::OK,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secrets = SecretSet::single("test-secret")?;
//! let event = Envelope::new("tenant_1", datetime!(2025-01-15 10:30 UTC), KpiAlert::new("churn", 0.09, 0.05));
//!
//! // Receiver on the wall clock, request signed now: one line.
//! let app = Router::new().route("/webhooks", post(handler)).layer(VerifyLayer::new(secrets.clone()));
//! let res = app.oneshot(signed_request(&Scheme::native(), &secrets, &event)?).await?;
//! assert_eq!(res.status(), StatusCode::ACCEPTED);
//!
//! // Receiver on a fixed clock, request signed at that instant with a chosen id.
//! let app = Router::new()
//!     .route("/hooks/in", post(handler))
//!     .layer(VerifyLayer::new(secrets.clone()).clock(FixedClock::at(1_736_937_000)));
//! let req = SignedRequest::new(&Scheme::native(), &secrets)
//!     .uri("/hooks/in")
//!     .id("evt_42")
//!     .timestamp(1_736_937_000)
//!     .json(&event)?;
//! assert_eq!(app.oneshot(req).await?.status(), StatusCode::ACCEPTED);
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, header};
use serde::Serialize;

pub use crate::replay::FixedClock;
use crate::replay::{Clock, SystemClock};
use crate::scheme::{Message, Scheme, SignError};
use crate::secret::SecretSet;

/// The path [`signed_request`] posts to unless [`SignedRequest::uri`] says
/// otherwise.
pub const DEFAULT_URI: &str = "/webhooks";

/// Why a test request could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignedRequestError {
    /// The value could not be serialized to JSON.
    #[error("the event could not be serialized to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The scheme refused to sign (an invalid id, no active secret).
    #[error("the request could not be signed: {0}")]
    Sign(#[from] SignError),
    /// The URI, method or an extra header is not valid HTTP.
    #[error("the request is not valid HTTP: {0}")]
    Http(#[from] http::Error),
}

/// A `POST /webhooks` request carrying `value` as JSON, signed with `secrets`
/// in `scheme`'s wire format, with a fresh id and the current time.
///
/// For another path, id, timestamp or raw bytes, use [`SignedRequest`].
///
/// # Errors
///
/// [`SignedRequestError`] when `value` does not serialize or the scheme
/// cannot sign (no secret active now).
pub fn signed_request<T: Serialize + ?Sized>(
    scheme: &Scheme,
    secrets: &SecretSet,
    value: &T,
) -> Result<Request<Body>, SignedRequestError> {
    SignedRequest::new(scheme, secrets).json(value)
}

/// A builder for signed test requests.
///
/// Defaults: `POST` to [`DEFAULT_URI`], a fresh id (`evt_test_<n>`, unique in
/// the process), the system clock's now, `Content-Type: application/json` for
/// [`json`](Self::json).
#[derive(Debug, Clone)]
#[must_use]
pub struct SignedRequest<'a> {
    scheme: &'a Scheme,
    secrets: &'a SecretSet,
    method: Method,
    uri: String,
    id: Option<String>,
    timestamp: Option<i64>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl<'a> SignedRequest<'a> {
    /// A builder signing with `secrets` in `scheme`'s wire format.
    pub fn new(scheme: &'a Scheme, secrets: &'a SecretSet) -> Self {
        Self {
            scheme,
            secrets,
            method: Method::POST,
            uri: DEFAULT_URI.to_owned(),
            id: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// The request path (and query), default [`DEFAULT_URI`].
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// The HTTP method, default `POST`.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// The event id to sign (for schemes that carry one). Use the same id
    /// twice to test deduplication.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The signing time in unix seconds, default now. Match the receiver's
    /// [`FixedClock`], or move it outside the window to test rejections.
    pub fn timestamp(mut self, unix_seconds: i64) -> Self {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// An extra header, added after the signature headers (so it can also
    /// replace one, to test tampering).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Serializes `value` as JSON, signs it and builds the request.
    ///
    /// # Errors
    ///
    /// As [`signed_request`].
    pub fn json<T: Serialize + ?Sized>(
        self,
        value: &T,
    ) -> Result<Request<Body>, SignedRequestError> {
        let body = serde_json::to_vec(value)?;
        let mut req = self.bytes(body)?;
        req.headers_mut()
            .entry(header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        Ok(req)
    }

    /// Signs these exact bytes and builds the request (no `Content-Type`
    /// unless added with [`header`](Self::header)).
    ///
    /// # Errors
    ///
    /// [`SignedRequestError::Sign`] or [`SignedRequestError::Http`].
    pub fn bytes(self, body: impl Into<Bytes>) -> Result<Request<Body>, SignedRequestError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let body: Bytes = body.into();
        let id = self
            .id
            .unwrap_or_else(|| format!("evt_test_{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)));
        let timestamp = self.timestamp.unwrap_or_else(|| SystemClock.now_unix());
        let signed = self
            .scheme
            .sign(self.secrets, &Message::new(&id, timestamp, &body))?;
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.uri)
            .body(Body::from(body))?;
        let headers = req.headers_mut();
        headers.extend(signed);
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        Ok(req)
    }
}
