//! Events going out, deliveries (one per event and destination) and their
//! attempts: the records the operator API returns.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::SenderError;
use crate::scheme::validate_id;
use crate::trace_context::TraceParent;

/// An event to publish: an id kept across every attempt, a type that
/// destinations filter on, and the body bytes, serialized once.
///
/// ```
/// use webhook_guard::sender::OutgoingEvent;
///
/// let e = OutgoingEvent::new("kpi.alert", &serde_json::json!({"kpi": "churn"}))?;
/// assert_eq!(e.event_type(), "kpi.alert");
/// assert_eq!(e.body(), br#"{"kpi":"churn"}"#);
/// assert!(e.id().starts_with("evt_"));
/// # Ok::<(), webhook_guard::sender::SenderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    id: String,
    event_type: String,
    body: Bytes,
    traceparent: Option<TraceParent>,
}

/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

impl OutgoingEvent {
    /// Serializes `payload` to JSON once; these bytes are what every attempt
    /// sends. The id is a fresh `evt_<uuid v7>`.
    ///
    /// # Errors
    ///
    /// [`SenderError::InvalidEvent`] when the type is empty, too long or not
    /// visible ASCII, or the payload cannot be serialized.
    pub fn new(
        event_type: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<Self, SenderError> {
        let body = serde_json::to_vec(payload).map_err(|e| SenderError::InvalidEvent {
            reason: format!("the payload cannot be serialized to JSON: {e}"),
        })?;
        Self::build(event_type.into(), Bytes::from(body))
    }

    /// Takes JSON bytes as they are (checked to be JSON, never re-encoded).
    ///
    /// # Errors
    ///
    /// [`SenderError::InvalidEvent`] for a bad type or bytes that are not JSON.
    pub fn from_json(
        event_type: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Result<Self, SenderError> {
        let body = body.into();
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
            SenderError::InvalidEvent {
                reason: format!("the body is not JSON: {e}"),
            }
        })?;
        Self::build(event_type.into(), body)
    }

    fn build(event_type: String, body: Bytes) -> Result<Self, SenderError> {
        if event_type.is_empty()
            || event_type.len() > MAX_EVENT_TYPE_LEN
            || !event_type.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SenderError::InvalidEvent {
                reason: format!(
                    "the event type must be 1 to {MAX_EVENT_TYPE_LEN} visible ASCII characters"
                ),
            });
        }
        Ok(Self {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            event_type,
            body,
            traceparent: None,
        })
    }

    /// Replaces the generated id, for callers that already have a unique
    /// one (an outbox row id, say). Receivers deduplicate on it.
    ///
    /// # Errors
    ///
    /// [`SenderError::InvalidEvent`] unless the id is 1 to 256 visible ASCII
    /// characters.
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, SenderError> {
        let id = id.into();
        validate_id(id.as_bytes()).map_err(|reason| SenderError::InvalidEvent {
            reason: format!("invalid event id: {reason}"),
        })?;
        self.id = id;
        Ok(self)
    }

    /// Joins the deliveries of this event to a trace: the
    /// `traceparent` is stored with each delivery and sent as the
    /// `traceparent` header on every attempt (retries and replays too), so
    /// a receiver behind [`VerifyLayer`](crate::VerifyLayer) continues the
    /// trace. The header is not part of the signature (see
    /// [`crate::trace_context`]). With the `opentelemetry` feature,
    /// publishing fills it from the current span when it is not set.
    ///
    /// ```
    /// use webhook_guard::sender::OutgoingEvent;
    /// use webhook_guard::trace_context::TraceParent;
    ///
    /// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
    /// let e = OutgoingEvent::new("kpi.alert", &serde_json::json!({}))?.with_traceparent(tp);
    /// assert_eq!(e.traceparent().map(|t| t.trace_id()), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: TraceParent) -> Self {
        self.traceparent = Some(traceparent);
        self
    }

    /// The event as published: without a `traceparent` of its own, with the
    /// current span's trace (feature `opentelemetry`).
    pub(crate) fn in_current_trace(self) -> Self {
        #[cfg(feature = "opentelemetry")]
        if self.traceparent.is_none() {
            if let Some(tp) = TraceParent::current() {
                return self.with_traceparent(tp);
            }
        }
        self
    }

    /// The trace the deliveries join, if any.
    pub fn traceparent(&self) -> Option<&TraceParent> {
        self.traceparent.as_ref()
    }

    /// The id every attempt carries.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event type destinations filter on.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The exact body bytes sent.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn body_bytes(&self) -> Bytes {
        self.body.clone()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Retries are exhausted (or the endpoint answered 410 Gone): in the
    /// dead letter queue.
    DeadLettered,
    /// Was dead-lettered, then replayed as a new delivery
    /// ([`Delivery::replayed_as`]).
    Replayed,
}

impl DeliveryStatus {
    /// The snake_case name used in JSON and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::DeadLettered => "dead_lettered",
            Self::Replayed => "replayed",
        }
    }

    /// Parses [`as_str`](Self::as_str) back.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "dead_lettered" => Self::DeadLettered,
            "replayed" => Self::Replayed,
            _ => return None,
        })
    }
}

/// Writes [`as_str`](DeliveryStatus::as_str).
impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event on its way to one destination.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Delivery {
    /// Stable id, `dlv_...`.
    pub id: String,
    /// Store order: higher is newer. Used as the paging cursor.
    pub seq: i64,
    /// The event id, identical on every attempt and every replay.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The destination's id.
    pub destination_id: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries), unix ms.
    pub next_attempt_at_ms: Option<i64>,
    /// While a worker holds it: until when, unix ms. A worker that dies
    /// leaves the lease to expire, and the delivery becomes due again.
    pub lease_until_ms: Option<i64>,
    /// When the event was published (or the replay was asked for), unix ms.
    pub created_at_ms: i64,
    /// Last change, unix ms.
    pub updated_at_ms: i64,
    /// When a 2xx was received, unix ms.
    pub delivered_at_ms: Option<i64>,
    /// When it entered the dead letter queue, unix ms.
    pub dead_lettered_at_ms: Option<i64>,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// The delivery this one replays or resends.
    pub replay_of: Option<String>,
    /// The delivery that replayed this one.
    pub replayed_as: Option<String>,
    /// The body bytes sent on every attempt (not serialized).
    #[serde(skip)]
    pub body: Bytes,
    /// The publisher's trace, sent as the `traceparent` header on every
    /// attempt ([`OutgoingEvent::with_traceparent`]).
    pub traceparent: Option<TraceParent>,
}

/// The class of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// No answer within the connect or total timeout.
    Timeout,
    /// The connection was refused, reset or closed early.
    Connect,
    /// The host name did not resolve. The sender itself reports a name that
    /// does not resolve as [`Blocked`](Self::Blocked), so that the history
    /// does not tell it from a name that resolves to internal addresses;
    /// this class remains for attempts recorded before.
    Dns,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// An answer came, with a status other than 2xx.
    Status,
    /// The host resolved to no address the SSRF guard allows: only refused
    /// ones, or none at all. The attempt's error says no more; the sender's
    /// log names the addresses or the DNS error.
    Blocked,
    /// The request could not be signed (no active secret, unknown scheme).
    Signing,
    /// Anything else while sending or reading the answer.
    Io,
}

impl ErrorClass {
    /// The snake_case name used in JSON, storage and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Status => "status",
            Self::Blocked => "blocked",
            Self::Signing => "signing",
            Self::Io => "io",
        }
    }

    /// Parses [`as_str`](Self::as_str) back.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "timeout" => Self::Timeout,
            "connect" => Self::Connect,
            "dns" => Self::Dns,
            "tls" => Self::Tls,
            "status" => Self::Status,
            "blocked" => Self::Blocked,
            "signing" => Self::Signing,
            "io" => Self::Io,
            _ => return None,
        })
    }
}

/// One HTTP attempt of a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeliveryAttempt {
    /// The delivery attempted.
    pub delivery_id: String,
    /// 1 for the first attempt of this delivery, then 2, 3, ...
    pub attempt: u32,
    /// When the request started, unix ms.
    pub started_at_ms: i64,
    /// How long until the answer (or the failure), ms.
    pub duration_ms: u64,
    /// The answer's status code, when one came.
    pub status_code: Option<u16>,
    /// Why it failed; `None` for a 2xx.
    pub error_class: Option<ErrorClass>,
    /// The failure in words; `None` for a 2xx.
    pub error: Option<String>,
    /// The first bytes of the answer's body (bounded, lossy UTF-8).
    pub response_body: Option<String>,
}

impl DeliveryAttempt {
    /// A successful attempt record with nothing measured yet; set the
    /// fields that apply (a store's own tests build records this way).
    pub fn new(delivery_id: impl Into<String>, attempt: u32, started_at_ms: i64) -> Self {
        Self {
            delivery_id: delivery_id.into(),
            attempt,
            started_at_ms,
            duration_ms: 0,
            status_code: None,
            error_class: None,
            error: None,
            response_body: None,
        }
    }

    /// Whether the attempt got a 2xx.
    pub fn succeeded(&self) -> bool {
        self.error_class.is_none()
    }
}

/// Filters for [`Sender::deliveries`](super::Sender::deliveries); every
/// field set must match. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct DeliveryQuery {
    /// Only this destination.
    pub destination_id: Option<String>,
    /// Only this event id.
    pub event_id: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Created at or after, unix ms.
    pub since_ms: Option<i64>,
    /// Created before, unix ms.
    pub until_ms: Option<i64>,
    /// Only deliveries older than this cursor (a `seq` from a previous page).
    pub before_seq: Option<i64>,
    /// Page size (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page size.
pub const MAX_PAGE_SIZE: usize = 1_000;

impl DeliveryQuery {
    /// A query matching every delivery.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only this destination.
    #[must_use]
    pub fn destination(mut self, id: impl Into<String>) -> Self {
        self.destination_id = Some(id.into());
        self
    }
    /// Only this event id.
    #[must_use]
    pub fn event(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }
    /// Only this event type.
    #[must_use]
    pub fn event_type(mut self, t: impl Into<String>) -> Self {
        self.event_type = Some(t.into());
        self
    }
    /// Only this status.
    #[must_use]
    pub fn status(mut self, status: DeliveryStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Created in `[since_ms, until_ms)`.
    #[must_use]
    pub fn between(mut self, since_ms: Option<i64>, until_ms: Option<i64>) -> Self {
        self.since_ms = since_ms;
        self.until_ms = until_ms;
        self
    }
    /// Page size.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    /// The next page after `page`.
    #[must_use]
    pub fn after_page<T>(mut self, page: &Page<T>) -> Self {
        self.before_seq = page.next_cursor;
        self
    }

    pub(crate) fn page_size(&self) -> usize {
        self.limit
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE)
    }

    pub(crate) fn matches(&self, d: &Delivery) -> bool {
        self.destination_id
            .as_ref()
            .is_none_or(|x| *x == d.destination_id)
            && self.event_id.as_ref().is_none_or(|x| *x == d.event_id)
            && self.event_type.as_ref().is_none_or(|x| *x == d.event_type)
            && self.status.is_none_or(|s| s == d.status)
            && self.since_ms.is_none_or(|t| d.created_at_ms >= t)
            && self.until_ms.is_none_or(|t| d.created_at_ms < t)
            && self.before_seq.is_none_or(|s| d.seq < s)
    }
}

/// One page of results, newest first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass to [`DeliveryQuery::after_page`] for the next page; `None` on the
    /// last page.
    pub next_cursor: Option<i64>,
}
