//! W3C Trace Context: the `traceparent` a delivery carries from the
//! sender's trace to the receiver's.
//!
//! A sender that publishes inside a trace gives the event its
//! [`TraceParent`] ([`OutgoingEvent::with_traceparent`](crate::sender::OutgoingEvent::with_traceparent));
//! it is stored with the delivery and sent as the `traceparent` header on
//! every attempt, retries and replays included. On the receiving side,
//! [`VerifyLayer`](crate::VerifyLayer) reads a well-formed `traceparent`
//! from a verified request, runs the inner service in a `webhook.receive`
//! span whose `trace_id` and `parent_span_id` fields carry it, and exposes
//! it as [`Verified::traceparent`](crate::Verified::traceparent).
//!
//! With the inbox (feature `inbox`), the handler runs
//! later, outside the request: the inbox stores the verified request's
//! `traceparent` with the event, hands it to the handler
//! (`InboxEvent::traceparent`) and runs each attempt, retries and attempts
//! after a restart included, in an `inbox.process` span with the same
//! `trace_id` and `parent_span_id` fields.
//!
//! With the `opentelemetry` feature and a `tracing-opentelemetry` layer
//! installed, this needs no code: `publish` takes the current span's trace
//! ([`TraceParent::current`]) for an event that has none, and the
//! `webhook.receive` span (and the inbox's `inbox.process` span) gets the
//! sender's span as its OpenTelemetry parent, so the receiver's spans join
//! the sender's trace.
//!
//! Only `traceparent` travels: the `tracestate` header (vendor-specific
//! trace data) is neither sent, stored nor read, and a joined span starts
//! with an empty trace state.
//!
//! The header is **not signed**: it names a trace, it proves nothing. Use
//! it to join traces, never to decide anything. The receiver takes only the
//! version `00` format, exactly 55 characters; anything else (longer,
//! upper-case hex, an all-zero id, version `ff`) is ignored, never an
//! error, and never reaches a metric label.
//!
//! ```
//! use webhook_guard::trace_context::TraceParent;
//!
//! let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
//! assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
//! assert!(tp.sampled());
//! assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err());
//! # Ok::<(), webhook_guard::trace_context::InvalidTraceParent>(())
//! ```

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The `traceparent` header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Length of a version `00` `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

/// A well-formed W3C `traceparent` (version `00`): a trace id, the id of
/// the span that sent it, and the trace flags. Lower-case hex, neither id
/// all zeros.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The whole header value, validated.
    text: Box<str>,
}

/// Why a text is not a `traceparent`. Names the part, never echoes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a W3C traceparent (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`): {reason}"
)]
pub struct InvalidTraceParent {
    reason: &'static str,
}

impl InvalidTraceParent {
    const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

/// Whether every byte is a lower-case hex digit (the format allows no
/// upper case).
fn lower_hex(part: &[u8]) -> bool {
    part.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

impl TraceParent {
    /// Parses a version `00` `traceparent`.
    ///
    /// # Errors
    ///
    /// [`InvalidTraceParent`] unless `text` is exactly
    /// `00-<32 hex>-<16 hex>-<2 hex>` in lower-case hex with neither id
    /// all zeros.
    pub fn parse(text: &str) -> Result<Self, InvalidTraceParent> {
        let b = text.as_bytes();
        if b.len() != TRACEPARENT_LEN {
            return Err(InvalidTraceParent::new("it must be 55 characters long"));
        }
        if &b[..3] != b"00-" {
            return Err(InvalidTraceParent::new("only version `00` is understood"));
        }
        if b[35] != b'-' || b[52] != b'-' {
            return Err(InvalidTraceParent::new(
                "the parts must be separated by `-`",
            ));
        }
        let (trace_id, parent_id, flags) = (&b[3..35], &b[36..52], &b[53..55]);
        if !(lower_hex(trace_id) && lower_hex(parent_id) && lower_hex(flags)) {
            return Err(InvalidTraceParent::new(
                "the ids and flags must be lower-case hex",
            ));
        }
        if trace_id.iter().all(|&c| c == b'0') {
            return Err(InvalidTraceParent::new("the trace id is all zeros"));
        }
        if parent_id.iter().all(|&c| c == b'0') {
            return Err(InvalidTraceParent::new("the parent id is all zeros"));
        }
        Ok(Self { text: text.into() })
    }

    /// The well-formed `traceparent` header of `headers`, if there is
    /// exactly one; anything else is `None` (malformed text from the
    /// network is ignored, not an error).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        Self::parse(value.to_str().ok()?).ok()
    }

    /// The whole value, as sent in the header.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 32 hex digits of the trace id.
    pub fn trace_id(&self) -> &str {
        &self.text[3..35]
    }

    /// The 16 hex digits of the id of the span that sent it.
    pub fn parent_id(&self) -> &str {
        &self.text[36..52]
    }

    /// The two hex digits of the trace flags.
    pub fn flags(&self) -> &str {
        &self.text[53..55]
    }

    /// Whether the `sampled` flag is set.
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(self.flags(), 16).is_ok_and(|f| f & 1 == 1)
    }

    /// The value as a header value.
    pub fn header_value(&self) -> HeaderValue {
        // Validated visible ASCII, so this cannot fail; the fallback keeps
        // the function total.
        HeaderValue::from_str(&self.text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A stored `traceparent` column: written validated, so a value that no
    /// longer parses (edited by hand) is dropped rather than failing the
    /// delivery or the event that carries it.
    #[cfg(any(
        feature = "inbox",
        feature = "sqlite",
        all(feature = "sender", feature = "postgres")
    ))]
    pub(crate) fn from_stored(text: Option<&str>) -> Option<Self> {
        text.and_then(|t| Self::parse(t).ok())
    }
}

/// Makes `span` continue the sender's trace: records `traceparent`'s ids in
/// the span's `trace_id` and `parent_span_id` fields (declared
/// `tracing::field::Empty`) and, with the `opentelemetry` feature, gives the
/// span the sender's span as its OpenTelemetry parent. Call it before the
/// span is first entered. Nothing happens without a `traceparent`.
pub(crate) fn continue_trace(span: &tracing::Span, traceparent: Option<&TraceParent>) {
    let Some(tp) = traceparent else {
        return;
    };
    span.record("trace_id", tracing::field::display(tp.trace_id()));
    span.record("parent_span_id", tracing::field::display(tp.parent_id()));
    #[cfg(feature = "opentelemetry")]
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        // Without an OpenTelemetry layer there is nothing to join.
        let _ = span.set_parent(tp.to_context());
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({})", self.text)
    }
}

impl std::str::FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for TraceParent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// OpenTelemetry contexts to and from a [`TraceParent`].
#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::TraceParent;

    impl TraceParent {
        /// The OpenTelemetry trace of the current `tracing` span (through
        /// the `tracing-opentelemetry` layer); `None` outside a trace or
        /// without the layer.
        #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
        pub fn current() -> Option<Self> {
            Self::of_span(&tracing::Span::current())
        }

        /// The OpenTelemetry trace of `span`, as [`current`](Self::current).
        #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
        pub fn of_span(span: &tracing::Span) -> Option<Self> {
            let cx = span.context();
            let otel = cx.span();
            let sc = otel.span_context();
            if !sc.is_valid() {
                return None;
            }
            Self::parse(&format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ))
            .ok()
        }

        /// This trace as a remote OpenTelemetry parent, for
        /// `OpenTelemetrySpanExt::set_parent`.
        #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
        pub fn to_context(&self) -> opentelemetry::Context {
            // Validated hex: the fallbacks are never taken.
            let trace_id = TraceId::from_hex(self.trace_id()).unwrap_or(TraceId::INVALID);
            let span_id = SpanId::from_hex(self.parent_id()).unwrap_or(SpanId::INVALID);
            let flags = u8::from_str_radix(self.flags(), 16).unwrap_or(0);
            let sc = SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::new(flags),
                true,
                TraceState::default(),
            );
            opentelemetry::Context::new().with_remote_span_context(sc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parts_of_a_good_value() {
        let tp = TraceParent::parse(GOOD).unwrap();
        assert_eq!(tp.as_str(), GOOD);
        assert_eq!(tp.flags(), "01");
        assert!(tp.sampled());
        assert!(
            !TraceParent::parse(&GOOD.replace("-01", "-00"))
                .unwrap()
                .sampled()
        );
    }

    #[test]
    fn malformed_values_are_refused_with_the_reason() {
        for (bad, reason) in [
            ("", "55 characters"),
            (&format!("{GOOD}-extra") as &str, "55 characters"),
            (&GOOD.replacen("00-", "ff-", 1), "version"),
            (&GOOD.replacen("00-", "01-", 1), "version"),
            (&GOOD.to_uppercase(), "lower-case"),
            (&GOOD.replace("-00f0", "_00f0"), "separated"),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "trace id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "parent id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                "hex",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
                "55 characters",
            ),
        ] {
            let err = TraceParent::parse(bad).unwrap_err().to_string();
            assert!(err.contains(reason), "{bad:?}: {err}");
        }
    }

    #[test]
    fn only_one_well_formed_header_is_taken() {
        let mut headers = HeaderMap::new();
        assert_eq!(TraceParent::from_headers(&headers), None);
        headers.insert(TRACEPARENT, HeaderValue::from_static(GOOD));
        assert_eq!(
            TraceParent::from_headers(&headers).map(|t| t.to_string()),
            Some(GOOD.to_owned())
        );
        headers.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        assert_eq!(TraceParent::from_headers(&headers), None, "two values");
        headers.insert(TRACEPARENT, HeaderValue::from_bytes(b"00-\xff").unwrap());
        assert_eq!(TraceParent::from_headers(&headers), None, "not text");
    }
}
