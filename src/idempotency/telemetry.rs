//! What [`IdempotencyLayer`](super::IdempotencyLayer) records per request:
//! the keys of [`REQUESTS`] for every scheme and outcome are built once,
//! when the layer is built, and each handle is registered with the recorder
//! once, when first recorded, so a request neither allocates a key nor
//! looks its counter up in the recorder's registry.

use metrics::{Counter, Key, Label, Level, Metadata};

use super::metric_names::REQUESTS;
use crate::cached_metric::CachedMetric;
use crate::scheme::SchemeName;

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// What the layer did with a verified request: the `outcome` label of
/// [`REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    New,
    Duplicate,
    InFlight,
    StoreUnavailable,
    Unprotected,
}

impl Outcome {
    /// Every outcome, in the order of declaration (`outcome as usize` is
    /// its position).
    const ALL: [Self; 5] = [
        Self::New,
        Self::Duplicate,
        Self::InFlight,
        Self::StoreUnavailable,
        Self::Unprotected,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Duplicate => "duplicate",
            Self::InFlight => "in-flight",
            Self::StoreUnavailable => "store-unavailable",
            Self::Unprotected => "unprotected",
        }
    }
}

/// The [`REQUESTS`] counters of one layer: one per scheme (in the order of
/// [`SchemeName::ALL`]) and outcome.
pub(crate) struct IdempotencyMetrics {
    requests: [[CachedMetric<Counter>; Outcome::ALL.len()]; SchemeName::ALL.len()],
}

impl IdempotencyMetrics {
    pub(crate) fn new() -> Self {
        let key = |scheme: SchemeName, outcome: Outcome| {
            let labels = vec![
                Label::new("scheme", scheme.as_str()),
                Label::new("outcome", outcome.as_str()),
            ];
            CachedMetric::new(Key::from_parts(REQUESTS, labels), &METADATA)
        };
        Self {
            requests: SchemeName::ALL
                .map(|scheme| Outcome::ALL.map(|outcome| key(scheme, outcome))),
        }
    }

    /// Counts a request of `scheme` that came to `outcome`.
    pub(crate) fn count(&self, scheme: SchemeName, outcome: Outcome) {
        let row = SchemeName::ALL.iter().position(|s| *s == scheme);
        match row.and_then(|row| self.requests.get(row)?.get(outcome as usize)) {
            Some(counter) => counter.increment(1),
            // A scheme missing from `SchemeName::ALL`: counted all the same.
            None => metrics::counter!(
                REQUESTS, "scheme" => scheme.as_str(), "outcome" => outcome.as_str()
            )
            .increment(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::cached_metric::tests::Counting;

    /// Requests through `VerifyLayer` and `IdempotencyLayer` register the
    /// layer's counter once per outcome, not once per request.
    #[tokio::test]
    async fn the_layer_registers_each_counter_once() {
        use axum::body::Body;
        use tower::{ServiceBuilder, ServiceExt as _};

        use crate::idempotency::IdempotencyLayer;
        use crate::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};

        let recorder = Counting::default();
        let _local = metrics::set_default_local_recorder(&recorder);
        let secrets = SecretSet::single("idempotency-telemetry-secret-0123").unwrap();
        let service = ServiceBuilder::new()
            .layer(VerifyLayer::new(secrets.clone()).clock(FixedClock::at(1_000)))
            .layer(IdempotencyLayer::in_memory())
            .service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            });
        for _ in 0..4 {
            let message = Message::new("evt_1", 1_000, b"{}");
            let mut request = http::Request::post("/").body(Body::from("{}")).unwrap();
            *request.headers_mut() = Scheme::native().sign(&secrets, &message).unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
        }
        // One request was new, three were duplicates: two series.
        assert_eq!(recorder.registrations_of(REQUESTS), 2);
    }

    #[test]
    fn each_outcome_sits_at_its_own_position() {
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i, "{outcome:?}");
        }
    }

    #[test]
    fn a_counter_is_registered_once_under_its_scheme_and_outcome() {
        let metrics = IdempotencyMetrics::new();
        let recorder = Counting::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                metrics.count(SchemeName::GitHub, Outcome::InFlight);
            }
        });
        assert_eq!(recorder.counted(), 3);
        assert_eq!(recorder.registrations(), 1);

        let debugging = DebuggingRecorder::new();
        let snapshotter = debugging.snapshotter();
        metrics::with_local_recorder(&debugging, || {
            metrics.count(SchemeName::Stripe, Outcome::StoreUnavailable);
        });
        let recorded: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key().clone();
                let labels: Vec<_> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (key.name().to_owned(), labels, value)
            })
            .collect();
        let labels = vec![
            ("scheme".to_owned(), "stripe".to_owned()),
            ("outcome".to_owned(), "store-unavailable".to_owned()),
        ];
        assert_eq!(
            recorded,
            [(REQUESTS.to_owned(), labels, DebugValue::Counter(1))]
        );
    }
}
