//! Per-destination health from the store's history: success rate and
//! response-time percentiles over the last hour and day, the last error,
//! the queue, and 24 hourly slots for charts ([`Sender::destination_health`]).
//!
//! Stores keep a rollup beside the attempts: one row per destination and
//! minute and one per destination and clock hour, written in the same
//! transaction as each attempt, with the attempt count, the successes, the
//! slowest response and a histogram of response times in
//! [`RESPONSE_TIME_BOUNDS_MS`] buckets. The health of every destination is
//! then read from at most 24 hour rows and 118 minute rows each, however
//! long the history, and it is the same on every sender node that shares
//! the store. Minute rows older than two days are deleted as hours begin.
//!
//! Percentiles come from that histogram: the upper bound of the bucket that
//! holds the percentile's rank (nearest-rank method), or the slowest
//! response when that is smaller. They are as fine as the buckets (about
//! 1.5x apart), which is what a chart needs.

use serde::Serialize;

use super::Sender;
use super::delivery::DeliveryAttempt;
use super::error::SenderError;
use super::store::DeliveryStore;

/// Upper bounds (inclusive, ms) of the response-time histogram's buckets;
/// one more bucket holds everything slower. Changing them needs a new
/// rollup table (the stores' migrations repeat them).
pub const RESPONSE_TIME_BOUNDS_MS: [u64; 25] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000,
    5000, 7000, 10000, 15000,
];

/// Number of histogram buckets: one per bound and one above them.
pub(crate) const BUCKETS: usize = RESPONSE_TIME_BOUNDS_MS.len() + 1;

/// One minute, ms.
pub(crate) const MINUTE_MS: i64 = 60_000;
/// One hourly slot, ms.
pub(crate) const SLOT_MS: i64 = 3_600_000;
/// Hourly slots in the day window.
pub(crate) const SLOTS: usize = 24;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// How long the rollup keeps its minute rows, ms: the health reads none
/// older than 25 hours; a day more is slack for late writers.
pub(crate) const MINUTE_ROWS_KEPT_MS: i64 = 2 * SLOTS as i64 * SLOT_MS;

/// Longest last-error message kept, in characters.
pub(crate) const ERROR_MESSAGE_CHARS: usize = 200;

/// The histogram bucket of a response time.
pub(crate) fn bucket_of(duration_ms: u64) -> usize {
    RESPONSE_TIME_BOUNDS_MS.partition_point(|&bound| bound < duration_ms)
}

/// The start of the minute holding `at_ms`.
pub(crate) fn minute_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// The start of the hour holding `at_ms`.
pub(crate) fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(SLOT_MS) * SLOT_MS
}

/// The time ranges the health covers at `now_ms`, in whole minutes:
///
/// - the day, `[start, end)`: 24 hours ending with `now_ms`'s minute;
/// - the last hour, `[hour_start, end)`: its last 60 minutes;
/// - 24 clock-hour slots from `first_hour`, the last one the hour holding
///   `now_ms` (so far). The day is those slots plus its *edge*,
///   `[start, first_hour)`: the part of the hour before the first slot.
///
/// Stores read the slots from hourly rollup rows and only the last hour
/// and the edge (at most 118 rows) from minute rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthWindow {
    /// First ms of the day window (inclusive).
    pub(crate) start_ms: i64,
    /// First ms of the first hourly slot.
    pub(crate) first_hour_ms: i64,
    /// First ms of the last hour.
    pub(crate) hour_start_ms: i64,
    /// End of the window (exclusive): the end of `now_ms`'s minute.
    pub(crate) end_ms: i64,
}

/// Where a minute's attempts count in a [`HealthWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MinutePlace {
    /// The hourly slot holding it.
    pub(crate) slot: Option<usize>,
    /// In the day but before the first slot.
    pub(crate) day_edge: bool,
    /// In the last hour.
    pub(crate) last_hour: bool,
}

impl HealthWindow {
    pub(crate) fn at(now_ms: i64) -> Self {
        let end_ms = minute_of(now_ms).saturating_add(MINUTE_MS);
        Self {
            start_ms: end_ms.saturating_sub(SLOT_MS * SLOTS as i64),
            first_hour_ms: hour_of(now_ms).saturating_sub(SLOT_MS * (SLOTS as i64 - 1)),
            hour_start_ms: end_ms.saturating_sub(SLOT_MS),
            end_ms,
        }
    }

    /// The end of the last hourly slot (exclusive).
    pub(crate) fn slots_end_ms(&self) -> i64 {
        self.first_hour_ms.saturating_add(SLOT_MS * SLOTS as i64)
    }

    /// The hourly slot starting at `hour_ms`, if it is one of the window's.
    pub(crate) fn slot_of(&self, hour_ms: i64) -> Option<usize> {
        if hour_ms < self.first_hour_ms || hour_ms >= self.slots_end_ms() {
            return None;
        }
        usize::try_from((hour_ms - self.first_hour_ms) / SLOT_MS).ok()
    }

    /// Where the attempts of the minute starting at `minute_ms` count.
    pub(crate) fn place_of(&self, minute_ms: i64) -> MinutePlace {
        MinutePlace {
            slot: self.slot_of(hour_of(minute_ms)),
            day_edge: (self.start_ms..self.first_hour_ms).contains(&minute_ms),
            last_hour: (self.hour_start_ms..self.end_ms).contains(&minute_ms),
        }
    }
}

/// Attempt counts and a response-time histogram: one minute's rollup row,
/// or a sum of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AttemptCounts {
    pub(crate) attempts: u64,
    pub(crate) successes: u64,
    pub(crate) max_ms: u64,
    pub(crate) buckets: [u64; BUCKETS],
}

impl AttemptCounts {
    /// Counts one attempt.
    pub(crate) fn add(&mut self, attempt: &DeliveryAttempt) {
        self.attempts += 1;
        self.successes += u64::from(attempt.succeeded());
        self.max_ms = self.max_ms.max(attempt.duration_ms);
        self.buckets[bucket_of(attempt.duration_ms)] += 1;
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    /// Counts from a rollup row's sums: attempts, successes, the slowest,
    /// then one per bucket (`NULL`s and negatives read as 0).
    pub(crate) fn from_columns(columns: &[Option<i64>]) -> Self {
        let n = |i: usize| {
            let v = columns.get(i).copied().flatten();
            v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
        };
        let mut c = Self {
            attempts: n(0),
            successes: n(1),
            max_ms: n(2),
            buckets: [0; BUCKETS],
        };
        for (i, b) in c.buckets.iter_mut().enumerate() {
            *b = n(3 + i);
        }
        c
    }

    /// Adds another row's counts.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.attempts += other.attempts;
        self.successes += other.successes;
        self.max_ms = self.max_ms.max(other.max_ms);
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }

    /// The `per_mille`/1000 percentile of the response time (nearest rank):
    /// the bound of the bucket holding that rank, at most the slowest.
    fn percentile(&self, per_mille: u64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = RESPONSE_TIME_BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX);
                return Some(bound.min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    fn window(&self) -> WindowHealth {
        WindowHealth {
            attempts: self.attempts,
            successes: self.successes,
            p50_ms: self.percentile(500),
            p99_ms: self.percentile(990),
        }
    }
}

/// Attempts in one time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WindowHealth {
    /// Attempts started in the window.
    pub attempts: u64,
    /// Those that got a 2xx.
    pub successes: u64,
    /// Median response time, ms (`None`: no attempts).
    pub p50_ms: Option<u64>,
    /// 99th percentile response time, ms (`None`: no attempts).
    pub p99_ms: Option<u64>,
}

impl WindowHealth {
    /// Successes per attempt, `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 / self.attempts as f64)
    }
}

/// One clock hour of the day, for charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HealthSlot {
    /// The slot's first ms (unix ms, a whole hour); it lasts an hour.
    pub start_ms: i64,
    /// Attempts started in the slot.
    pub attempts: u64,
    /// Those that got a 2xx.
    pub successes: u64,
    /// Median response time, ms (`None`: no attempts).
    pub p50_ms: Option<u64>,
}

/// The latest failed attempt of a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LastError {
    /// When the attempt started, unix ms.
    pub at_ms: i64,
    /// The answer's status code, when one came.
    pub status_code: Option<u16>,
    /// The failure in words, cut to 200 characters.
    pub message: String,
}

impl LastError {
    /// The last error an attempt leaves, `None` for a success.
    pub(crate) fn of(attempt: &DeliveryAttempt) -> Option<Self> {
        if attempt.succeeded() {
            return None;
        }
        let message = attempt
            .error
            .as_deref()
            .or(attempt.error_class.map(|c| c.as_str()))
            .unwrap_or("failed");
        Some(Self {
            at_ms: attempt.started_at_ms,
            status_code: attempt.status_code,
            message: message.chars().take(ERROR_MESSAGE_CHARS).collect(),
        })
    }
}

/// A destination's pending deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueueHealth {
    /// Pending deliveries: due, waiting for a retry, or in flight.
    pub pending: u64,
    /// Those due now (their next attempt's time has come).
    pub due: u64,
    /// When the delivery that has waited longest since it became due was
    /// due, unix ms (`None`: nothing due).
    pub oldest_due_at_ms: Option<i64>,
}

/// The health of one destination, as [`Sender::destination_health`]
/// returns it and the console's `GET /api/health` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DestinationHealth {
    /// The destination's id.
    pub destination_id: String,
    /// Attempts in the last hour (the last 60 minutes, this one included).
    pub last_hour: WindowHealth,
    /// Attempts in the last 24 hours.
    pub last_day: WindowHealth,
    /// The day in 24 clock-hour slots, oldest first; the last is the
    /// current hour so far. (`last_day` also holds the minutes of the
    /// hour before the first slot that are within 24 hours.)
    pub hourly: Vec<HealthSlot>,
    /// The latest failed attempt ever recorded, if any.
    pub last_error: Option<LastError>,
    /// Pending deliveries.
    pub queue: QueueHealth,
}

/// A part of the health window a store reads counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowPart {
    /// One hourly slot (from hourly rollup rows).
    Slot(usize),
    /// The day before the first slot (from minute rows).
    DayEdge,
    /// The last hour (from minute rows).
    LastHour,
}

/// What a store gathered for one destination; [`finish`](Self::finish)
/// turns it into its [`DestinationHealth`].
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthParts {
    /// Counts per hourly slot of the window.
    pub(crate) slots: [AttemptCounts; SLOTS],
    /// Counts of the day before the first slot.
    pub(crate) day_edge: AttemptCounts,
    /// Counts of the last hour.
    pub(crate) last_hour: AttemptCounts,
    pub(crate) last_error: Option<LastError>,
    pub(crate) queue: QueueHealth,
}

impl HealthParts {
    /// Adds counts to a part of the window.
    pub(crate) fn count(&mut self, part: WindowPart, counts: &AttemptCounts) {
        let target = match part {
            WindowPart::Slot(i) => self.slots.get_mut(i),
            WindowPart::DayEdge => Some(&mut self.day_edge),
            WindowPart::LastHour => Some(&mut self.last_hour),
        };
        if let Some(target) = target {
            target.merge(counts);
        }
    }

    /// Counts one attempt in every part of `window` it falls in.
    pub(crate) fn count_attempt(&mut self, attempt: &DeliveryAttempt, window: HealthWindow) {
        let mut one = AttemptCounts::default();
        one.add(attempt);
        let place = window.place_of(minute_of(attempt.started_at_ms));
        if let Some(slot) = place.slot {
            self.count(WindowPart::Slot(slot), &one);
        }
        if place.day_edge {
            self.count(WindowPart::DayEdge, &one);
        }
        if place.last_hour {
            self.count(WindowPart::LastHour, &one);
        }
    }

    pub(crate) fn finish(self, destination_id: String, window: HealthWindow) -> DestinationHealth {
        let mut day = self.day_edge;
        for slot in &self.slots {
            day.merge(slot);
        }
        let hourly = self
            .slots
            .iter()
            .zip(0_i64..)
            .map(|(counts, i)| HealthSlot {
                start_ms: window.first_hour_ms + i * SLOT_MS,
                attempts: counts.attempts,
                successes: counts.successes,
                p50_ms: counts.percentile(500),
            })
            .collect();
        DestinationHealth {
            destination_id,
            last_hour: self.last_hour.window(),
            last_day: day.window(),
            hourly,
            last_error: self.last_error,
            queue: self.queue,
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The histogram columns `b0, b1, ...` of a rollup row, each written by
/// `each`, joined with commas: for the stores' SQL.
pub(crate) fn bucket_columns(each: impl Fn(usize) -> String) -> String {
    (0..BUCKETS).map(each).collect::<Vec<_>>().join(", ")
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Rows a store read, put together: one [`DestinationHealth`] per id of
/// `ids`, in that order, from `counts` (destination, part of the window,
/// counts), `errors` and `queues` by destination.
pub(crate) fn assemble(
    ids: Vec<String>,
    counts: Vec<(String, WindowPart, AttemptCounts)>,
    errors: Vec<(String, LastError)>,
    queues: Vec<(String, QueueHealth)>,
    window: HealthWindow,
) -> Vec<DestinationHealth> {
    let mut parts: std::collections::HashMap<String, HealthParts> = ids
        .iter()
        .map(|id| (id.clone(), HealthParts::default()))
        .collect();
    for (id, part, c) in counts {
        if let Some(p) = parts.get_mut(&id) {
            p.count(part, &c);
        }
    }
    for (id, error) in errors {
        if let Some(p) = parts.get_mut(&id) {
            p.last_error = Some(error);
        }
    }
    for (id, queue) in queues {
        if let Some(p) = parts.get_mut(&id) {
            p.queue = queue;
        }
    }
    ids.into_iter()
        .map(|id| {
            let p = parts.remove(&id).unwrap_or_default();
            p.finish(id, window)
        })
        .collect()
}

impl<S: DeliveryStore> Sender<S> {
    /// The health of every destination, in registration order, at the
    /// sender's clock's now: attempts, successes and p50/p99 response time
    /// over the last hour and the last 24 hours (whole minutes, this one
    /// included), the day in 24 clock-hour slots (the last one the current
    /// hour so far), the last error and the queue.
    ///
    /// Stores keep a rollup beside the attempts, written in the same
    /// transaction as each one: per destination and minute, and per
    /// destination and hour, the attempts, the successes, the slowest
    /// response and a histogram of response times in
    /// [`RESPONSE_TIME_BOUNDS_MS`] buckets. The answer is read from at most
    /// 24 hour rows and 118 minute rows per destination however long the
    /// history, survives restarts, and is the same on every sender node
    /// sharing a PostgreSQL store. A percentile is the upper bound of the
    /// bucket holding its rank (nearest rank), or the slowest response when
    /// that is smaller: as fine as the buckets (about 1.5x apart).
    ///
    /// # Errors
    ///
    /// [`SenderError::Store`] when the store fails.
    pub async fn destination_health(&self) -> Result<Vec<DestinationHealth>, SenderError> {
        Ok(self.store().destination_health(self.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(durations: &[u64]) -> AttemptCounts {
        let mut c = AttemptCounts::default();
        for &d in durations {
            let mut a = DeliveryAttempt::new("dlv", 1, 0);
            a.duration_ms = d;
            c.add(&a);
        }
        c
    }

    #[test]
    fn buckets_hold_durations_up_to_their_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(15_000), 24);
        assert_eq!(bucket_of(15_001), 25);
        assert_eq!(bucket_of(u64::MAX), 25);
    }

    #[test]
    fn percentiles_take_the_nearest_rank_bucket_capped_at_the_slowest() {
        let c = counts(&[4, 4, 4, 40, 90]);
        assert_eq!(c.percentile(500), Some(5));
        assert_eq!(c.percentile(990), Some(90));
        assert_eq!(counts(&[20_000]).percentile(500), Some(20_000));
        assert_eq!(AttemptCounts::default().percentile(500), None);
    }

    #[test]
    fn the_window_ends_with_the_current_minute_and_hour() {
        let now = 30 * SLOT_MS + 20 * MINUTE_MS + 30_000;
        let w = HealthWindow::at(now);
        assert_eq!(w.end_ms, 30 * SLOT_MS + 21 * MINUTE_MS);
        assert_eq!(w.start_ms, w.end_ms - 24 * SLOT_MS);
        assert_eq!(w.hour_start_ms, w.end_ms - SLOT_MS);
        assert_eq!(w.first_hour_ms, 7 * SLOT_MS);
        assert_eq!(w.slot_of(30 * SLOT_MS), Some(SLOTS - 1));
        assert_eq!(w.slot_of(31 * SLOT_MS), None);
        assert_eq!(w.slot_of(7 * SLOT_MS), Some(0));
        assert_eq!(w.slot_of(6 * SLOT_MS), None);
        // The day's edge: from its start to the first slot.
        let edge = w.place_of(w.start_ms);
        assert_eq!(
            (edge.slot, edge.day_edge, edge.last_hour),
            (None, true, false)
        );
        assert!(!w.place_of(w.start_ms - MINUTE_MS).day_edge);
        assert!(!w.place_of(w.first_hour_ms).day_edge);
        // The last hour spans the end of one slot and the start of the next.
        let p = w.place_of(w.hour_start_ms);
        assert_eq!((p.slot, p.last_hour), (Some(SLOTS - 2), true));
        assert!(!w.place_of(w.hour_start_ms - MINUTE_MS).last_hour);
        assert!(!w.place_of(w.end_ms).last_hour);
    }
}
