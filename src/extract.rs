//! axum extractors for verified requests.
//!
//! [`Verified`] is a `FromRequestParts` extractor: it reads the metadata that
//! [`VerifyLayer`](crate::VerifyLayer) left in the request extensions. Used on
//! a route that is not behind the layer, it answers 500 with a message naming
//! the missing layer — a programming error, reported loudly.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::problem::Problem;
use crate::verify::Verified;

/// Problem `type` for an extractor used on a route without [`VerifyLayer`](crate::VerifyLayer).
pub const MISSING_LAYER_TYPE: &str =
    "https://docs.rs/webhook-guard/latest/webhook_guard/extract/struct.MissingVerifyLayer.html";

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
