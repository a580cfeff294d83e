//! Back-pressure: a cheap count of unprocessed events, the recent drain
//! rate, and the `Retry-After` derived from both.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The span over which the drain rate is measured (two halves).
const HALF_WINDOW: Duration = Duration::from_secs(10);

/// Bounds of the `Retry-After` answered when the inbox is full.
pub(crate) const RETRY_AFTER_MIN_SECS: u64 = 1;
/// See [`RETRY_AFTER_MIN_SECS`].
pub(crate) const RETRY_AFTER_MAX_SECS: u64 = 300;

/// Unprocessed events (a counter moved on each insert and each event
/// finished, reconciled with the store now and then) and how fast they
/// have been finishing.
#[derive(Debug)]
pub(crate) struct Backlog {
    unprocessed: AtomicU64,
    drained: Mutex<DrainWindow>,
    /// When the count was last read back from the store.
    reconciled: Mutex<Instant>,
}

#[derive(Debug)]
struct DrainWindow {
    started: Instant,
    current: u64,
    previous: u64,
}

impl Backlog {
    pub(crate) fn new(unprocessed: u64) -> Self {
        Self {
            unprocessed: AtomicU64::new(unprocessed),
            drained: Mutex::new(DrainWindow {
                started: Instant::now(),
                current: 0,
                previous: 0,
            }),
            reconciled: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn unprocessed(&self) -> u64 {
        self.unprocessed.load(Ordering::Relaxed)
    }

    /// Replaces the count with the store's. A store that holds fewer than
    /// this count said was drained elsewhere (by another instance's
    /// workers, on a shared store): that counts towards the drain rate.
    pub(crate) fn reconcile(&self, unprocessed: u64) {
        let before = self.unprocessed.swap(unprocessed, Ordering::Relaxed);
        if let Ok(mut at) = self.reconciled.lock() {
            *at = Instant::now();
        }
        if before > unprocessed {
            if let Ok(mut w) = self.drained.lock() {
                w.roll(Instant::now());
                w.current += before - unprocessed;
            }
        }
    }

    /// Whether the count is older than `every` and this caller should read
    /// it back from the store; at most one caller per `every` is told so.
    pub(crate) fn claim_refresh(&self, every: Duration) -> bool {
        let Ok(mut at) = self.reconciled.lock() else {
            return false;
        };
        if at.elapsed() < every {
            return false;
        }
        *at = Instant::now();
        true
    }

    /// `n` events were stored (or replayed).
    pub(crate) fn added(&self, n: u64) {
        self.unprocessed.fetch_add(n, Ordering::Relaxed);
    }

    /// One event was finished (done or dead-lettered).
    pub(crate) fn drained(&self) {
        let _ = self
            .unprocessed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        if let Ok(mut w) = self.drained.lock() {
            w.roll(Instant::now());
            w.current += 1;
        }
    }

    /// Events finished per second lately.
    pub(crate) fn drain_rate(&self) -> f64 {
        let Ok(mut w) = self.drained.lock() else {
            return 0.0;
        };
        let now = Instant::now();
        w.roll(now);
        let span = HALF_WINDOW + now.duration_since(w.started);
        // Counts are far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let drained = (w.previous + w.current) as f64;
        drained / span.as_secs_f64()
    }
}

impl DrainWindow {
    /// Starts a new half window when the current one is over.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.started);
        if elapsed >= HALF_WINDOW * 2 {
            self.previous = 0;
            self.current = 0;
            self.started = now;
        } else if elapsed >= HALF_WINDOW {
            self.previous = self.current;
            self.current = 0;
            self.started += HALF_WINDOW;
        }
    }
}

/// The `Retry-After` (seconds) for a sender turned away while `excess`
/// events must drain before its event fits, at `rate` events per second:
/// `ceil(excess / rate)`, within [1 s, 300 s]. Nothing drained lately
/// means the longest wait.
pub(crate) fn retry_after_secs(excess: u64, rate: f64) -> u64 {
    if rate <= 0.0 || !rate.is_finite() {
        return RETRY_AFTER_MAX_SECS;
    }
    #[allow(clippy::cast_precision_loss)]
    let secs = (excess as f64 / rate).ceil();
    if secs >= RETRY_AFTER_MAX_SECS as f64 {
        RETRY_AFTER_MAX_SECS
    } else {
        // In [0, 300): the cast is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = secs as u64;
        secs.max(RETRY_AFTER_MIN_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_time_to_drain_the_excess_within_bounds() {
        assert_eq!(retry_after_secs(10, 5.0), 2);
        assert_eq!(retry_after_secs(11, 5.0), 3);
        assert_eq!(retry_after_secs(1, 1000.0), 1);
        assert_eq!(retry_after_secs(0, 1.0), 1);
        assert_eq!(retry_after_secs(10_000, 1.0), 300);
        assert_eq!(retry_after_secs(5, 0.0), 300);
        assert_eq!(retry_after_secs(5, f64::NAN), 300);
    }

    #[test]
    fn the_count_follows_inserts_and_drains() {
        let b = Backlog::new(3);
        b.added(2);
        b.drained();
        assert_eq!(b.unprocessed(), 4);
        b.reconcile(0);
        b.drained();
        assert_eq!(b.unprocessed(), 0);
        assert!(b.drain_rate() > 0.0);
    }

    #[test]
    fn events_drained_elsewhere_count_and_refreshes_are_rationed() {
        let b = Backlog::new(10);
        assert_eq!(b.drain_rate(), 0.0);
        b.reconcile(4);
        assert_eq!(b.unprocessed(), 4);
        assert!(b.drain_rate() > 0.0);
        // Just reconciled: no refresh yet; then exactly one caller gets it.
        assert!(!b.claim_refresh(Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.claim_refresh(Duration::from_millis(50)));
        assert!(!b.claim_refresh(Duration::from_millis(50)));
    }
}
