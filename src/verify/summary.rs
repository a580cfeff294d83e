//! How [`VerifyLayer`](super::VerifyLayer) logs rejections without letting
//! a flood of forged requests flood the log.
//!
//! Every rejection is logged at `debug` level with its kind and detail. At
//! `warn` level there is at most one summary per interval (10 s by default)
//! for each layer: how many requests were rejected since the last summary, by
//! kind. The summary is written by the first rejection after the interval has
//! passed (and by the very first rejection), so no task or timer is needed; the
//! counts of a burst that has ended are reported with the next rejection.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::VerifyErrorKind;

/// Default interval between two `warn` summaries of rejections: 10 s.
pub const DEFAULT_REJECTION_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// `last_ms` before the first summary.
const NEVER: u64 = u64::MAX;

/// Rejection counters shared by every service of one layer.
pub(crate) struct RejectionSummary {
    interval: Duration,
    started: Instant,
    /// Milliseconds from `started` to the last summary, or [`NEVER`].
    last_ms: AtomicU64,
    counts: [AtomicU64; VerifyErrorKind::ALL.len()],
}

/// One `warn` summary: the counts since the previous one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// How long ago the previous summary was; `None` for the first.
    since: Option<Duration>,
    by_kind: Vec<(VerifyErrorKind, u64)>,
}

impl RejectionSummary {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            started: Instant::now(),
            last_ms: AtomicU64::new(NEVER),
            counts: Default::default(),
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Counts one rejection; returns the summary to log when one is due.
    pub(crate) fn record(&self, kind: VerifyErrorKind) -> Option<Summary> {
        if let Some(count) = self.counts.get(kind.index()) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = self.last_ms.load(Ordering::Acquire);
        let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        if last != NEVER && now.saturating_sub(last) < interval {
            return None;
        }
        // One thread wins the right to write this summary.
        self.last_ms
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let by_kind = VerifyErrorKind::ALL
            .into_iter()
            .zip(&self.counts)
            .map(|(kind, count)| (kind, count.swap(0, Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect();
        Some(Summary {
            since: (last != NEVER).then(|| Duration::from_millis(now - last)),
            by_kind,
        })
    }
}

impl fmt::Debug for RejectionSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionSummary")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Summary {
    /// How many rejections it counts.
    pub(crate) fn total(&self) -> u64 {
        self.by_kind.iter().map(|&(_, n)| n).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} webhook request(s) rejected", self.total())?;
        match self.since {
            Some(since) => write!(f, " in the last {} s", since.as_secs())?,
            None => f.write_str(" (the first since start)")?,
        }
        f.write_str(" (by kind: ")?;
        for (i, (kind, n)) in self.by_kind.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{kind}={n}")?;
        }
        f.write_str("); each rejection is logged at debug level")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rejection_is_summarized_then_the_rest_wait_for_the_interval() {
        let summary = RejectionSummary::new(Duration::from_secs(3600));
        let first = summary.record(VerifyErrorKind::InvalidSignature).unwrap();
        assert_eq!(first.total(), 1);
        assert!(first.to_string().contains("first since start"), "{first}");
        for _ in 0..1000 {
            assert_eq!(summary.record(VerifyErrorKind::MissingHeader), None);
        }
    }

    #[test]
    fn a_due_summary_counts_everything_since_the_last_by_kind() {
        let summary = RejectionSummary::new(Duration::ZERO);
        summary.record(VerifyErrorKind::InvalidSignature).unwrap();
        // With a zero interval every rejection writes a summary; fake a
        // backlog by counting without recording.
        summary.counts[VerifyErrorKind::MissingHeader.index()].fetch_add(4, Ordering::Relaxed);
        let due = summary.record(VerifyErrorKind::InvalidSignature).unwrap();
        assert_eq!(due.total(), 5);
        let text = due.to_string();
        assert!(
            text.starts_with("5 webhook request(s) rejected in the last 0 s (by kind: "),
            "{text}"
        );
        assert!(
            text.contains("missing-header=4, invalid-signature=1"),
            "{text}"
        );
    }
}
