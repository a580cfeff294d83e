//! A bearer-token layer that compares tokens in constant time.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, Request, Response, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use super::problems::ProblemKind;

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
    /// `None` for an empty token, which no request can present.
    digest: Option<Arc<[u8; 32]>>,
}

impl BearerAuthLayer {
    /// Accepts requests carrying exactly this token.
    ///
    /// An empty token accepts nothing: `Authorization: Bearer ` (with
    /// nothing after it) is never taken as proof of anything, so a token
    /// read from an unset variable locks the API instead of opening it.
    pub fn new(token: impl AsRef<[u8]>) -> Self {
        let token = token.as_ref();
        Self {
            digest: (!token.is_empty()).then(|| Arc::new(Sha256::digest(token).into())),
        }
    }

    fn accepts(&self, headers: &http::HeaderMap) -> bool {
        let Some(expected) = &self.digest else {
            return false;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given).into();
        bool::from(given.ct_eq(&**expected))
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

impl<S> BearerAuth<S> {
    define_inner_service_accessors!();
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
        let mut res = ProblemKind::Unauthorized
            .problem("send the console token as `Authorization: Bearer <token>`")
            .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Either::Left(ready(Ok(res)))
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};
    use http::StatusCode;
    use tower::ServiceExt as _;

    use super::*;

    async fn status(layer: BearerAuthLayer, authorization: Option<&str>) -> StatusCode {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer);
        let mut req = Request::get("/");
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        res.status()
    }

    #[tokio::test]
    async fn an_empty_token_accepts_nothing() {
        for presented in [None, Some("Bearer "), Some("Bearer"), Some("")] {
            assert_eq!(
                status(BearerAuthLayer::new(""), presented).await,
                StatusCode::UNAUTHORIZED,
                "{presented:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_exact_token_is_accepted_and_no_other() {
        let layer = BearerAuthLayer::new("tok-123");
        assert_eq!(
            status(layer.clone(), Some("Bearer tok-123")).await,
            StatusCode::OK
        );
        for presented in [
            "Bearer tok-12",
            "Bearer tok-1234",
            "bearer tok-123",
            "Bearer ",
        ] {
            assert_eq!(
                status(layer.clone(), Some(presented)).await,
                StatusCode::UNAUTHORIZED,
                "{presented}"
            );
        }
    }
}
