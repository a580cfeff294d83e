//! When to try again: the retry schedule, jitter and `Retry-After`.

use std::time::Duration;

use crate::error::ConfigError;

/// The retry schedule of a delivery (sender) or of an event's processing
/// (inbox).
///
/// The first attempt is made at once; after each failure the next delay in
/// the list is waited (each spread by up to `jitter` either way), and when
/// the list is exhausted the delivery or event goes to the dead letter queue. The
/// default is 1 min, 5 min and 15 min with 10 % jitter: four attempts.
///
/// For the sender, a `Retry-After` answer header (seconds or an HTTP date) replaces the
/// scheduled delay, capped at [`retry_after_cap`](Self::retry_after_cap)
/// (default one hour).
///
/// ```
/// use std::time::Duration;
/// # #[cfg(feature = "sender")]
/// use webhook_guard::sender::RetryPolicy;
/// # #[cfg(not(feature = "sender"))]
/// # use webhook_guard::inbox::RetryPolicy;
///
/// let fast = RetryPolicy::new([Duration::from_millis(10), Duration::from_millis(20)]);
/// assert_eq!(fast.max_attempts(), 3);
/// assert_eq!(RetryPolicy::default().max_attempts(), 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
    jitter: f64,
    retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            delays: vec![
                Duration::from_secs(60),
                Duration::from_secs(5 * 60),
                Duration::from_secs(15 * 60),
            ],
            jitter: 0.1,
            retry_after_cap: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Retries after each of `delays`, with the default jitter and cap.
    pub fn new(delays: impl IntoIterator<Item = Duration>) -> Self {
        Self {
            delays: delays.into_iter().collect(),
            ..Self::default()
        }
    }

    /// No retries: a failed first attempt is dead-lettered.
    pub fn none() -> Self {
        Self::new([])
    }

    /// Spreads each delay by up to `fraction` either way (0 turns jitter off).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `0.0 <= fraction <= 1.0`.
    pub fn jitter(mut self, fraction: f64) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(ConfigError::InvalidSetting {
                setting: "retry jitter",
                reason: format!("must be between 0.0 and 1.0, got {fraction}"),
            });
        }
        self.jitter = fraction;
        Ok(self)
    }

    /// The longest `Retry-After` that is honoured; longer ones are cut to it.
    #[must_use]
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap;
        self
    }

    /// The delays between attempts.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The first attempt plus every retry.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// After failed attempt number `attempt` (1-based): how long to wait, or
    /// `None` when retries are exhausted.
    pub(crate) fn delay_after(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let scheduled = *self.delays.get(index)?;
        if let Some(wait) = retry_after {
            return Some(wait.min(self.retry_after_cap));
        }
        if self.jitter == 0.0 {
            return Some(scheduled);
        }
        let spread = (fastrand::f64() * 2.0 - 1.0) * self.jitter;
        Some(scheduled.mul_f64((1.0 + spread).max(0.0)))
    }
}

#[cfg(feature = "sender")]
/// Reads a `Retry-After` value: delay seconds, or an HTTP date compared with
/// `now_ms`. A date in the past means "now"; anything unreadable is `None`.
pub(crate) fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    let wait = at_ms.saturating_sub(now_ms).max(0);
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_then_exhausted() {
        let p = RetryPolicy::new([Duration::from_secs(1), Duration::from_secs(2)])
            .jitter(0.0)
            .unwrap();
        assert_eq!(p.delay_after(1, None), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_after(2, None), Some(Duration::from_secs(2)));
        assert_eq!(p.delay_after(3, None), None);
        assert_eq!(p.delay_after(0, None), None);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let p = RetryPolicy::new([Duration::from_secs(100)])
            .jitter(0.1)
            .unwrap();
        for _ in 0..1000 {
            let d = p.delay_after(1, None).unwrap();
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
        assert!(RetryPolicy::default().jitter(1.5).is_err());
        assert!(RetryPolicy::default().jitter(f64::NAN).is_err());
    }

    #[test]
    fn retry_after_replaces_the_delay_and_is_capped() {
        let p =
            RetryPolicy::new([Duration::from_secs(60)]).retry_after_cap(Duration::from_secs(10));
        assert_eq!(
            p.delay_after(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            p.delay_after(1, Some(Duration::from_secs(99))),
            Some(Duration::from_secs(10))
        );
        assert_eq!(p.delay_after(2, Some(Duration::from_secs(3))), None);
    }

    #[cfg(feature = "sender")]
    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(
            parse_retry_after(" 120 ", 0),
            Some(Duration::from_secs(120))
        );
        // 1994-11-06T08:49:37Z = 784111777 s.
        let now = 784_111_777_000 - 30_000;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 60_000),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-5", 0), None);
    }
}
