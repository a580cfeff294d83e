use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body::Body as _;
use tower_service::Service;

use super::future::{ResponseFuture, over_the_limit};
use super::layer::{Config, VerifyLayer};
use crate::error::{VerifyError, VerifyErrorKind};

/// The service built by [`VerifyLayer`]: verifies, then calls `S` with the
/// same body bytes and a [`Verified`](crate::Verified) in the extensions.
#[derive(Clone)]
pub struct Verify<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Verify<S> {
    /// Wraps `inner` with the settings of `layer`.
    pub fn new(inner: S, layer: &VerifyLayer) -> Self {
        Self::from_config(inner, layer.config())
    }

    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// A [`VerifyLayer`] builder; same as [`VerifyLayer::new`].
    pub fn layer(secrets: crate::SecretSet) -> VerifyLayer {
        VerifyLayer::new(secrets)
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for Verify<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verify")
            .field("inner", &self.inner)
            .field("verifier", &self.config.verifier)
            .field("body_limit", &self.config.body_limit)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Verify<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        let (parts, body) = req.into_parts();
        // An axum `Body` is taken as it is, without boxing it again.
        let body = Body::new(body);
        if let Some((remaining, err)) = too_large(&parts.headers, &body, config.body_limit) {
            if config.drain.applies(&parts.headers, remaining, false) {
                config.drain.spawn(body);
            }
            return ResponseFuture::rejected(&config, err);
        }
        // Take the service that was driven to readiness and leave a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::buffering(parts, body, inner, config)
    }
}

/// A body known to exceed `limit` before reading it: by its `Content-Length`
/// or by its own size hint. Returns the body's known size, if any, and the
/// error to answer with.
fn too_large(headers: &HeaderMap, body: &Body, limit: usize) -> Option<(Option<u64>, VerifyError)> {
    let limit64 = limit as u64;
    if let Some(len) = declared_length(headers).filter(|&len| len > limit64) {
        let err = VerifyError::new(
            VerifyErrorKind::PayloadTooLarge,
            format!("the body is {len} bytes (Content-Length); the limit is {limit} bytes"),
        );
        return Some((Some(len), err));
    }
    let hint = body.size_hint();
    if hint.lower() > limit64 {
        return Some((hint.upper(), over_the_limit(limit)));
    }
    None
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
}
