//! `GET /metrics` in the Prometheus text format, for the examples, when
//! `WEBHOOK_METRICS_ADDR` is set (`127.0.0.1:9464`, say).
//!
//! The crate records through the `metrics` facade; this installs
//! `metrics-exporter-prometheus` as the process's recorder, with its own
//! HTTP listener on that address, running on the example's tokio runtime.
//! Histograms whose name ends in `_seconds` are exposed as Prometheus
//! histograms with [`SECONDS_BUCKETS`]; Prometheus then computes any
//! quantile across instances (`histogram_quantile`).
//!
//! Give a fixed port: the listener cannot report the port of
//! `127.0.0.1:0`. It answers every path with the metrics (and `/health`
//! with `OK`); point Prometheus at `/metrics`.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// The variable that turns the endpoint on.
pub(crate) const METRICS_ADDR_VAR: &str = "WEBHOOK_METRICS_ADDR";

/// Upper bounds of the buckets of every `*_seconds` histogram: from a fast
/// local answer (5 ms) through the sender's 15 s request timeout to the
/// publish-to-delivered latency of a delivery retried for an hour.
pub(crate) const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

/// Serves `GET /metrics` on `WEBHOOK_METRICS_ADDR` when it is set, and
/// returns the address; `None` when it is unset or empty.
///
/// Call it from inside the tokio runtime, before the first metric is
/// recorded (metrics recorded before it are lost).
///
/// # Errors
///
/// The variable is not an address, the address cannot be bound, or a
/// recorder is already installed.
pub(crate) fn serve_metrics_if_configured() -> Result<Option<SocketAddr>, String> {
    let Some(text) = std::env::var(METRICS_ADDR_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(None);
    };
    let addr: SocketAddr = text.trim().parse().map_err(|e| {
        format!("{METRICS_ADDR_VAR}=`{text}` is not an address like `127.0.0.1:9464`: {e}")
    })?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(PrometheusBuilder::install)
        .map_err(|e| format!("{METRICS_ADDR_VAR}={addr}: cannot serve metrics: {e}"))?;
    Ok(Some(addr))
}
