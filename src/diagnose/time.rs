//! Timestamps outside the replay window: by how much, and in which unit
//! they were probably sent.

use std::fmt;

use http::HeaderMap;

use super::Finding;
use crate::error::VerifyError;
use crate::replay::ReplayWindow;
use crate::scheme::{Scheme, SignatureMatch};

/// The unit a timestamp appears to be in, judged by how close it lands to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimestampUnit {
    /// Unix seconds, as every scheme expects.
    Seconds,
    /// Unix milliseconds (JavaScript's `Date.now()`).
    Milliseconds,
    /// Unix microseconds.
    Microseconds,
    /// Unix nanoseconds.
    Nanoseconds,
}

impl TimestampUnit {
    /// The unit `timestamp` is most likely in, given `now` in seconds: a
    /// sub-second unit when the value divided accordingly lands within a
    /// year of now, or else when it has that unit's number of digits for any
    /// date between 1973 and 5138 (13 digits for milliseconds, 16 for
    /// microseconds, 19 for nanoseconds, give or take one).
    pub fn guess(timestamp: i64, now: i64) -> Self {
        let near = |divisor: i128| {
            (i128::from(timestamp) / divisor - i128::from(now)).abs() <= 366 * 86_400
        };
        if near(1) {
            return Self::Seconds;
        }
        for unit in [Self::Milliseconds, Self::Microseconds, Self::Nanoseconds] {
            if near(unit.per_second()) {
                return unit;
            }
        }
        match timestamp.checked_ilog10().map(|log| log + 1) {
            Some(12..=14) => Self::Milliseconds,
            Some(15..=17) => Self::Microseconds,
            Some(18..=19) => Self::Nanoseconds,
            _ => Self::Seconds,
        }
    }

    fn per_second(self) -> i128 {
        match self {
            Self::Seconds => 1,
            Self::Milliseconds => 1_000,
            Self::Microseconds => 1_000_000,
            Self::Nanoseconds => 1_000_000_000,
        }
    }
}

impl fmt::Display for TimestampUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Seconds => "seconds",
            Self::Milliseconds => "milliseconds",
            Self::Microseconds => "microseconds",
            Self::Nanoseconds => "nanoseconds",
        })
    }
}

/// The finding for a timestamp outside `window`, if the request claims one:
/// the signed one when the signature matched, else the one the scheme reads
/// from `headers` or `body` without checking it.
pub(super) fn outside_window(
    scheme: &Scheme,
    signature: &Result<SignatureMatch, VerifyError>,
    headers: &HeaderMap,
    body: &[u8],
    window: &ReplayWindow,
    now: i64,
) -> Option<Finding> {
    let claimed = match signature {
        Ok(matched) => matched.timestamp(),
        Err(_) => scheme.name().claimed_timestamp(headers, body),
    };
    let timestamp = claimed?;
    window.check_at(timestamp, now).err()?;
    Some(Finding::TimestampOutsideWindow {
        timestamp,
        now,
        tolerance: window.tolerance_value().as_secs(),
        future_skew: window.future_skew_value().as_secs(),
        unit: TimestampUnit::guess(timestamp, now),
        signature_verified: super::signature_matches(signature),
    })
}

/// Says how far `timestamp` is from `now` against `limit` seconds, or, when
/// it looks like a sub-second `unit`, what it would be in seconds.
pub(super) fn write_outside_window(
    f: &mut fmt::Formatter<'_>,
    timestamp: i64,
    now: i64,
    limit: u64,
    unit: TimestampUnit,
) -> fmt::Result {
    if unit == TimestampUnit::Seconds {
        write!(
            f,
            "the timestamp {timestamp} is {}; the window allows {limit} s: \
             check the sender's and this machine's clocks, or whether the request is a late retry or a replay",
            describe_offset(timestamp, now)
        )
    } else {
        let seconds = i128::from(timestamp) / unit.per_second();
        let off = i128::from(now) - seconds;
        write!(
            f,
            "the timestamp {timestamp} looks like {unit} (as seconds it would be {seconds}, {} s {} now): \
             the sender must send unix time in whole seconds",
            off.abs(),
            if off >= 0 { "before" } else { "after" }
        )
    }
}

/// "412 s in the past", "3 s in the future", "now".
pub(super) fn describe_offset(timestamp: i64, now: i64) -> String {
    let age = i128::from(now) - i128::from(timestamp);
    match age {
        0 => "now".to_owned(),
        a if a > 0 => format!("{a} s in the past"),
        a => format!("{} s in the future", -a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::tests::NOW;

    #[test]
    fn unit_guess() {
        assert_eq!(
            TimestampUnit::guess(NOW - 5000, NOW),
            TimestampUnit::Seconds
        );
        assert_eq!(
            TimestampUnit::guess(NOW * 1000, NOW),
            TimestampUnit::Milliseconds
        );
        assert_eq!(
            TimestampUnit::guess(NOW * 1_000_000, NOW),
            TimestampUnit::Microseconds
        );
        // Far from now, the number of digits decides.
        assert_eq!(
            TimestampUnit::guess(1_500_000_000_000, NOW),
            TimestampUnit::Milliseconds
        );
        assert_eq!(
            TimestampUnit::guess(1_000_000_000_000_000_000, NOW),
            TimestampUnit::Nanoseconds
        );
        assert_eq!(
            TimestampUnit::guess(i64::MAX, NOW),
            TimestampUnit::Nanoseconds
        );
        assert_eq!(
            TimestampUnit::guess(99_999_999_999, NOW),
            TimestampUnit::Seconds
        );
        assert_eq!(TimestampUnit::guess(i64::MIN, NOW), TimestampUnit::Seconds);
    }

    #[test]
    fn a_future_timestamp_is_held_to_the_future_skew() {
        let finding = Finding::TimestampOutsideWindow {
            timestamp: NOW + 90,
            now: NOW,
            tolerance: 300,
            future_skew: 60,
            unit: TimestampUnit::Seconds,
            signature_verified: false,
        };
        assert_eq!(
            finding.to_string(),
            "the timestamp 1700000090 is 90 s in the future; the window allows 60 s: \
             check the sender's and this machine's clocks, or whether the request is a late retry or a replay \
             (the signature does not verify either)"
        );
    }
}
