//! Reading and discarding the rest of a body refused as too large, so that a
//! client that writes its whole request before reading gets the 413.
//!
//! An HTTP/1 server that answers without reading the body closes the
//! connection; the client's unsent bytes then meet a closed socket and the
//! kernel resets the connection, discarding the 413 the client has not read
//! yet (`Broken pipe` / `Connection reset by peer`). Like nginx's lingering
//! close, the refused body is read and thrown away for a bounded number of
//! bytes and a bounded time, in a task of its own, while the server writes
//! the answer.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, header};
use http_body_util::BodyExt;

/// Default [`VerifyLayer::drain_rejected_body`](super::VerifyLayer::drain_rejected_body)
/// byte cap: 4 MiB.
pub const DEFAULT_DRAIN_BYTES: usize = 4 * 1024 * 1024;

/// Default [`VerifyLayer::drain_rejected_body`](super::VerifyLayer::drain_rejected_body)
/// time cap: 5 s.
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(5);

/// How much of a refused body is read and discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drain {
    pub(crate) max_bytes: u64,
    pub(crate) max_time: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_DRAIN_BYTES as u64,
            max_time: DEFAULT_DRAIN_TIME,
        }
    }
}

impl Drain {
    /// Whether a body of which `remaining` bytes are still unread (when
    /// known) is worth draining after a 413; `polled` says whether reading it
    /// had begun.
    ///
    /// Not when draining is off; not when the client announced
    /// `Expect: 100-continue` and the body was not polled yet (the server then never
    /// sends `100 Continue`, so the client reads the 413 without sending the
    /// body); and not when the declared rest is larger than the cap, since the
    /// bytes past the cap would still meet a closed socket.
    pub(crate) fn applies(
        &self,
        headers: &HeaderMap,
        remaining: Option<u64>,
        polled: bool,
    ) -> bool {
        if self.max_bytes == 0 || self.max_time.is_zero() {
            return false;
        }
        if !polled && expects_continue(headers) {
            return false;
        }
        remaining.is_none_or(|rest| rest <= self.max_bytes)
    }

    /// Reads and discards at most `max_bytes` of `body` for at most
    /// `max_time`, in a task of its own, then drops it (which lets the server
    /// close the connection if the body did not end). Nothing is kept.
    ///
    /// Outside a Tokio runtime the body is dropped at once.
    pub(crate) fn spawn(self, body: Body) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let outcome = tokio::time::timeout(self.max_time, discard(body, self.max_bytes)).await;
            match outcome {
                Ok(discarded) => {
                    tracing::debug!(discarded, "refused body drained");
                }
                Err(_) => tracing::debug!(
                    max_time_ms = self.max_time.as_millis() as u64,
                    "refused body not drained within the time cap"
                ),
            }
        });
    }
}

/// Reads frames until the body ends, fails, or `max_bytes` were read; returns
/// how many bytes were discarded.
async fn discard(mut body: Body, max_bytes: u64) -> u64 {
    let mut discarded: u64 = 0;
    while discarded < max_bytes {
        match body.frame().await {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, bytes::Bytes::len);
                discarded = discarded.saturating_add(len as u64);
            }
            Some(Err(_)) | None => break,
        }
    }
    discarded
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
