//! Replay protection: the clock and the window a signed timestamp must fall in.
//!
//! A signature proves who sent a request, not when. An attacker who captured
//! one valid delivery can send it again; the [`ReplayWindow`] refuses any
//! request whose **signed** timestamp is older than `tolerance` or further in
//! the future than `future_skew` (both 300 s by default). Within the window,
//! exact redeliveries are the idempotency layer's job.
//!
//! All arithmetic is done in `i128`, so any `i64` timestamp, `i64::MIN` and
//! `i64::MAX` included, gives a clear rejection and never an overflow. A
//! timestamp that looks like milliseconds (or microseconds) is named as such in
//! the message.
//!
//! ```
//! use std::time::Duration;
//! use webhook_guard::{FixedClock, ReplayWindow, VerifyErrorKind};
//!
//! let window = ReplayWindow::new()
//!     .tolerance(Duration::from_secs(300))
//!     .clock(FixedClock::at(1_700_000_000));
//! assert!(window.check(1_700_000_000 - 299).is_ok());
//! let err = window.check(1_700_000_000 - 412).unwrap_err();
//! assert_eq!(err.kind(), VerifyErrorKind::TimestampTooOld);
//! assert_eq!(
//!     err.to_string(),
//!     "timestamp is 412 s in the past; tolerance is 300 s"
//! );
//! let err = window.check(1_700_000_000_000).unwrap_err(); // milliseconds by mistake
//! assert!(err.to_string().contains("milliseconds"));
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{VerifyError, VerifyErrorKind};

/// Default tolerance for timestamps in the past and in the future: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A source of the current time, the one clock of the crate: the receiving
/// side reads it in unix seconds ([`now_unix`](Self::now_unix)), the sender in
/// unix milliseconds ([`now_millis`](Self::now_millis)). Inject one to test.
///
/// A clock that only knows seconds implements `now_unix`; one with a finer
/// source also implements `now_millis`, and should keep `now_unix` equal to
/// `now_millis().div_euclid(1000)`.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the unix epoch, now.
    fn now_unix(&self) -> i64;

    /// Milliseconds since the unix epoch, now. By default
    /// [`now_unix`](Self::now_unix) × 1000 (saturating).
    fn now_millis(&self) -> i64 {
        self.now_unix().saturating_mul(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        }
    }

    fn now_millis(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock stopped at one instant (whole seconds): for tests and for
/// replaying captured requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(i64);

impl FixedClock {
    /// A clock that always says `unix_seconds`.
    pub const fn at(unix_seconds: i64) -> Self {
        Self(unix_seconds)
    }
}

impl Clock for FixedClock {
    fn now_unix(&self) -> i64 {
        self.0
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_unix(&self) -> i64 {
        (**self).now_unix()
    }

    fn now_millis(&self) -> i64 {
        (**self).now_millis()
    }
}

/// How far a signed timestamp may be from now.
#[derive(Clone)]
pub struct ReplayWindow {
    tolerance: Duration,
    future_skew: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("tolerance", &self.tolerance)
            .field("future_skew", &self.future_skew)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// 300 s into the past, 300 s into the future, the system clock.
    pub fn new() -> Self {
        Self {
            tolerance: DEFAULT_TOLERANCE,
            future_skew: DEFAULT_TOLERANCE,
            clock: Arc::new(SystemClock),
        }
    }

    /// How old a timestamp may be. Sub-second parts are ignored.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How far in the future a timestamp may be (clock skew between sender
    /// and receiver). Sub-second parts are ignored.
    #[must_use]
    pub fn future_skew(mut self, skew: Duration) -> Self {
        self.future_skew = skew;
        self
    }

    /// The clock to read "now" from.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The configured past tolerance.
    pub fn tolerance_value(&self) -> Duration {
        self.tolerance
    }

    /// The configured future skew.
    pub fn future_skew_value(&self) -> Duration {
        self.future_skew
    }

    /// Now, according to the configured clock, in unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Checks `timestamp` (unix seconds) against the window at the clock's now.
    ///
    /// # Errors
    ///
    /// [`VerifyErrorKind::TimestampTooOld`] or
    /// [`VerifyErrorKind::TimestampTooNew`], with a message that says how far
    /// off the timestamp is and what the tolerance is.
    pub fn check(&self, timestamp: i64) -> Result<(), VerifyError> {
        self.check_at(timestamp, self.clock.now_unix())
    }

    /// Checks `timestamp` against the window at the given `now`.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn check_at(&self, timestamp: i64, now: i64) -> Result<(), VerifyError> {
        let age = i128::from(now) - i128::from(timestamp);
        let tolerance = i128::from(self.tolerance.as_secs());
        let skew = i128::from(self.future_skew.as_secs());
        if age > tolerance {
            return Err(VerifyError::new(
                VerifyErrorKind::TimestampTooOld,
                format!(
                    "timestamp is {} s in the past; tolerance is {} s",
                    age, tolerance
                ),
            ));
        }
        if -age > skew {
            let mut msg = format!(
                "timestamp is {} s in the future; allowed clock skew is {} s",
                -age, skew
            );
            if let Some(unit) = looks_like_subsecond_units(timestamp, now) {
                msg.push_str(&format!(
                    "; the value looks like {unit}: send unix time in seconds"
                ));
            }
            return Err(VerifyError::new(VerifyErrorKind::TimestampTooNew, msg));
        }
        Ok(())
    }
}

/// Names the unit a too-large timestamp was probably sent in.
fn looks_like_subsecond_units(timestamp: i64, now: i64) -> Option<&'static str> {
    let near = |scaled: i128| (scaled - i128::from(now)).abs() <= 86_400 * 366;
    let t = i128::from(timestamp);
    if near(t / 1_000) {
        Some("milliseconds")
    } else if near(t / 1_000_000) {
        Some("microseconds")
    } else if near(t / 1_000_000_000) {
        Some("nanoseconds")
    } else {
        None
    }
}

/// Parses a unix-seconds timestamp header value: ASCII digits only, at most
/// what fits an `i64`.
pub(crate) fn parse_unix_seconds(header: &'static str, value: &[u8]) -> Result<i64, VerifyError> {
    let s = std::str::from_utf8(value)
        .map_err(|_| VerifyError::malformed(header, "the value is not UTF-8"))?
        .trim();
    if s.is_empty() {
        return Err(VerifyError::malformed(header, "the value is empty"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::malformed(
            header,
            "expected unix time in whole seconds (ASCII digits only)",
        ));
    }
    s.parse::<i64>().map_err(|_| {
        VerifyError::malformed(
            header,
            format!(
                "a {}-digit number is out of range for unix seconds",
                s.len()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn window() -> ReplayWindow {
        ReplayWindow::new().clock(FixedClock::at(NOW))
    }

    #[test]
    fn edges_are_inclusive() {
        assert!(window().check(NOW - 300).is_ok());
        assert!(window().check(NOW + 300).is_ok());
        assert_eq!(
            window().check(NOW - 301).unwrap_err().kind(),
            VerifyErrorKind::TimestampTooOld
        );
        assert_eq!(
            window().check(NOW + 301).unwrap_err().kind(),
            VerifyErrorKind::TimestampTooNew
        );
    }

    #[test]
    fn extremes_do_not_overflow() {
        for ts in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX, i64::MAX - 1] {
            assert!(window().check(ts).is_err(), "{ts}");
        }
        let w = ReplayWindow::new()
            .tolerance(Duration::MAX)
            .future_skew(Duration::MAX)
            .clock(FixedClock::at(i64::MIN));
        assert!(w.check(i64::MAX).is_ok());
        let msg = window().check(i64::MIN).unwrap_err().to_string();
        assert!(msg.contains("9223372038554775808 s in the past"), "{msg}");
    }

    #[test]
    fn milliseconds_are_named() {
        let msg = window().check(NOW * 1000).unwrap_err().to_string();
        assert!(msg.contains("milliseconds"), "{msg}");
        let msg = window().check(NOW * 1_000_000).unwrap_err().to_string();
        assert!(msg.contains("microseconds"), "{msg}");
    }

    #[test]
    fn header_parsing_is_strict() {
        assert_eq!(parse_unix_seconds("t", b"1700000000").unwrap(), NOW);
        for bad in [
            &b""[..],
            b"-5",
            b"1.5",
            b"1e9",
            b"+1",
            b"0x10",
            b"12345678901234567890",
            b"\xff",
        ] {
            let err = parse_unix_seconds("t", bad).unwrap_err();
            assert_eq!(err.kind(), VerifyErrorKind::MalformedHeader);
        }
    }
}
