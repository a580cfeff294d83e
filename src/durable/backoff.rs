//! Waiting out a store that is down: the sender's and the inbox's workers
//! (and the PostgreSQL `LISTEN` connection) call their store in a loop; when
//! every call fails, as while the database is stopped, they wait longer
//! after each failure instead of calling (and logging) at their poll rate.

use std::fmt::Display;
use std::time::Duration;

/// The wait after the first failure of a run.
const FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two calls to a store that keeps failing.
const CAP: Duration = Duration::from_secs(30);

/// Capped exponential back-off over a run of failures of one kind of store
/// call: 100 ms, doubling up to 30 s, each wait jittered down by up to a
/// fifth so that workers that failed together do not call again together;
/// reset by the first success.
///
/// It logs too: the first failure of a run as an error, each later one as a
/// warning (at most one line per wait), and the recovery. The messages name
/// the call and carry the store's error, which never holds the connection
/// URL or its password.
#[derive(Debug)]
pub(crate) struct OutageBackoff {
    /// What the failing call does, for the log ("claiming due events").
    call: &'static str,
    first: Duration,
    failures: u32,
}

impl OutageBackoff {
    /// A back-off for failures of `call`, starting at 100 ms.
    pub(crate) const fn new(call: &'static str) -> Self {
        Self::starting_at(call, FIRST)
    }

    /// A back-off for failures of `call` whose first wait is `first`.
    pub(crate) const fn starting_at(call: &'static str, first: Duration) -> Self {
        Self {
            call,
            first,
            failures: 0,
        }
    }

    /// Counts a failure, logs it, and returns how long to wait before the
    /// next call.
    pub(crate) fn failed(&mut self, error: &dyn Display) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = jittered(step(self.first, self.failures), fastrand::f64());
        let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if self.failures == 1 {
            tracing::error!(retry_in_ms, "{} failed; backing off: {error}", self.call);
        } else {
            tracing::warn!(
                failures = self.failures,
                retry_in_ms,
                "{} failed again: {error}",
                self.call
            );
        }
        wait
    }

    /// Ends a run of failures, if there was one (and logs that it ended).
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "{} works again after failing",
                self.call
            );
            self.failures = 0;
        }
    }
}

/// The wait after failure number `failures` (from 1) of a run whose first
/// wait is `first`, before jitter: `first` doubled each time, at most
/// [`CAP`]. No clock, no randomness.
fn step(first: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    first.saturating_mul(1 << doublings).min(CAP)
}

/// `wait` shortened by up to a fifth; `unit` is uniform in `[0, 1)`.
fn jittered(wait: Duration, unit: f64) -> Duration {
    wait.mul_f64(1.0 - 0.2 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_from_the_first_up_to_the_cap() {
        let waits: Vec<_> = (1..=12).map(|n| step(FIRST, n)).collect();
        assert_eq!(
            waits,
            [
                100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000, 30_000
            ]
            .map(|ms| ms * MS)
        );
        assert_eq!(step(FIRST, u32::MAX), CAP);
        assert_eq!(step(Duration::from_secs(1), 3), 4_000 * MS);
    }

    #[test]
    fn jitter_only_shortens_by_up_to_a_fifth() {
        assert_eq!(jittered(1_000 * MS, 0.0), 1_000 * MS);
        assert_eq!(jittered(1_000 * MS, 0.5), 900 * MS);
        assert!(jittered(1_000 * MS, 0.999_999) > 800 * MS);
        assert_eq!(jittered(CAP, 2.0), CAP.mul_f64(0.8));
    }

    #[test]
    fn a_success_starts_the_next_run_from_the_first_wait() {
        let mut backoff = OutageBackoff::new("reading");
        for _ in 0..6 {
            backoff.failed(&"down");
        }
        assert!(backoff.failed(&"down") > 5_000 * MS);
        backoff.succeeded();
        assert!(backoff.failed(&"down") <= FIRST);
    }
}
