//! What [`VerifyLayer`](super::VerifyLayer) records per request: the keys of
//! its metrics are built once, when the layer is applied, so a request
//! allocates nothing to record them.

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata};

use super::Verified;
use super::metric_names::{DURATION_SECONDS, KEY_LAST_USED, KEY_MATCHES, REQUESTS};
use crate::error::VerifyErrorKind;
use crate::scheme::{Scheme, SignatureAlgorithm};
use crate::secret::{SecretSet, key_metric_label};

pub(crate) static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The metric keys of one key (secret or public key).
struct KeyMetrics {
    matches: Key,
    last_used: Key,
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
            matches: Key::from_parts(KEY_MATCHES, labels()),
            last_used: Key::from_parts(KEY_LAST_USED, labels()),
        }
    }
}

/// Every metric key one layer records, built from its configuration only.
pub(crate) struct VerifyMetrics {
    accepted: Key,
    rejected: [Key; VerifyErrorKind::ALL.len()],
    duration: Key,
    secrets: Vec<KeyMetrics>,
    public_keys: Vec<KeyMetrics>,
}

impl VerifyMetrics {
    pub(crate) fn new(scheme: &Scheme, secrets: &SecretSet) -> Self {
        let name = scheme.name().as_str();
        let request = |outcome: &'static str, kind: &'static str| {
            let labels = [("scheme", name), ("outcome", outcome), ("kind", kind)];
            Key::from_parts(REQUESTS, labels.map(|(k, v)| Label::new(k, v)).to_vec())
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
            duration: Key::from_parts(DURATION_SECONDS, vec![Label::new("scheme", name)]),
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
            recorder
                .register_counter(&self.accepted, &METADATA)
                .increment(1);
            recorder
                .register_histogram(&self.duration, &METADATA)
                .record(took.as_secs_f64());
            if let Some(key) = key {
                recorder
                    .register_counter(&key.matches, &METADATA)
                    .increment(1);
                recorder
                    .register_gauge(&key.last_used, &METADATA)
                    .set(now as f64);
            }
        });
    }

    /// Records a rejected request.
    pub(crate) fn rejected(&self, kind: VerifyErrorKind) {
        if let Some(key) = self.rejected.get(kind.index()) {
            metrics::with_recorder(|recorder| {
                recorder.register_counter(key, &METADATA).increment(1);
            });
        }
    }

    /// Records how long the check of a rejected request took.
    pub(crate) fn rejected_after(&self, took: Duration) {
        metrics::with_recorder(|recorder| {
            recorder
                .register_histogram(&self.duration, &METADATA)
                .record(took.as_secs_f64());
        });
    }
}
