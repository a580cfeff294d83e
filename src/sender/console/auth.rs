//! A bearer-token layer that compares tokens in constant time.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use crate::problem::Problem;

/// Requires `Authorization: Bearer <token>` on every request; anything else
/// gets a `401` problem response with `WWW-Authenticate: Bearer`.
///
/// Both tokens are hashed (SHA-256) and the digests compared with
/// [`subtle`], so neither the content nor the length of the expected token
/// leaks through timing. The token never appears in `Debug` output or in a
/// response.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower::ServiceExt;
/// use webhook_guard::sender::console::BearerAuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new()
///     .route("/", get(|| async { "ok" }))
///     .layer(BearerAuthLayer::new("s3cret-token"));
/// let denied = app.clone().oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
/// assert_eq!(denied.status(), 401);
/// let ok = app
///     .oneshot(
///         http::Request::builder()
///             .header("authorization", "Bearer s3cret-token")
///             .body(axum::body::Body::empty())
///             .unwrap(),
///     )
///     .await
///     .unwrap();
/// assert_eq!(ok.status(), 200);
/// assert!(!format!("{:?}", BearerAuthLayer::new("s3cret-token")).contains("s3cret"));
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct BearerAuthLayer {
    digest: Arc<[u8; 32]>,
}

impl BearerAuthLayer {
    /// Accepts requests carrying exactly this token.
    pub fn new(token: impl AsRef<[u8]>) -> Self {
        Self {
            digest: Arc::new(Sha256::digest(token.as_ref()).into()),
        }
    }

    fn accepts(&self, headers: &http::HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given).into();
        bool::from(given.ct_eq(&*self.digest))
    }
}

impl fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`BearerAuthLayer`].
#[derive(Clone, Debug)]
pub struct BearerAuth<S> {
    inner: S,
    layer: BearerAuthLayer,
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.layer.accepts(req.headers()) {
            return Either::Right(self.inner.call(req));
        }
        let mut res = Problem::new(
            StatusCode::UNAUTHORIZED,
            super::problem_type("unauthorized"),
            "Authentication required",
            "send the console token as `Authorization: Bearer <token>`",
        )
        .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Either::Left(ready(Ok(res)))
    }
}
