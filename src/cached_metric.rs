//! A metric whose handle is registered with the recorder once, so that a
//! layer's hot path records without looking the metric up in the recorder's
//! registry: [`VerifyLayer`](crate::VerifyLayer) and
//! [`IdempotencyLayer`](crate::idempotency::IdempotencyLayer) build their
//! keys when they are applied and keep each handle here.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Key, Metadata, Recorder};

/// A metric's key and its handle in the recorder that first recorded it.
///
/// The handle is kept for that recorder only (told apart by its address):
/// any other recorder current at a call, such as a thread-local one, gets
/// the metric registered as usual. A zero-sized recorder, which is what the
/// facade uses while none is installed, is never kept, so a recorder
/// installed after the layer was applied is the one whose handle is kept.
/// The handle is registered when the metric is first recorded, so a series
/// appears only once something was recorded in it, as without the cache.
pub(crate) struct CachedMetric<H> {
    key: Key,
    metadata: &'static Metadata<'static>,
    handle: OnceLock<(usize, H)>,
}

impl<H> CachedMetric<H> {
    /// The metric `key`, registered with `metadata` (which says where it is
    /// recorded from, as the `metrics` macros' metadata does).
    pub(crate) fn new(key: Key, metadata: &'static Metadata<'static>) -> Self {
        Self {
            key,
            metadata,
            handle: OnceLock::new(),
        }
    }

    /// Records into this metric's handle in `recorder` with `record`,
    /// registering it with `register` unless it is kept.
    pub(crate) fn record(
        &self,
        recorder: &dyn Recorder,
        register: fn(&dyn Recorder, &Key, &Metadata<'_>) -> H,
        record: impl FnOnce(&H),
    ) {
        if std::mem::size_of_val(recorder) == 0 {
            return record(&register(recorder, &self.key, self.metadata));
        }
        let address = (recorder as *const dyn Recorder).cast::<()>() as usize;
        let (kept_for, handle) = self
            .handle
            .get_or_init(|| (address, register(recorder, &self.key, self.metadata)));
        if *kept_for == address {
            record(handle);
        } else {
            record(&register(recorder, &self.key, self.metadata));
        }
    }
}

impl CachedMetric<Counter> {
    /// Adds `n` to the counter in the current recorder.
    pub(crate) fn increment(&self, n: u64) {
        metrics::with_recorder(|recorder| self.record(recorder, counter, |c| c.increment(n)));
    }
}

/// Registers a counter (for [`CachedMetric::record`]).
pub(crate) fn counter(recorder: &dyn Recorder, key: &Key, metadata: &Metadata<'_>) -> Counter {
    recorder.register_counter(key, metadata)
}

/// Registers a gauge (for [`CachedMetric::record`]).
pub(crate) fn gauge(recorder: &dyn Recorder, key: &Key, metadata: &Metadata<'_>) -> Gauge {
    recorder.register_gauge(key, metadata)
}

/// Registers a histogram (for [`CachedMetric::record`]).
pub(crate) fn histogram(recorder: &dyn Recorder, key: &Key, metadata: &Metadata<'_>) -> Histogram {
    recorder.register_histogram(key, metadata)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use metrics::{KeyName, SharedString, Unit};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// A debugging recorder that notes each metric it is asked to register.
    #[derive(Default)]
    pub(crate) struct Counting {
        registered: Mutex<Vec<String>>,
        inner: DebuggingRecorder,
    }

    impl Counting {
        /// The sum of the counters recorded.
        pub(crate) fn counted(&self) -> u64 {
            let values: Vec<u64> = (self.inner.snapshotter().snapshot().into_vec())
                .into_iter()
                .filter_map(|(_, _, _, value)| match value {
                    DebugValue::Counter(n) => Some(n),
                    _ => None,
                })
                .collect();
            values.iter().sum()
        }

        /// How often a metric was registered.
        pub(crate) fn registrations(&self) -> usize {
            self.registered.lock().unwrap().len()
        }

        /// How often a metric named `name` was registered.
        pub(crate) fn registrations_of(&self, name: &str) -> usize {
            let registered = self.registered.lock().unwrap();
            registered.iter().filter(|n| *n == name).count()
        }

        fn note(&self, key: &Key) {
            let name = key.name().to_owned();
            self.registered.lock().unwrap().push(name);
        }
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
            self.note(key);
            self.inner.register_counter(key, metadata)
        }

        fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
            self.note(key);
            self.inner.register_gauge(key, metadata)
        }

        fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
            self.note(key);
            self.inner.register_histogram(key, metadata)
        }
    }
}
