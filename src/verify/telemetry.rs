//! What [`VerifyLayer`](super::VerifyLayer) records per request: the keys of
//! its metrics are built once, when the layer is applied, so a request
//! allocates nothing to record them, and each metric's handle is registered
//! with the recorder once, when first recorded, so a request does not look
//! its metrics up in the recorder's registry either.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};

use super::Verified;
use super::metric_names::{DURATION_SECONDS, KEY_LAST_USED, KEY_MATCHES, REQUESTS};
use crate::error::VerifyErrorKind;
use crate::scheme::{Scheme, SignatureAlgorithm};
use crate::secret::{SecretSet, key_metric_label};

pub(crate) static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A metric's key and its handle in the recorder that first recorded it.
///
/// The handle is kept for that recorder only (told apart by its address):
/// any other recorder current at a call, such as a thread-local one, gets
/// the metric registered as usual. A zero-sized recorder, which is what the
/// facade uses while none is installed, is never kept, so a recorder
/// installed after the layer was applied is the one whose handle is kept.
/// The handle is registered when the metric is first recorded, so a series
/// appears only once something was recorded in it, as without the cache.
struct Cached<H> {
    key: Key,
    handle: OnceLock<(usize, H)>,
}

impl<H> Cached<H> {
    fn new(key: Key) -> Self {
        Self {
            key,
            handle: OnceLock::new(),
        }
    }

    /// Records into this metric's handle in `recorder` with `record`,
    /// registering it with `register` unless it is kept.
    fn record(
        &self,
        recorder: &dyn Recorder,
        register: fn(&dyn Recorder, &Key) -> H,
        record: impl FnOnce(&H),
    ) {
        if std::mem::size_of_val(recorder) == 0 {
            return record(&register(recorder, &self.key));
        }
        let address = (recorder as *const dyn Recorder).cast::<()>() as usize;
        let (kept_for, handle) = self
            .handle
            .get_or_init(|| (address, register(recorder, &self.key)));
        if *kept_for == address {
            record(handle);
        } else {
            record(&register(recorder, &self.key));
        }
    }
}

fn counter(recorder: &dyn Recorder, key: &Key) -> Counter {
    recorder.register_counter(key, &METADATA)
}

fn gauge(recorder: &dyn Recorder, key: &Key) -> Gauge {
    recorder.register_gauge(key, &METADATA)
}

fn histogram(recorder: &dyn Recorder, key: &Key) -> Histogram {
    recorder.register_histogram(key, &METADATA)
}

/// The metrics of one key (secret or public key).
struct KeyMetrics {
    matches: Cached<Counter>,
    last_used: Cached<Gauge>,
}

impl KeyMetrics {
    fn new(scheme: &'static str, algorithm: &'static str, key: String) -> Self {
        let labels = || {
            vec![
                Label::new("scheme", scheme),
                Label::new("algorithm", algorithm),
                Label::new("key", key.clone()),
            ]
        };
        Self {
            matches: Cached::new(Key::from_parts(KEY_MATCHES, labels())),
            last_used: Cached::new(Key::from_parts(KEY_LAST_USED, labels())),
        }
    }
}

/// Every metric one layer records, built from its configuration only.
pub(crate) struct VerifyMetrics {
    accepted: Cached<Counter>,
    rejected: [Cached<Counter>; VerifyErrorKind::ALL.len()],
    duration: Cached<Histogram>,
    secrets: Vec<KeyMetrics>,
    public_keys: Vec<KeyMetrics>,
}

impl VerifyMetrics {
    pub(crate) fn new(scheme: &Scheme, secrets: &SecretSet) -> Self {
        let name = scheme.name().as_str();
        let request = |outcome: &'static str, kind: &'static str| {
            let labels = [("scheme", name), ("outcome", outcome), ("kind", kind)];
            let key = Key::from_parts(REQUESTS, labels.map(|(k, v)| Label::new(k, v)).to_vec());
            Cached::new(key)
        };
        let secrets = (0..secrets.len())
            .map(|i| KeyMetrics::new(name, "hmac-sha256", secrets.metric_label(i).into_owned()))
            .collect();
        let public_keys = scheme
            .ed25519_key_labels()
            .into_iter()
            .enumerate()
            .map(|(i, label)| KeyMetrics::new(name, "ed25519", key_metric_label(label, i).into()))
            .collect();
        Self {
            accepted: request("accepted", "none"),
            rejected: VerifyErrorKind::ALL.map(|kind| request("rejected", kind.as_str())),
            duration: Cached::new(Key::from_parts(
                DURATION_SECONDS,
                vec![Label::new("scheme", name)],
            )),
            secrets,
            public_keys,
        }
    }

    /// Records an accepted request: verified at `now` (unix seconds), in
    /// `took`.
    pub(crate) fn accepted(&self, verified: &Verified, now: i64, took: Duration) {
        let keys = match verified.algorithm() {
            SignatureAlgorithm::HmacSha256 => &self.secrets,
            SignatureAlgorithm::Ed25519 => &self.public_keys,
        };
        let key = keys.get(verified.secret_index());
        metrics::with_recorder(|recorder| {
            self.accepted.record(recorder, counter, |c| c.increment(1));
            let seconds = took.as_secs_f64();
            self.duration
                .record(recorder, histogram, |h| h.record(seconds));
            if let Some(key) = key {
                key.matches.record(recorder, counter, |c| c.increment(1));
                key.last_used.record(recorder, gauge, |g| g.set(now as f64));
            }
        });
    }

    /// Records a rejected request.
    pub(crate) fn rejected(&self, kind: VerifyErrorKind) {
        if let Some(metric) = self.rejected.get(kind.index()) {
            metrics::with_recorder(|recorder| metric.record(recorder, counter, |c| c.increment(1)));
        }
    }

    /// Records how long the check of a rejected request took.
    pub(crate) fn rejected_after(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        metrics::with_recorder(|recorder| {
            self.duration
                .record(recorder, histogram, |h| h.record(seconds));
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use metrics::{KeyName, SharedString, Unit};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// A debugging recorder that counts how often a metric is registered.
    #[derive(Default)]
    struct Counting {
        registered: AtomicUsize,
        inner: DebuggingRecorder,
    }

    impl Counting {
        /// The value of the only counter recorded.
        fn counted(&self) -> u64 {
            let values: Vec<u64> = (self.inner.snapshotter().snapshot().into_vec())
                .into_iter()
                .filter_map(|(_, _, _, value)| match value {
                    DebugValue::Counter(n) => Some(n),
                    _ => None,
                })
                .collect();
            values.iter().sum()
        }
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
            self.registered.fetch_add(1, Ordering::SeqCst);
            self.inner.register_counter(key, metadata)
        }

        fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
            self.registered.fetch_add(1, Ordering::SeqCst);
            self.inner.register_gauge(key, metadata)
        }

        fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
            self.registered.fetch_add(1, Ordering::SeqCst);
            self.inner.register_histogram(key, metadata)
        }
    }

    fn layer_metrics() -> VerifyMetrics {
        let secrets = SecretSet::single("telemetry-test-secret-0123456789").expect("secret");
        VerifyMetrics::new(&Scheme::native(), &secrets)
    }

    #[test]
    fn a_metric_is_registered_once_with_the_recorder() {
        let metrics = layer_metrics();
        let recorder = Counting::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                metrics.rejected(VerifyErrorKind::InvalidSignature);
            }
        });
        assert_eq!(recorder.counted(), 3);
        assert_eq!(recorder.registered.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_recorder_installed_later_or_another_recorder_gets_the_metrics() {
        let metrics = layer_metrics();
        // No recorder on this thread yet: the facade's no-op one.
        metrics.rejected(VerifyErrorKind::InvalidSignature);
        let first = Counting::default();
        let second = Counting::default();
        metrics::with_local_recorder(&first, || {
            metrics.rejected(VerifyErrorKind::InvalidSignature);
            metrics.rejected(VerifyErrorKind::InvalidSignature);
        });
        metrics::with_local_recorder(&second, || {
            metrics.rejected(VerifyErrorKind::InvalidSignature);
        });
        metrics::with_local_recorder(&first, || {
            metrics.rejected(VerifyErrorKind::InvalidSignature);
        });
        assert_eq!(first.counted(), 3);
        assert_eq!(first.registered.load(Ordering::SeqCst), 1);
        assert_eq!(second.counted(), 1);
    }
}
