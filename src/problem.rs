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

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::error::VerifyError;

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
