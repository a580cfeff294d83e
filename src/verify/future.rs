use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body as _;
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

use super::layer::Config;
use crate::error::{VerifyError, VerifyErrorKind};

/// Accumulates body frames without copying when the body arrives in one frame.
enum Buffer {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Buffer {
    fn push(&mut self, data: Bytes, hint: usize) {
        if data.is_empty() {
            return;
        }
        *self = match std::mem::replace(self, Buffer::Empty) {
            Buffer::Empty => Buffer::One(data),
            Buffer::One(first) => {
                let mut buf = BytesMut::with_capacity(hint.max(first.len() + data.len()));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                Buffer::Many(buf)
            }
            Buffer::Many(mut buf) => {
                buf.extend_from_slice(&data);
                Buffer::Many(buf)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Buffer::Empty => Bytes::new(),
            Buffer::One(b) => b,
            Buffer::Many(buf) => buf.freeze(),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S>
    where
        S: Service<Request<Body>>,
    {
        Buffering {
            body: Body,
            buffer: Buffer,
            // Bytes read so far, checked against the limit.
            read: u64,
            parts: Option<Parts>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: Instrumented<S::Future>,
        },
        Rejected {
            response: Option<Response<Body>>,
        },
    }
}

pin_project! {
    /// The future returned by [`Verify`](super::Verify): buffers
    /// and verifies the body, then runs the inner service's future.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<Body>>,
    {
        #[pin]
        state: State<S>,
        config: Arc<Config>,
        // The request body type the service was called with (now an axum
        // `Body`).
        body: PhantomData<fn(B)>,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<Body>>,
{
    pub(super) fn rejected(config: &Arc<Config>, err: VerifyError) -> Self {
        Self {
            state: State::Rejected {
                response: Some(rejection(config, err)),
            },
            config: config.clone(),
            body: PhantomData,
        }
    }

    pub(super) fn buffering(parts: Parts, body: Body, inner: S, config: Arc<Config>) -> Self {
        Self {
            state: State::Buffering {
                body,
                buffer: Buffer::Empty,
                read: 0,
                parts: Some(parts),
                inner: Some(inner),
            },
            config,
            body: PhantomData,
        }
    }
}

/// The error for a streamed body that went past the limit; hands the unread
/// rest to the drain.
fn too_large_while_reading(config: &Config, parts: &Option<Parts>, body: &mut Body) -> VerifyError {
    let body = std::mem::take(body);
    let headers = parts.as_ref().map(|p| &p.headers);
    if headers.is_some_and(|h| config.drain.applies(h, body.size_hint().upper(), true)) {
        config.drain.spawn(body);
    }
    over_the_limit(config.body_limit)
}

/// The error for a body found larger than `limit` without a declared length.
pub(super) fn over_the_limit(limit: usize) -> VerifyError {
    VerifyError::new(
        VerifyErrorKind::PayloadTooLarge,
        format!("the body is larger than the limit of {limit} bytes"),
    )
}

/// The rejection response, logged at `debug`; a `warn` summary when one is
/// due (see [`super::summary`]).
fn rejection(config: &Config, err: VerifyError) -> Response<Body> {
    config.metrics.rejected(err.kind());
    let scheme = config.verifier.scheme().name();
    tracing::debug!(
        scheme = %scheme,
        kind = %err.kind(),
        receiver = err.receiver_detail().unwrap_or(""),
        "webhook rejected: {err}"
    );
    if let Some(summary) = config.rejections.record(err.kind()) {
        tracing::warn!(scheme = %scheme, rejected = summary.total(), "{summary}");
    }
    let mut response = (config.on_rejection)(&err);
    response.extensions_mut().insert(err);
    response
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Rejected { response } => {
                    let response = response.take().unwrap_or_else(polled_after_completion);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(Body::new)));
                }
                StateProj::Buffering {
                    body,
                    buffer,
                    read,
                    parts,
                    inner,
                } => {
                    let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                    let next = match frame {
                        Some(Ok(frame)) => {
                            let Ok(data) = frame.into_data() else {
                                continue;
                            };
                            match take_data(this.config, data, buffer, read, parts, body) {
                                Ok(()) => continue,
                                Err(err) => State::Rejected {
                                    response: Some(rejection(this.config, err)),
                                },
                            }
                        }
                        Some(Err(err)) => {
                            let err = VerifyError::new(
                                VerifyErrorKind::BodyReadFailed,
                                format!("the body could not be read: {err}"),
                            );
                            State::Rejected {
                                response: Some(rejection(this.config, err)),
                            }
                        }
                        None => {
                            let bytes = std::mem::replace(buffer, Buffer::Empty).into_bytes();
                            let (Some(parts), Some(service)) = (parts.take(), inner.take()) else {
                                return Poll::Ready(Ok(polled_after_completion()));
                            };
                            verify_and_call(this.config, parts, service, bytes)
                        }
                    };
                    this.state.set(next);
                }
            }
        }
    }
}

/// Adds one data frame to `buffer`; past the body limit, the error (and
/// the unread rest goes to the drain).
fn take_data(
    config: &Config,
    mut data: Bytes,
    buffer: &mut Buffer,
    read: &mut u64,
    parts: &Option<Parts>,
    body: &mut Body,
) -> Result<(), VerifyError> {
    let chunk = data.copy_to_bytes(data.remaining());
    *read = read.saturating_add(chunk.len() as u64);
    if *read > config.body_limit as u64 {
        return Err(too_large_while_reading(config, parts, body));
    }
    let hint = body.size_hint().lower() as usize;
    buffer.push(chunk, hint);
    Ok(())
}

/// Verifies the whole body: on success calls `service` with the verified
/// request (the [`Verified`](crate::Verified) in its extensions), else
/// rejects.
fn verify_and_call<S>(config: &Config, mut parts: Parts, mut service: S, bytes: Bytes) -> State<S>
where
    S: Service<Request<Body>>,
{
    let now = config.verifier.window().now_unix();
    let started = Instant::now();
    let result = config
        .verifier
        .verify_at(&parts.headers, bytes.clone(), now);
    let took = started.elapsed();
    match result {
        Ok(verified) => {
            config.metrics.accepted(&verified, now, took);
            tracing::debug!(
                scheme = %verified.scheme(),
                id = %verified.id(),
                secret_index = verified.secret_index(),
                "webhook verified"
            );
            let span = receive_span(&verified);
            parts.extensions.insert(verified);
            let req = Request::from_parts(parts, Body::from(bytes));
            State::Calling {
                future: span.in_scope(|| service.call(req)).instrument(span),
            }
        }
        Err(err) => {
            config.metrics.rejected_after(took);
            if let Some(diagnoser) = &config.diagnoser {
                diagnoser.consider(&config.verifier, err.kind(), &parts.headers, &bytes);
            }
            State::Rejected {
                response: Some(rejection(config, err)),
            }
        }
    }
}

/// The span the inner service runs in: the event's id and scheme, and the
/// sender's trace when the request carried a well-formed `traceparent`.
fn receive_span(verified: &crate::Verified) -> tracing::Span {
    let span = tracing::info_span!(
        "webhook.receive",
        id = %verified.id(),
        scheme = %verified.scheme(),
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    crate::trace_context::continue_trace(&span, verified.traceparent());
    span
}

/// The answer of a future polled again after it completed.
fn polled_after_completion() -> Response<Body> {
    let err = VerifyError::new(
        VerifyErrorKind::BodyReadFailed,
        "response future polled after completion",
    );
    crate::problem::default_rejection(&err)
}
