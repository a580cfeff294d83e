//! The sender's metrics beyond the delivery counters: per-destination
//! attempt figures under a bounded label, circuit changes, and the queue
//! gauges sampled from the store on a timer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::delivery::DeliveryAttempt;
use super::metric_names;
use super::operational::OperationalEvent;
use super::state::Inner;
use super::store::{CircuitChange, DeliveryStore};
use crate::durable::periodic::sample_every;

/// The `destination` label value of destinations past the cap.
pub(crate) const OTHER_DESTINATIONS: &str = "other";

/// Which destinations get a `destination` label of their own: the first
/// `cap` seen by this process, by id; the rest share
/// [`OTHER_DESTINATIONS`]. A cap of zero (the default) adds no label.
#[derive(Debug, Default)]
pub(crate) struct DestinationLabels {
    cap: usize,
    named: Mutex<HashSet<String>>,
}

impl DestinationLabels {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            named: Mutex::default(),
        }
    }

    /// The label value for `destination_id`; `None` when per-destination
    /// labels are off.
    fn value(&self, destination_id: &str) -> Option<String> {
        if self.cap == 0 {
            return None;
        }
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if named.contains(destination_id) {
            return Some(destination_id.to_owned());
        }
        if named.len() < self.cap {
            named.insert(destination_id.to_owned());
            return Some(destination_id.to_owned());
        }
        Some(OTHER_DESTINATIONS.to_owned())
    }
}

/// Counts an attempt (by outcome) and records its duration, with the
/// destination's label when labels are on.
pub(crate) fn count_attempt(labels: &DestinationLabels, destination_id: &str, a: &DeliveryAttempt) {
    let outcome = if a.succeeded() { "success" } else { "failure" };
    let mut counted = vec![metrics::Label::new("outcome", outcome)];
    let mut timed = Vec::new();
    if let Some(value) = labels.value(destination_id) {
        counted.push(metrics::Label::new("destination", value.clone()));
        timed.push(metrics::Label::new("destination", value));
    }
    metrics::counter!(metric_names::ATTEMPTS, counted).increment(1);
    metrics::histogram!(metric_names::ATTEMPT_SECONDS, timed).record(a.duration_ms as f64 / 1000.0);
}

/// Counts a circuit change and turns it into its operational event.
pub(crate) fn circuit_changed(destination_id: &str, change: CircuitChange) -> OperationalEvent {
    let id = destination_id.to_owned();
    let (state, event) = match change {
        CircuitChange::Opened => ("open", OperationalEvent::CircuitOpened { id }),
        CircuitChange::Closed => ("closed", OperationalEvent::CircuitClosed { id }),
    };
    metrics::counter!(metric_names::CIRCUIT_TRANSITIONS, "state" => state).increment(1);
    event
}

/// Sets the queue gauges from the store now, then every
/// `queue_metrics_interval` until the handle says stop.
pub(crate) async fn sample_queue<S: DeliveryStore>(
    inner: Arc<Inner<S>>,
    mut stop: watch::Receiver<bool>,
) {
    // Done once stop is set, or the handle is dropped.
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let inner = &*inner;
    let every = inner.config.queue_metrics_interval;
    sample_every(every, stopped, move || async move {
        let now = inner.clock.now_millis();
        match inner.store.queue_stats(now).await {
            Ok(stats) => {
                metrics::gauge!(metric_names::QUEUE_PENDING).set(stats.pending as f64);
                metrics::gauge!(metric_names::QUEUE_OLDEST_DUE_SECONDS)
                    .set(stats.oldest_due_age_ms(now) as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, "reading the queue figures failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_up_to_the_cap_then_other() {
        let off = DestinationLabels::default();
        assert_eq!(off.value("dst_a"), None);
        let labels = DestinationLabels::new(2);
        assert_eq!(labels.value("dst_a").as_deref(), Some("dst_a"));
        assert_eq!(labels.value("dst_b").as_deref(), Some("dst_b"));
        assert_eq!(labels.value("dst_c").as_deref(), Some(OTHER_DESTINATIONS));
        // Named ones keep their name.
        assert_eq!(labels.value("dst_a").as_deref(), Some("dst_a"));
        assert_eq!(labels.value("dst_d").as_deref(), Some(OTHER_DESTINATIONS));
    }
}
