//! axum extractors for verified requests.
//!
//! All of them read what [`VerifyLayer`](crate::VerifyLayer) left in the
//! request extensions, so they only work on routes behind that layer. Used
//! elsewhere, they answer 500 with a message naming the missing layer — a
//! programming error, reported loudly ([`MissingVerifyLayer`]).
//!
//! | extractor | kind | gives |
//! |---|---|---|
//! | [`Webhook<E>`] | `FromRequest` (last argument) | the verified body deserialized as `E` |
//! | [`Verified`] | `FromRequestParts` | id, timestamp, scheme, matched secret, raw bytes |
//! | [`VerifiedBytes`] | `FromRequestParts` | the raw verified body bytes |
//!
//! [`Webhook<E>`] deserializes the bytes the layer already buffered and
//! verified, once, for any `E: DeserializeOwned`: the built-in
//! [`Event`](crate::event::Event) or [`Envelope`](crate::event::Envelope), or
//! your own types. A body that is not JSON is answered with 400
//! ([`InvalidJson`]); JSON of the wrong shape with 422 ([`InvalidPayload`]),
//! naming the JSON path of the failure. Both are RFC 9457 problem responses
//! with an extra `path` (422) or `line`/`column` (400) member.
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use webhook_guard::event::Event;
//! use webhook_guard::extract::Webhook;
//! use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};
//!
//! async fn on_event(Webhook(event): Webhook<Event>) -> String {
//!     match event {
//!         Event::IngestionCompleted(done) => format!("{} rows into {}", done.rows_ingested, done.table),
//!         other => format!("ignored {}", other.event_type()),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secrets = SecretSet::single("my-secret")?;
//! let app = Router::new()
//!     .route("/webhooks", post(on_event))
//!     .layer(VerifyLayer::new(secrets.clone()).clock(FixedClock::at(1_700_000_000)));
//!
//! let send = |body: &'static [u8]| {
//!     let headers = Scheme::native().sign(&secrets, &Message::new("evt_1", 1_700_000_000, body))?;
//!     let mut req = Request::post("/webhooks").body(Body::from(body))?;
//!     req.headers_mut().extend(headers);
//!     Ok::<_, Box<dyn std::error::Error>>(app.clone().oneshot(req))
//! };
//!
//! let ok = br#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"t",
//!     "data":{"jobId":"j","table":"sales","rowsIngested":7,"duration":10}}"#;
//! let res = send(ok)?.await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let text = axum::body::to_bytes(res.into_body(), 1024).await?;
//! assert_eq!(&text[..], b"7 rows into sales");
//!
//! // Authentic, but the wrong shape: 422 naming the path.
//! let bad = br#"{"event":"ingestion.completed","data":{"jobId":"j","table":"sales","rowsIngested":"seven","duration":10}}"#;
//! let res = send(bad)?.await?;
//! assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
//! let problem: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 4096).await?)?;
//! assert_eq!(problem["path"], "data.rowsIngested");
//! # Ok(())
//! # }
//! ```
//!
//! ## Event types named by a header
//!
//! Some platforms put the event type in a header (GitHub's `X-GitHub-Event`)
//! rather than in the body. Take the header and [`VerifiedBytes`], then
//! deserialize with [`Webhook::from_bytes`] to get the same 400/422
//! rejections:
//!
//! ```
//! use axum::response::{IntoResponse, Response};
//! use http::HeaderMap;
//! use serde::Deserialize;
//! use webhook_guard::extract::{VerifiedBytes, Webhook};
//!
//! #[derive(Deserialize)]
//! struct Push { r#ref: String }
//! #[derive(Deserialize)]
//! struct Issue { action: String }
//!
//! async fn github(headers: HeaderMap, VerifiedBytes(body): VerifiedBytes) -> Response {
//!     let kind = headers.get("x-github-event").and_then(|v| v.to_str().ok());
//!     match kind {
//!         Some("push") => match Webhook::<Push>::from_bytes(&body) {
//!             Ok(Webhook(push)) => format!("push to {}", push.r#ref).into_response(),
//!             Err(rejection) => rejection.into_response(),
//!         },
//!         Some("issues") => match Webhook::<Issue>::from_bytes(&body) {
//!             Ok(Webhook(issue)) => format!("issue {}", issue.action).into_response(),
//!             Err(rejection) => rejection.into_response(),
//!         },
//!         _ => "ignored".into_response(),
//!     }
//! }
//! # let _ = github;
//! ```

use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::Problem;
pub use crate::problem::{INVALID_JSON_TYPE, INVALID_PAYLOAD_TYPE, MISSING_LAYER_TYPE};
use crate::verify::Verified;

/// Rejection of an extractor used on a route that is not behind
/// [`VerifyLayer`](crate::VerifyLayer). Answered as 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no `Verified` in the request extensions: `VerifyLayer` is not applied to this route; \
     add `.layer(VerifyLayer::new(..))` to the router or route that serves webhooks"
)]
pub struct MissingVerifyLayer;

impl IntoResponse for MissingVerifyLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            MISSING_LAYER_TYPE,
            "VerifyLayer missing",
            self.to_string(),
        )
        .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = MissingVerifyLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verified>()
            .cloned()
            .ok_or(MissingVerifyLayer)
    }
}

/// The raw body bytes exactly as [`VerifyLayer`](crate::VerifyLayer) verified
/// them. A cheap reference-counted clone; the body is not read again.
///
/// The same bytes are available as [`Verified::body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBytes(pub Bytes);

impl Deref for VerifiedBytes {
    type Target = Bytes;
    fn deref(&self) -> &Bytes {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedBytes {
    type Rejection = MissingVerifyLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verified>()
            .map(|v| Self(v.body().clone()))
            .ok_or(MissingVerifyLayer)
    }
}

/// The verified body, deserialized as `E`.
///
/// `E` is any `DeserializeOwned` type: the built-in
/// [`Event`](crate::event::Event) or [`Envelope`](crate::event::Envelope), or
/// your own. The bytes come from the [`Verified`] that
/// [`VerifyLayer`](crate::VerifyLayer) left in the extensions (the body was
/// buffered and verified there) and are deserialized exactly once.
///
/// Rejections ([`WebhookRejection`]): 500 without the layer, 400 for invalid
/// JSON, 422 for the wrong shape with the JSON path of the failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Webhook<E>(pub E);

impl<E> Webhook<E> {
    /// The deserialized value.
    pub fn into_inner(self) -> E {
        self.0
    }
}

impl<E> Deref for Webhook<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E> DerefMut for Webhook<E> {
    fn deref_mut(&mut self) -> &mut E {
        &mut self.0
    }
}

impl<E: DeserializeOwned> Webhook<E> {
    /// Deserializes `bytes` as `E`, with the same classification as the
    /// extractor.
    ///
    /// ```
    /// use webhook_guard::event::Event;
    /// use webhook_guard::extract::{Webhook, WebhookRejection};
    ///
    /// let err = Webhook::<Event>::from_bytes(br#"{"event":"kpi.alert","data":{"kpiId":"k"}}"#).unwrap_err();
    /// let WebhookRejection::InvalidPayload(err) = err else { panic!("{err}") };
    /// assert_eq!(err.path(), "data");
    /// assert!(err.message().contains("missing field `value`"));
    ///
    /// let err = Webhook::<Event>::from_bytes(b"{\"event\":").unwrap_err();
    /// assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    /// ```
    ///
    /// # Errors
    ///
    /// [`WebhookRejection::InvalidJson`] when the bytes are not JSON
    /// (syntax error, truncated input, trailing bytes);
    /// [`WebhookRejection::InvalidPayload`] when they are JSON that does not
    /// fit `E`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WebhookRejection> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let rejection = classify(err);
            // A shape error may come before a syntax error further on (or
            // invalid UTF-8, or a lone surrogate escape): only JSON that
            // parses as a whole gets a 422. Checked on this error path only.
            if matches!(rejection, WebhookRejection::InvalidPayload(_)) {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(bytes) {
                    return invalid_json(&e);
                }
            }
            rejection
        })?;
        // Bytes after the value: a syntax error.
        de.end().map_err(|e| invalid_json(&e))?;
        Ok(Self(value))
    }
}

fn invalid_json(err: &serde_json::Error) -> WebhookRejection {
    WebhookRejection::InvalidJson(InvalidJson {
        message: bare_message(err),
        line: err.line(),
        column: err.column(),
    })
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> WebhookRejection {
    let mut path = err.path().to_string();
    let inner = err.into_inner();
    let mut message = bare_message(&inner);
    // A payload that came before its `event` tag was checked after the
    // object ended; its error message carries the path inside the body.
    if path == "." {
        if let Some((inner_path, bare)) = crate::event::split_buffered_data_error(&message) {
            (path, message) = (inner_path.to_owned(), bare.to_owned());
        }
    }
    let (line, column) = (inner.line(), inner.column());
    match inner.classify() {
        serde_json::error::Category::Data => WebhookRejection::InvalidPayload(InvalidPayload {
            path,
            message,
            line,
            column,
        }),
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => WebhookRejection::InvalidJson(InvalidJson {
            message,
            line,
            column,
        }),
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn bare_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(bare) => bare.to_owned(),
        None => full,
    }
}

impl<S, E> FromRequest<S> for Webhook<E>
where
    S: Send + Sync,
    E: DeserializeOwned,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let verified = req
            .extensions()
            .get::<Verified>()
            .ok_or(WebhookRejection::MissingVerifyLayer(MissingVerifyLayer))?;
        Self::from_bytes(verified.body())
    }
}

/// A verified body that is not valid JSON: a syntax error, truncated input
/// or bytes after the value. Answered as 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook body is not valid JSON: {message} (line {line}, column {column})")]
pub struct InvalidJson {
    message: String,
    line: usize,
    column: usize,
}

impl InvalidJson {
    /// What the parser found, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// 1-based line of the error.
    pub fn line(&self) -> usize {
        self.line
    }
    /// 1-based column of the error.
    pub fn column(&self) -> usize {
        self.column
    }
}

/// A verified JSON body whose shape does not fit the target type: a missing
/// field, a wrong type, an unknown enum value. Answered as 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook payload does not have the expected shape at `{path}`: {message}")]
pub struct InvalidPayload {
    path: String,
    message: String,
    line: usize,
    column: usize,
}

impl InvalidPayload {
    /// The JSON path of the failure, such as `data.rowsIngested` or
    /// `items[2].id`; `.` for the top level.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// What did not fit, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// 1-based line where the value that did not fit ends.
    pub fn line(&self) -> usize {
        self.line
    }
    /// 1-based column where the value that did not fit ends.
    pub fn column(&self) -> usize {
        self.column
    }
}

/// Why [`Webhook<E>`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// The route is not behind [`VerifyLayer`](crate::VerifyLayer): 500.
    #[error(transparent)]
    MissingVerifyLayer(#[from] MissingVerifyLayer),
    /// The body is not valid JSON: 400.
    #[error(transparent)]
    InvalidJson(#[from] InvalidJson),
    /// The body is JSON of the wrong shape: 422.
    #[error(transparent)]
    InvalidPayload(#[from] InvalidPayload),
}

impl WebhookRejection {
    /// The status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingVerifyLayer(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::InvalidPayload(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let (problem, extra) = match &self {
            Self::MissingVerifyLayer(missing) => return missing.into_response(),
            Self::InvalidJson(e) => (
                Problem::new(
                    self.status(),
                    INVALID_JSON_TYPE,
                    "Webhook body is not valid JSON",
                    e.to_string(),
                ),
                serde_json::json!({ "line": e.line, "column": e.column }),
            ),
            Self::InvalidPayload(e) => (
                Problem::new(
                    self.status(),
                    INVALID_PAYLOAD_TYPE,
                    "Webhook payload has the wrong shape",
                    e.to_string(),
                ),
                serde_json::json!({ "path": e.path }),
            ),
        };
        tracing::debug!(
            status = problem.status,
            "webhook body refused: {}",
            problem.detail
        );
        let mut document = serde_json::to_value(&problem).unwrap_or_default();
        if let (Some(doc), serde_json::Value::Object(extra)) = (document.as_object_mut(), extra) {
            doc.extend(extra);
        }
        let body = serde_json::to_vec(&document).unwrap_or_default();
        let mut res = (self.status(), body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::problem::PROBLEM_JSON),
        );
        res
    }
}
