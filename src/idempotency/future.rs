use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use http::Response;

pub(crate) type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

/// The future returned by [`Idempotency`](super::Idempotency).
///
/// Boxed because it awaits the store before and after the inner service's
/// future, catches a panic from the handler to release the key, and carries
/// a guard that releases the key if the future is dropped (a client that
/// disconnects cancels the handler).
pub struct ResponseFuture<E> {
    inner: BoxedResponse<E>,
}

impl<E> ResponseFuture<E> {
    pub(crate) fn new(inner: BoxedResponse<E>) -> Self {
        Self { inner }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
