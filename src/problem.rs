//! RFC 9457 `application/problem+json` rejection responses.
//!
//! Every rejection this crate produces is a response with a JSON body like
//!
//! ```json
//! {
//!   "type": "https://docs.rs/webhook-guard/latest/webhook_guard/enum.VerifyErrorKind.html#variant.InvalidSignature",
//!   "title": "Webhook signature invalid",
//!   "status": 401,
//!   "detail": "none of the 1 signature(s) in the request matches ..."
//! }
//! ```
//!
//! The `detail` never contains a secret or the expected signature, nor how
//! the receiver is configured (how many secrets are active, whether public
//! keys are set): it says what to check. The configuration side is in
//! [`VerifyError::receiver_detail`], which the layer logs at `debug` level.
//!
//! ## Problem types
//!
//! Every `type` URI the crate answers with is defined in this module; each
//! points at the docs that explain it.
//!
//! | `type` | status | answered by |
//! |---|---|---|
//! | [`VerifyErrorKind::problem_type`](crate::VerifyErrorKind::problem_type), one per kind | 401, 413, 400 | [`VerifyLayer`](crate::VerifyLayer) |
//! | [`MISSING_LAYER_TYPE`] | 500 | the extractors, on a route without `VerifyLayer` |
//! | [`INVALID_JSON_TYPE`] | 400 | [`Webhook`](crate::Webhook), body not JSON |
//! | [`INVALID_PAYLOAD_TYPE`] | 422 | [`Webhook`](crate::Webhook), JSON of the wrong shape |
//! | [`IN_FLIGHT_TYPE`] | 409 | [`IdempotencyLayer`](crate::IdempotencyLayer), same event in flight |
//! | [`STORE_UNAVAILABLE_TYPE`] | 503 | [`IdempotencyLayer`](crate::IdempotencyLayer), store down |
//! | [`INBOX_UNAVAILABLE_TYPE`] | 503 | `InboxLayer` (feature `inbox`), inbox store down |
//! | [`INBOX_FULL_TYPE`] | 503 or 429 | `InboxLayer` (feature `inbox`), too many unprocessed events |
//! | `…/sender/console/index.html#<kind>` | 4xx, 503 | the operator console (feature `console`): `unauthorized`, `misdirected-request`, `cross-site-request`, `unsupported-media-type`, `malformed-request`, `invalid-input`, `invalid-query`, `invalid-destination`, `forbidden-address`, `invalid-scheme`, `invalid-event-filter`, `not-found`, `wrong-state`, `store-failed` |

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::error::{VerifyError, VerifyErrorKind};

/// A URI under the crate's docs on docs.rs, as a `&'static str`.
macro_rules! docs_uri {
    ($path:literal) => {
        concat!("https://docs.rs/webhook-guard/latest/webhook_guard/", $path)
    };
}

/// Problem `type` for an extractor used on a route without [`VerifyLayer`](crate::VerifyLayer).
pub const MISSING_LAYER_TYPE: &str = docs_uri!("extract/struct.MissingVerifyLayer.html");

/// Problem `type` for a verified body that is not valid JSON (400).
pub const INVALID_JSON_TYPE: &str = docs_uri!("extract/struct.InvalidJson.html");

/// Problem `type` for a verified JSON body of the wrong shape (422).
pub const INVALID_PAYLOAD_TYPE: &str = docs_uri!("extract/struct.InvalidPayload.html");

/// Problem `type` of the 409 answered while the same event is in flight.
pub const IN_FLIGHT_TYPE: &str = docs_uri!("idempotency/index.html#duplicates-while-in-flight");

/// Problem `type` of the 503 answered when the store cannot be reached.
pub const STORE_UNAVAILABLE_TYPE: &str = docs_uri!("idempotency/index.html#when-the-store-is-down");

/// Problem `type` of the 503 answered when the inbox cannot store an event.
pub const INBOX_UNAVAILABLE_TYPE: &str = docs_uri!("inbox/index.html#when-the-store-is-down");

/// Problem `type` of the 503 (or 429) answered when the inbox holds too many
/// unprocessed events.
pub const INBOX_FULL_TYPE: &str = docs_uri!("inbox/index.html#back-pressure");

/// The problem `type` of a verification failure of this kind: the kind's
/// entry in the docs.
pub(crate) const fn verify_error_type(kind: VerifyErrorKind) -> &'static str {
    match kind {
        VerifyErrorKind::MissingHeader => {
            docs_uri!("enum.VerifyErrorKind.html#variant.MissingHeader")
        }
        VerifyErrorKind::MalformedHeader => {
            docs_uri!("enum.VerifyErrorKind.html#variant.MalformedHeader")
        }
        VerifyErrorKind::InvalidSignature => {
            docs_uri!("enum.VerifyErrorKind.html#variant.InvalidSignature")
        }
        VerifyErrorKind::TimestampTooOld => {
            docs_uri!("enum.VerifyErrorKind.html#variant.TimestampTooOld")
        }
        VerifyErrorKind::TimestampTooNew => {
            docs_uri!("enum.VerifyErrorKind.html#variant.TimestampTooNew")
        }
        VerifyErrorKind::MissingTimestamp => {
            docs_uri!("enum.VerifyErrorKind.html#variant.MissingTimestamp")
        }
        VerifyErrorKind::PayloadTooLarge => {
            docs_uri!("enum.VerifyErrorKind.html#variant.PayloadTooLarge")
        }
        VerifyErrorKind::BodyReadFailed => {
            docs_uri!("enum.VerifyErrorKind.html#variant.BodyReadFailed")
        }
    }
}

/// The problem `type` of the operator console's answers of this kind: an
/// anchor in the console's module docs.
#[cfg(feature = "console")]
pub(crate) fn console_problem_type(kind: &str) -> String {
    format!(docs_uri!("sender/console/index.html#{}"), kind)
}

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem; its docs explain it.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary that does not change between occurrences.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time and how to fix it.
    pub detail: String,
}

impl Problem {
    /// A problem with these parts.
    pub fn new(
        status: StatusCode,
        type_uri: impl Into<String>,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            type_uri: type_uri.into(),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// The problem describing a verification failure.
    pub fn from_verify_error(err: &VerifyError) -> Self {
        let kind = err.kind();
        Self::new(
            kind.status(),
            kind.problem_type(),
            kind.title(),
            err.detail(),
        )
    }

    /// Renders the problem as an `application/problem+json` response.
    pub fn into_response(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = status;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        Problem::into_response(self)
    }
}

/// The default rejection: the error as a problem response.
pub fn default_rejection(err: &VerifyError) -> Response<Body> {
    Problem::from_verify_error(err).into_response()
}

/// The 500 answered by a layer that needs [`Verified`](crate::Verified) on a
/// route where [`VerifyLayer`](crate::VerifyLayer) does not run before it: a
/// programming error, logged loudly.
pub(crate) fn missing_verify_layer(layer: &str) -> Response<Body> {
    let detail = format!(
        "{layer} found no `Verified` in the request extensions: VerifyLayer must run before it. \
         Add `.layer({layer}..)` first and `.layer(VerifyLayer::..)` after it (the layer added last runs first)"
    );
    tracing::error!("{detail}");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        MISSING_LAYER_TYPE,
        "VerifyLayer missing",
        detail,
    )
    .into_response()
}
