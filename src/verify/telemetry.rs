//! What [`VerifyLayer`](super::VerifyLayer) records per request: the keys of
//! its metrics are built once, when the layer is applied, so a request
//! allocates nothing to record them, and each metric's handle is registered
//! with the recorder once, when first recorded, so a request does not look
//! its metrics up in the recorder's registry either.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata};

use super::Verified;
use super::metric_names::{DURATION_SECONDS, KEY_LAST_USED, KEY_MATCHES, REQUESTS};
use crate::cached_metric::{CachedMetric, counter, gauge, histogram};
use crate::error::VerifyErrorKind;
use crate::scheme::{Scheme, SignatureAlgorithm};
use crate::secret::{SecretSet, key_metric_label};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The metrics of one key (secret or public key).
struct KeyMetrics {
    matches: CachedMetric<Counter>,
    last_used: CachedMetric<Gauge>,
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
            matches: CachedMetric::new(Key::from_parts(KEY_MATCHES, labels()), &METADATA),
            last_used: CachedMetric::new(Key::from_parts(KEY_LAST_USED, labels()), &METADATA),
        }
    }
}

/// Every metric one layer records, built from its configuration only.
pub(crate) struct VerifyMetrics {
    accepted: CachedMetric<Counter>,
    rejected: [CachedMetric<Counter>; VerifyErrorKind::ALL.len()],
    duration: CachedMetric<Histogram>,
    secrets: Vec<KeyMetrics>,
    public_keys: Vec<KeyMetrics>,
}

impl VerifyMetrics {
    pub(crate) fn new(scheme: &Scheme, secrets: &SecretSet) -> Self {
        let name = scheme.name().as_str();
        let request = |outcome: &'static str, kind: &'static str| {
            let labels = [("scheme", name), ("outcome", outcome), ("kind", kind)];
            let key = Key::from_parts(REQUESTS, labels.map(|(k, v)| Label::new(k, v)).to_vec());
            CachedMetric::new(key, &METADATA)
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
            duration: CachedMetric::new(
                Key::from_parts(DURATION_SECONDS, vec![Label::new("scheme", name)]),
                &METADATA,
            ),
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
            metric.increment(1);
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
    use super::*;
    use crate::cached_metric::tests::Counting;

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
        assert_eq!(recorder.registrations(), 1);
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
        assert_eq!(first.registrations(), 1);
        assert_eq!(second.counted(), 1);
    }
}
