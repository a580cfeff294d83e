//! Millisecond time for the sender: due times, leases and attempt records.
//!
//! The sender reads the crate's one [`Clock`] in milliseconds
//! ([`Clock::now_millis`]); [`SystemClock`](crate::SystemClock) and
//! [`FixedClock`](crate::FixedClock) work here as on the receiving side, and
//! [`ManualClock`] is a millisecond clock that tests move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::replay::{Clock, SystemClock};

/// The former millisecond clock trait; every [`Clock`] is one.
#[deprecated(note = "use `webhook_guard::Clock`, whose `now_millis` is this `now_ms`")]
pub trait MillisClock: Clock {
    /// Milliseconds since the unix epoch, now: [`Clock::now_millis`].
    fn now_ms(&self) -> i64 {
        self.now_millis()
    }
}

#[allow(deprecated)]
impl<C: Clock + ?Sized> MillisClock for C {}

/// The former name of the system clock on the sending side.
#[deprecated(note = "use `webhook_guard::SystemClock`, which also reads milliseconds")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemMillisClock;

#[allow(deprecated)]
impl Clock for SystemMillisClock {
    fn now_unix(&self) -> i64 {
        SystemClock.now_unix()
    }

    fn now_millis(&self) -> i64 {
        SystemClock.now_millis()
    }
}

/// A clock that moves only when told to: for tests of time filters and
/// schedules.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that says `unix_ms` until advanced.
    pub fn at(unix_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix_ms)))
    }

    /// Moves the clock forward by `ms` milliseconds (saturating).
    pub fn advance(&self, ms: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the clock to `unix_ms`.
    pub fn set(&self, unix_ms: i64) {
        self.0.store(unix_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
