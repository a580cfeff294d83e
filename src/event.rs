//! The platform's events as Rust types.
//!
//! Every webhook the platform sends is an [`Envelope`]:
//!
//! ```json
//! {
//!   "event": "ingestion.completed",
//!   "timestamp": "2025-01-15T10:30:00Z",
//!   "tenantId": "tenant_abc123",
//!   "data": { "jobId": "job_xyz", "table": "sales_data", "rowsIngested": 15234, "duration": 3200 }
//! }
//! ```
//!
//! The `event` field picks the [`Event`] variant and `data` becomes its
//! payload struct. Field names are camelCase on the wire and snake_case in
//! Rust.
//!
//! Two rules keep deliveries flowing when the platform grows:
//!
//! - an event type this version does not know becomes
//!   [`Event::Unknown`] holding the raw `data`, instead of failing;
//! - fields this version does not know are ignored.
//!
//! A known event whose `data` has the wrong shape (a missing `jobId`, a
//! string where a number belongs) is an error, which
//! [`Webhook`](crate::extract::Webhook) answers with 422 and the JSON path of
//! the failure.
//!
//! ```
//! use std::time::Duration;
//! use webhook_guard::event::{Envelope, Event, IngestionCompleted};
//!
//! let body = br#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z",
//!     "tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data",
//!     "rowsIngested":15234,"duration":3200,"addedLater":true}}"#;
//! let envelope: Envelope = serde_json::from_slice(body)?;
//! assert_eq!(envelope.tenant_id, "tenant_abc123");
//! assert_eq!(envelope.timestamp.unix_timestamp(), 1_736_937_000);
//! match &envelope.event {
//!     Event::IngestionCompleted(done) => {
//!         assert_eq!(done.job_id, "job_xyz");
//!         assert_eq!(done.rows_ingested, 15_234);
//!         assert_eq!(done.duration, Duration::from_millis(3200));
//!     }
//!     other => panic!("unexpected {}", other.event_type()),
//! }
//!
//! // A type this version does not know is kept, not refused.
//! let body = br#"{"event":"model.trained","timestamp":"2025-01-15T10:30:00Z",
//!     "tenantId":"t","data":{"modelId":"m_1"}}"#;
//! let envelope: Envelope = serde_json::from_slice(body)?;
//! assert_eq!(envelope.event.event_type(), "model.trained");
//! assert!(envelope.event.is_unknown());
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! ## Sending
//!
//! The same types serialize to the same wire form, so a sender builds events
//! with the payload constructors (the structs are `#[non_exhaustive]`, so
//! struct literals are not available outside this crate):
//!
//! ```
//! use std::time::Duration;
//! use time::macros::datetime;
//! use webhook_guard::event::{Envelope, IngestionCompleted};
//!
//! let payload = IngestionCompleted::new("job_xyz", "sales_data", 15_234, Duration::from_millis(3200));
//! let envelope = Envelope::new("tenant_abc123", datetime!(2025-01-15 10:30 UTC), payload);
//! assert_eq!(
//!     serde_json::to_string(&envelope)?,
//!     r#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#
//! );
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! ## Round trip
//!
//! Serializing then deserializing gives back an equal value, for every value
//! this module deserializes (including [`Event::Unknown`]). Deserializing then
//! serializing gives back the same JSON for bodies in canonical form: no
//! fields unknown to this version, optional fields absent rather than `null`,
//! and timestamps written as this crate writes RFC 3339 (`Z` for UTC, no
//! trailing zeros in fractions of a second).
//!
//! ## Durations
//!
//! Durations travel as whole **milliseconds** (a JSON unsigned integer) and
//! are [`std::time::Duration`] in Rust. A duration is serialized truncated to
//! whole milliseconds; one longer than `u64::MAX` milliseconds cannot be
//! serialized. A fractional or negative number is refused when reading.
//!
//! ## Timestamps
//!
//! Timestamps are RFC 3339 text on the wire and [`time::OffsetDateTime`] in
//! Rust (years 0000 to 9999). The offset is kept, so `+02:00` is written back
//! as `+02:00`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

/// Serde for durations as whole milliseconds (a JSON unsigned integer).
///
/// Use it on your own types with `#[serde(with = "webhook_guard::event::duration_ms")]`.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};

    /// Writes `duration` as whole milliseconds (truncated).
    ///
    /// # Errors
    ///
    /// When the duration is longer than `u64::MAX` milliseconds.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let ms = u64::try_from(duration.as_millis()).map_err(|_| {
            S::Error::custom("a duration longer than u64::MAX milliseconds cannot be sent")
        })?;
        serializer.serialize_u64(ms)
    }

    /// Reads whole milliseconds.
    ///
    /// # Errors
    ///
    /// When the value is not an unsigned integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer)
            .map(Duration::from_millis)
            .map_err(|e| D::Error::custom(format!("{e} (a duration in whole milliseconds)")))
    }

    /// The same for an optional duration; use with `#[serde(default)]`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `Some` as whole milliseconds and `None` as `null`.
        ///
        /// # Errors
        ///
        /// When the duration is longer than `u64::MAX` milliseconds.
        pub fn serialize<S: Serializer>(
            duration: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match duration {
                Some(d) => super::serialize(d, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Reads whole milliseconds or `null`.
        ///
        /// # Errors
        ///
        /// When the value is neither `null` nor an unsigned integer.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Ms(#[serde(with = "super")] Duration);
            Ok(Option::<Ms>::deserialize(deserializer)?.map(|Ms(d)| d))
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, $field: impl Into<$ty>) -> Self {
                self.$field = Some($field.into());
                self
            }
        )*
    };
}

/// `ingestion.completed`: a load job finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IngestionCompleted {
    /// The job's id.
    pub job_id: String,
    /// The table that was loaded.
    pub table: String,
    /// How many rows were written.
    pub rows_ingested: u64,
    /// How long the job ran (whole milliseconds on the wire).
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    /// Rows that were read but refused (validation failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_rejected: Option<u64>,
    /// Where the data came from (a file name, a connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Bytes read from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_ingested: Option<u64>,
}

impl IngestionCompleted {
    /// The payload with its required fields; optional ones are unset.
    pub fn new(
        job_id: impl Into<String>,
        table: impl Into<String>,
        rows_ingested: u64,
        duration: Duration,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            table: table.into(),
            rows_ingested,
            duration,
            rows_rejected: None,
            source: None,
            bytes_ingested: None,
        }
    }

    setters! {
        /// Sets [`rows_rejected`](Self::rows_rejected).
        with_rows_rejected: rows_rejected: u64;
        /// Sets [`source`](Self::source).
        with_source: source: String;
        /// Sets [`bytes_ingested`](Self::bytes_ingested).
        with_bytes_ingested: bytes_ingested: u64;
    }
}

/// `ingestion.failed`: a load job stopped with an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IngestionFailed {
    /// The job's id.
    pub job_id: String,
    /// The table that was being loaded.
    pub table: String,
    /// What went wrong, for people.
    pub error: String,
    /// A stable code for the failure, for programs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Rows written before the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_ingested: Option<u64>,
    /// Whether running the job again may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// How long the job ran before failing (whole milliseconds on the wire).
    #[serde(
        default,
        with = "duration_ms::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

impl IngestionFailed {
    /// The payload with its required fields; optional ones are unset.
    pub fn new(
        job_id: impl Into<String>,
        table: impl Into<String>,
        error: impl Into<String>,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            table: table.into(),
            error: error.into(),
            error_code: None,
            rows_ingested: None,
            retryable: None,
            duration: None,
        }
    }

    setters! {
        /// Sets [`error_code`](Self::error_code).
        with_error_code: error_code: String;
        /// Sets [`rows_ingested`](Self::rows_ingested).
        with_rows_ingested: rows_ingested: u64;
        /// Sets [`retryable`](Self::retryable).
        with_retryable: retryable: bool;
        /// Sets [`duration`](Self::duration).
        with_duration: duration: Duration;
    }
}

/// `kpi.computed`: a KPI has a new value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KpiComputed {
    /// The KPI's id.
    pub kpi_id: String,
    /// The KPI's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new value.
    pub value: f64,
    /// The value of the previous period, for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_value: Option<f64>,
    /// The unit of `value` (`"EUR"`, `"%"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The period the value covers (`"2025-01"`, `"2025-W03"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

impl KpiComputed {
    /// The payload with its required fields; optional ones are unset.
    pub fn new(kpi_id: impl Into<String>, value: f64) -> Self {
        Self {
            kpi_id: kpi_id.into(),
            name: None,
            value,
            previous_value: None,
            unit: None,
            period: None,
        }
    }

    setters! {
        /// Sets [`name`](Self::name).
        with_name: name: String;
        /// Sets [`previous_value`](Self::previous_value).
        with_previous_value: previous_value: f64;
        /// Sets [`unit`](Self::unit).
        with_unit: unit: String;
        /// Sets [`period`](Self::period).
        with_period: period: String;
    }
}

/// `kpi.alert`: a KPI crossed a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KpiAlert {
    /// The KPI's id.
    pub kpi_id: String,
    /// The KPI's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The value that triggered the alert.
    pub value: f64,
    /// The threshold that was crossed.
    pub threshold: f64,
    /// How the value relates to the threshold (`"above"`, `"below"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// How urgent the alert is (`"info"`, `"warning"`, `"critical"`, ...).
    /// Kept as text so a new level never fails a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// A message for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl KpiAlert {
    /// The payload with its required fields; optional ones are unset.
    pub fn new(kpi_id: impl Into<String>, value: f64, threshold: f64) -> Self {
        Self {
            kpi_id: kpi_id.into(),
            name: None,
            value,
            threshold,
            condition: None,
            severity: None,
            message: None,
        }
    }

    setters! {
        /// Sets [`name`](Self::name).
        with_name: name: String;
        /// Sets [`condition`](Self::condition).
        with_condition: condition: String;
        /// Sets [`severity`](Self::severity).
        with_severity: severity: String;
        /// Sets [`message`](Self::message).
        with_message: message: String;
    }
}

/// `analysis.completed`: an analysis run finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AnalysisCompleted {
    /// The analysis run's id.
    pub analysis_id: String,
    /// What kind of analysis it was (`"anomaly-detection"`, `"forecast"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_type: Option<String>,
    /// A short summary of the result, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How many findings the run produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insights_count: Option<u64>,
    /// Where to read the full result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    /// How long the run took (whole milliseconds on the wire).
    #[serde(
        default,
        with = "duration_ms::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

impl AnalysisCompleted {
    /// The payload with its required fields; optional ones are unset.
    pub fn new(analysis_id: impl Into<String>) -> Self {
        Self {
            analysis_id: analysis_id.into(),
            analysis_type: None,
            summary: None,
            insights_count: None,
            result_url: None,
            duration: None,
        }
    }

    setters! {
        /// Sets [`analysis_type`](Self::analysis_type).
        with_analysis_type: analysis_type: String;
        /// Sets [`summary`](Self::summary).
        with_summary: summary: String;
        /// Sets [`insights_count`](Self::insights_count).
        with_insights_count: insights_count: u64;
        /// Sets [`result_url`](Self::result_url).
        with_result_url: result_url: String;
        /// Sets [`duration`](Self::duration).
        with_duration: duration: Duration;
    }
}

/// `dashboard.ready`: a dashboard was (re)built and can be viewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DashboardReady {
    /// The dashboard's id.
    pub dashboard_id: String,
    /// The dashboard's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where to view it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How many widgets it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_count: Option<u64>,
}

impl DashboardReady {
    /// The payload with its required fields; optional ones are unset.
    pub fn new(dashboard_id: impl Into<String>) -> Self {
        Self {
            dashboard_id: dashboard_id.into(),
            name: None,
            url: None,
            widget_count: None,
        }
    }

    setters! {
        /// Sets [`name`](Self::name).
        with_name: name: String;
        /// Sets [`url`](Self::url).
        with_url: url: String;
        /// Sets [`widget_count`](Self::widget_count).
        with_widget_count: widget_count: u64;
    }
}

/// One event of the platform's catalogue, or [`Event::Unknown`].
///
/// Deserializes from an [`Envelope`]-shaped object (its `timestamp` and
/// `tenantId` are skipped; take an [`Envelope`] to keep them) and serializes to
/// `{"event": .., "data": ..}`.
///
/// `#[non_exhaustive]`: a later version may move a type out of
/// [`Unknown`](Event::Unknown) into its own variant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `ingestion.completed`
    IngestionCompleted(IngestionCompleted),
    /// `ingestion.failed`
    IngestionFailed(IngestionFailed),
    /// `kpi.computed`
    KpiComputed(KpiComputed),
    /// `kpi.alert`
    KpiAlert(KpiAlert),
    /// `analysis.completed`
    AnalysisCompleted(AnalysisCompleted),
    /// `dashboard.ready`
    DashboardReady(DashboardReady),
    /// An event type this version does not know, kept as received.
    ///
    /// Never produced for a type of the catalogue: a known type with a
    /// malformed payload is an error instead.
    Unknown {
        /// The `event` field.
        event: String,
        /// The raw `data` field; `None` when the body had none.
        data: Option<Value>,
    },
}

impl Event {
    /// The `event` name of [`Event::IngestionCompleted`].
    pub const INGESTION_COMPLETED: &'static str = "ingestion.completed";
    /// The `event` name of [`Event::IngestionFailed`].
    pub const INGESTION_FAILED: &'static str = "ingestion.failed";
    /// The `event` name of [`Event::KpiComputed`].
    pub const KPI_COMPUTED: &'static str = "kpi.computed";
    /// The `event` name of [`Event::KpiAlert`].
    pub const KPI_ALERT: &'static str = "kpi.alert";
    /// The `event` name of [`Event::AnalysisCompleted`].
    pub const ANALYSIS_COMPLETED: &'static str = "analysis.completed";
    /// The `event` name of [`Event::DashboardReady`].
    pub const DASHBOARD_READY: &'static str = "dashboard.ready";

    /// Every `event` name of the built-in catalogue.
    pub const CATALOGUE: [&'static str; 6] = [
        Self::INGESTION_COMPLETED,
        Self::INGESTION_FAILED,
        Self::KPI_COMPUTED,
        Self::KPI_ALERT,
        Self::ANALYSIS_COMPLETED,
        Self::DASHBOARD_READY,
    ];

    /// The `event` name, as on the wire (`"ingestion.completed"`, or the
    /// unknown type's own name).
    pub fn event_type(&self) -> &str {
        match self {
            Self::IngestionCompleted(_) => Self::INGESTION_COMPLETED,
            Self::IngestionFailed(_) => Self::INGESTION_FAILED,
            Self::KpiComputed(_) => Self::KPI_COMPUTED,
            Self::KpiAlert(_) => Self::KPI_ALERT,
            Self::AnalysisCompleted(_) => Self::ANALYSIS_COMPLETED,
            Self::DashboardReady(_) => Self::DASHBOARD_READY,
            Self::Unknown { event, .. } => event,
        }
    }

    /// Whether this is an [`Event::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown { .. })
    }

    /// An unknown event, for forwarding a type this version does not model.
    pub fn unknown(event: impl Into<String>, data: impl Into<Option<Value>>) -> Self {
        Self::Unknown {
            event: event.into(),
            data: data.into(),
        }
    }

    fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        match self {
            Self::IngestionCompleted(p) => map.serialize_entry("data", p),
            Self::IngestionFailed(p) => map.serialize_entry("data", p),
            Self::KpiComputed(p) => map.serialize_entry("data", p),
            Self::KpiAlert(p) => map.serialize_entry("data", p),
            Self::AnalysisCompleted(p) => map.serialize_entry("data", p),
            Self::DashboardReady(p) => map.serialize_entry("data", p),
            Self::Unknown { data: Some(d), .. } => map.serialize_entry("data", d),
            Self::Unknown { data: None, .. } => Ok(()),
        }
    }

    fn has_data(&self) -> bool {
        !matches!(self, Self::Unknown { data: None, .. })
    }
}

macro_rules! from_payload {
    ($($ty:ident),*) => {
        $(
            impl From<$ty> for Event {
                fn from(payload: $ty) -> Self {
                    Self::$ty(payload)
                }
            }
        )*
    };
}
from_payload!(
    IngestionCompleted,
    IngestionFailed,
    KpiComputed,
    KpiAlert,
    AnalysisCompleted,
    DashboardReady
);

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + usize::from(self.has_data())))?;
        map.serialize_entry("event", self.event_type())?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(EnvelopeVisitor { full: false })
            .map(|parts| parts.event)
    }
}

/// The wire envelope: `{event, timestamp, tenantId, data}`.
///
/// See the [module docs](self) for the rules on unknown types and fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Envelope {
    /// The event, from the `event` and `data` fields.
    pub event: Event,
    /// When the event happened (RFC 3339 on the wire).
    pub timestamp: OffsetDateTime,
    /// The tenant the event belongs to (`tenantId` on the wire).
    pub tenant_id: String,
}

impl Envelope {
    /// An envelope around `event`.
    pub fn new(
        tenant_id: impl Into<String>,
        timestamp: OffsetDateTime,
        event: impl Into<Event>,
    ) -> Self {
        Self {
            event: event.into(),
            timestamp,
            tenant_id: tenant_id.into(),
        }
    }

    /// The `event` name; see [`Event::event_type`].
    pub fn event_type(&self) -> &str {
        self.event.event_type()
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Rfc3339<'a>(&'a OffsetDateTime);
        impl Serialize for Rfc3339<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                time::serde::rfc3339::serialize(self.0, serializer)
            }
        }
        let mut map = serializer.serialize_map(Some(3 + usize::from(self.event.has_data())))?;
        map.serialize_entry("event", self.event.event_type())?;
        map.serialize_entry("timestamp", &Rfc3339(&self.timestamp))?;
        map.serialize_entry("tenantId", &self.tenant_id)?;
        self.event.serialize_fields(&mut map)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parts = deserializer.deserialize_map(EnvelopeVisitor { full: true })?;
        let timestamp = parts
            .timestamp
            .ok_or_else(|| de::Error::missing_field("timestamp"))?;
        let tenant_id = parts
            .tenant_id
            .ok_or_else(|| de::Error::missing_field("tenantId"))?;
        Ok(Self {
            event: parts.event,
            timestamp,
            tenant_id,
        })
    }
}

// ---------------------------------------------------------------------------
// Deserialization: the `event` field picks the payload type. When `event`
// comes before `data` (as the platform sends it) the payload is deserialized
// in place, in one pass; otherwise `data` is buffered as a `Value` first.

/// The catalogue, as a closed enum for dispatch.
#[derive(Clone, Copy)]
enum Kind {
    IngestionCompleted,
    IngestionFailed,
    KpiComputed,
    KpiAlert,
    AnalysisCompleted,
    DashboardReady,
}

impl Kind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            Event::INGESTION_COMPLETED => Self::IngestionCompleted,
            Event::INGESTION_FAILED => Self::IngestionFailed,
            Event::KPI_COMPUTED => Self::KpiComputed,
            Event::KPI_ALERT => Self::KpiAlert,
            Event::ANALYSIS_COMPLETED => Self::AnalysisCompleted,
            Event::DASHBOARD_READY => Self::DashboardReady,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::IngestionCompleted => Event::INGESTION_COMPLETED,
            Self::IngestionFailed => Event::INGESTION_FAILED,
            Self::KpiComputed => Event::KPI_COMPUTED,
            Self::KpiAlert => Event::KPI_ALERT,
            Self::AnalysisCompleted => Event::ANALYSIS_COMPLETED,
            Self::DashboardReady => Event::DASHBOARD_READY,
        }
    }

    fn payload<'de, D: Deserializer<'de>>(self, d: D) -> Result<Event, D::Error> {
        Ok(match self {
            Self::IngestionCompleted => Event::IngestionCompleted(Deserialize::deserialize(d)?),
            Self::IngestionFailed => Event::IngestionFailed(Deserialize::deserialize(d)?),
            Self::KpiComputed => Event::KpiComputed(Deserialize::deserialize(d)?),
            Self::KpiAlert => Event::KpiAlert(Deserialize::deserialize(d)?),
            Self::AnalysisCompleted => Event::AnalysisCompleted(Deserialize::deserialize(d)?),
            Self::DashboardReady => Event::DashboardReady(Deserialize::deserialize(d)?),
        })
    }
}

enum Tag {
    Known(Kind),
    Unknown(String),
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagVisitor;
        impl Visitor<'_> for TagVisitor {
            type Value = Tag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the event type as a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
                Ok(match Kind::from_name(v) {
                    Some(kind) => Tag::Known(kind),
                    None => Tag::Unknown(v.to_owned()),
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Tag, E> {
                Ok(match Kind::from_name(&v) {
                    Some(kind) => Tag::Known(kind),
                    None => Tag::Unknown(v),
                })
            }
        }
        deserializer.deserialize_str(TagVisitor)
    }
}

enum Field {
    Event,
    Timestamp,
    TenantId,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "event" => Field::Event,
                    "timestamp" => Field::Timestamp,
                    "tenantId" => Field::TenantId,
                    "data" => Field::Data,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Deserializes `data` straight into the payload type named by the tag.
struct PayloadSeed(Kind);

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Event;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Event, D::Error> {
        self.0.payload(deserializer)
    }
}

struct Rfc3339Seed;

impl<'de> DeserializeSeed<'de> for Rfc3339Seed {
    type Value = OffsetDateTime;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<OffsetDateTime, D::Error> {
        time::serde::rfc3339::deserialize(d)
    }
}

struct Parts {
    event: Event,
    timestamp: Option<OffsetDateTime>,
    tenant_id: Option<String>,
}

/// Reads an envelope; `full: false` skips `timestamp` and `tenantId`.
struct EnvelopeVisitor {
    full: bool,
}

enum DataState {
    Absent,
    Parsed(Event),
    Buffered(Value),
}

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Parts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a webhook envelope: an object with `event`, `timestamp`, `tenantId` and `data`",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parts, A::Error> {
        let mut tag: Option<Tag> = None;
        let mut data = DataState::Absent;
        let mut timestamp = None;
        let mut tenant_id: Option<String> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Event => {
                    if tag.is_some() {
                        return Err(de::Error::duplicate_field("event"));
                    }
                    tag = Some(map.next_value()?);
                }
                Field::Data => {
                    if !matches!(data, DataState::Absent) {
                        return Err(de::Error::duplicate_field("data"));
                    }
                    data = match &tag {
                        Some(Tag::Known(kind)) => {
                            DataState::Parsed(map.next_value_seed(PayloadSeed(*kind))?)
                        }
                        _ => DataState::Buffered(map.next_value()?),
                    };
                }
                Field::Timestamp if self.full => {
                    if timestamp.is_some() {
                        return Err(de::Error::duplicate_field("timestamp"));
                    }
                    timestamp = Some(map.next_value_seed(Rfc3339Seed)?);
                }
                Field::TenantId if self.full => {
                    if tenant_id.is_some() {
                        return Err(de::Error::duplicate_field("tenantId"));
                    }
                    tenant_id = Some(map.next_value()?);
                }
                Field::Timestamp | Field::TenantId | Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let tag = tag.ok_or_else(|| de::Error::missing_field("event"))?;
        let event = match (tag, data) {
            (_, DataState::Parsed(event)) => event,
            (Tag::Unknown(event), DataState::Buffered(data)) => Event::Unknown {
                event,
                data: Some(data),
            },
            (Tag::Unknown(event), DataState::Absent) => Event::Unknown { event, data: None },
            (Tag::Known(_), DataState::Absent) => return Err(de::Error::missing_field("data")),
            (Tag::Known(kind), DataState::Buffered(value)) => {
                kind.payload_from_value(value).map_err(de::Error::custom)?
            }
        };
        Ok(Parts {
            event,
            timestamp,
            tenant_id,
        })
    }
}

const BUFFERED_DATA_PREFIX: &str = "invalid `data` for `";

/// Splits the message of a payload error found on the slow path into the
/// JSON path inside the body and the bare message, so the extractor can
/// report the path as if the payload had been read in place.
pub(crate) fn split_buffered_data_error(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix(BUFFERED_DATA_PREFIX)?;
    let (_kind, rest) = rest.split_once("` at `")?;
    rest.split_once("`: ")
}

impl Kind {
    /// The slow path for bodies that put `data` before `event`: the payload
    /// was buffered, so name the path inside `data` in the message.
    fn payload_from_value(self, value: Value) -> Result<Event, String> {
        fn typed<T: de::DeserializeOwned>(kind: Kind, value: Value) -> Result<T, String> {
            serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let sep = if path.starts_with('[') { "" } else { "." };
                let path = if path == "." {
                    "data".to_owned()
                } else {
                    format!("data{sep}{path}")
                };
                format!(
                    "{BUFFERED_DATA_PREFIX}{}` at `{path}`: {}",
                    kind.name(),
                    e.inner()
                )
            })
        }
        Ok(match self {
            Self::IngestionCompleted => Event::IngestionCompleted(typed(self, value)?),
            Self::IngestionFailed => Event::IngestionFailed(typed(self, value)?),
            Self::KpiComputed => Event::KpiComputed(typed(self, value)?),
            Self::KpiAlert => Event::KpiAlert(typed(self, value)?),
            Self::AnalysisCompleted => Event::AnalysisCompleted(typed(self, value)?),
            Self::DashboardReady => Event::DashboardReady(typed(self, value)?),
        })
    }
}
