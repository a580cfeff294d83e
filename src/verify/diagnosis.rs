//! The opt-in diagnosis of rejected requests in
//! [`VerifyLayer`](super::VerifyLayer): why a request failed, counted by
//! likely cause and logged at `debug`, a few times per period at most.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;

use super::metric_names::{DIAGNOSED_FAILURES, DIAGNOSES_SKIPPED};
use super::verified::Verifier;
use crate::diagnose::{Diagnosis, Finding, MAX_BODY_FOR_CHANGES, TimestampUnit};
use crate::error::VerifyErrorKind;

/// The most bytes of a request's id header written in a diagnosis log line.
const LOGGED_ID_LEN: usize = 64;

/// How often and on what [`VerifyLayer::diagnose_failures`](super::VerifyLayer::diagnose_failures)
/// diagnoses rejected requests.
///
/// By default at most 5 diagnoses per 10 s, each of a body of at most
/// [`MAX_BODY_FOR_CHANGES`] (64 KiB).
///
/// ```
/// use std::time::Duration;
/// use webhook_guard::verify::DiagnoseConfig;
///
/// let config = DiagnoseConfig::new()
///     .at_most(2, Duration::from_secs(60))
///     .max_body(16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct DiagnoseConfig {
    count: u32,
    per: Duration,
    max_body: usize,
}

impl Default for DiagnoseConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl DiagnoseConfig {
    /// The defaults: at most 5 diagnoses per 10 s, bodies up to 64 KiB.
    pub fn new() -> Self {
        Self {
            count: 5,
            per: Duration::from_secs(10),
            max_body: MAX_BODY_FOR_CHANGES,
        }
    }

    /// Diagnoses at most `count` rejections per `per` (a token bucket:
    /// `count` at once, then one every `per / count`). `0` turns the
    /// diagnosis off.
    pub fn at_most(mut self, count: u32, per: Duration) -> Self {
        self.count = count;
        self.per = per;
        self
    }

    /// Diagnoses only bodies of at most `bytes` (default
    /// [`MAX_BODY_FOR_CHANGES`]; a diagnosis never searches a larger body
    /// for changes anyway).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

/// The likely cause of a rejected request, as
/// [`DIAGNOSED_FAILURES`](super::metric_names::DIAGNOSED_FAILURES) counts it:
/// the most telling [`Finding`] of its [`Diagnosis`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureCause {
    /// The request carries another provider's signature header
    /// ([`Finding::LooksLikeOtherScheme`]).
    OtherScheme,
    /// The body was changed after signing ([`Finding::BodyChanged`]; the
    /// log line says how).
    BodyChanged,
    /// The sender reads the secret another way ([`Finding::SecretEncoding`]).
    SecretEncoding,
    /// The timestamp is in another unit than seconds (milliseconds, ...).
    TimestampUnit,
    /// The timestamp is outside the replay window: a clock is off, or the
    /// delivery is old.
    ClockOff,
    /// A header the scheme needs is missing, and no other provider's is there.
    MissingHeader,
    /// None of the above was found.
    Unknown,
}

impl FailureCause {
    /// The label value: `other-scheme`, `body-changed`, `secret-encoding`,
    /// `timestamp-unit`, `clock-off`, `missing-header` or `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OtherScheme => "other-scheme",
            Self::BodyChanged => "body-changed",
            Self::SecretEncoding => "secret-encoding",
            Self::TimestampUnit => "timestamp-unit",
            Self::ClockOff => "clock-off",
            Self::MissingHeader => "missing-header",
            Self::Unknown => "unknown",
        }
    }

    /// The cause of a failed diagnosis: its most telling finding.
    pub fn of(diagnosis: &Diagnosis) -> Self {
        let findings = diagnosis.findings();
        let rank = |finding: &Finding| match finding {
            Finding::LooksLikeOtherScheme { .. } => Self::OtherScheme,
            Finding::BodyChanged { .. } => Self::BodyChanged,
            Finding::SecretEncoding { .. } => Self::SecretEncoding,
            Finding::TimestampOutsideWindow { unit, .. } if *unit != TimestampUnit::Seconds => {
                Self::TimestampUnit
            }
            Finding::TimestampOutsideWindow { .. } => Self::ClockOff,
            Finding::MissingHeader { .. } => Self::MissingHeader,
            _ => Self::Unknown,
        };
        // The variants are declared most telling first.
        findings
            .iter()
            .map(rank)
            .min_by_key(|c| *c as u8)
            .unwrap_or(Self::Unknown)
    }
}

/// The diagnosis settings of one layer with its token bucket, shared by
/// every service the layer builds.
#[derive(Debug)]
pub(crate) struct Diagnoser {
    config: DiagnoseConfig,
    /// Tokens left and when they were last counted.
    bucket: Mutex<(f64, Instant)>,
}

impl Diagnoser {
    pub(crate) fn new(config: DiagnoseConfig) -> Self {
        Self {
            config,
            bucket: Mutex::new((f64::from(config.count), Instant::now())),
        }
    }

    pub(crate) fn config(&self) -> DiagnoseConfig {
        self.config
    }

    /// Takes one token, if one is left.
    fn take_token(&self) -> bool {
        let count = f64::from(self.config.count);
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.1).as_secs_f64();
        let per = self.config.per.as_secs_f64();
        let refill = if per > 0.0 {
            elapsed * count / per
        } else {
            count
        };
        *bucket = ((bucket.0 + refill).min(count), now);
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Diagnoses a request rejected with `kind`, off the async threads, when
    /// the kind is one a diagnosis explains, the body is small enough and
    /// the rate allows.
    pub(crate) fn consider(
        &self,
        verifier: &Verifier,
        kind: VerifyErrorKind,
        headers: &HeaderMap,
        body: &Bytes,
    ) {
        if matches!(
            kind,
            VerifyErrorKind::PayloadTooLarge | VerifyErrorKind::BodyReadFailed
        ) {
            return;
        }
        let scheme = verifier.scheme().name().as_str();
        let skipped = |reason: &'static str| {
            metrics::counter!(DIAGNOSES_SKIPPED, "scheme" => scheme, "reason" => reason)
                .increment(1);
        };
        if body.len() > self.config.max_body {
            return skipped("body-too-large");
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.take_token() {
            return skipped("rate-limited");
        }
        let (verifier, headers, body) = (verifier.clone(), headers.clone(), body.clone());
        runtime.spawn_blocking(move || diagnose_and_record(&verifier, &headers, &body));
    }
}

/// Runs the diagnosis, counts it by cause and logs it at `debug`.
fn diagnose_and_record(verifier: &Verifier, headers: &HeaderMap, body: &[u8]) {
    let diagnosis = crate::diagnose::diagnose_with_window(
        verifier.scheme(),
        verifier.secrets(),
        headers,
        body,
        verifier.window(),
    );
    if diagnosis.is_verified() {
        // The clock moved on between the check and the diagnosis.
        return;
    }
    let scheme = verifier.scheme().name();
    let cause = FailureCause::of(&diagnosis);
    metrics::counter!(DIAGNOSED_FAILURES, "scheme" => scheme.as_str(), "cause" => cause.as_str())
        .increment(1);
    tracing::debug!(
        scheme = %scheme,
        cause = cause.as_str(),
        unverified_id = ?claimed_id(scheme, headers),
        "webhook rejection diagnosed: {diagnosis}"
    );
}

/// The id the request claims (not authenticated: for the log only, cut to
/// [`LOGGED_ID_LEN`] bytes and written escaped).
fn claimed_id(scheme: crate::scheme::SchemeName, headers: &HeaderMap) -> Option<String> {
    let value = scheme.id_headers().iter().find_map(|h| headers.get(*h))?;
    let bytes = value.as_bytes();
    let cut = &bytes[..bytes.len().min(LOGGED_ID_LEN)];
    Some(String::from_utf8_lossy(cut).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::diagnose;
    use crate::{Message, Scheme, Secret, SecretSet};

    const NOW: i64 = 1_700_000_000;

    fn cause(
        signer: &SecretSet,
        receiver: &SecretSet,
        ts: i64,
        extra: &[(&'static str, &str)],
    ) -> FailureCause {
        let scheme = Scheme::native();
        let mut headers = scheme.sign(signer, &Message::new("e", ts, b"{}")).unwrap();
        for (name, value) in extra {
            headers.insert(*name, value.parse().unwrap());
        }
        let diagnosis = diagnose(&scheme, receiver, &headers, b"{}", NOW);
        assert!(!diagnosis.is_verified());
        FailureCause::of(&diagnosis)
    }

    #[test]
    fn each_finding_maps_to_its_cause() {
        let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let ours = SecretSet::single(text).unwrap();
        let other = SecretSet::single("another-secret").unwrap();
        assert_eq!(cause(&ours, &ours, NOW - 3600, &[]), FailureCause::ClockOff);
        assert_eq!(
            cause(&ours, &ours, NOW * 1000, &[]),
            FailureCause::TimestampUnit
        );
        assert_eq!(cause(&other, &ours, NOW, &[]), FailureCause::Unknown);
        let decoded = SecretSet::new([Secret::from_whsec(text).unwrap()]).unwrap();
        assert_eq!(
            cause(&decoded, &ours, NOW, &[]),
            FailureCause::SecretEncoding
        );
        let github = [("x-hub-signature-256", "sha256=00")];
        assert_eq!(
            cause(&other, &ours, NOW, &github),
            FailureCause::OtherScheme
        );

        let diagnosis = diagnose(&Scheme::native(), &ours, &HeaderMap::new(), b"{}", NOW);
        assert_eq!(FailureCause::of(&diagnosis), FailureCause::MissingHeader);
    }

    #[test]
    fn the_bucket_gives_its_count_then_refills_with_time() {
        let diagnoser = Diagnoser::new(DiagnoseConfig::new().at_most(2, Duration::from_secs(2)));
        assert!(diagnoser.take_token() && diagnoser.take_token());
        assert!(!diagnoser.take_token());
        // Half the period refills one token.
        let mut bucket = diagnoser.bucket.lock().unwrap();
        bucket.1 = bucket.1.checked_sub(Duration::from_secs(1)).unwrap();
        drop(bucket);
        assert!(diagnoser.take_token());
        assert!(!diagnoser.take_token());
        let off = Diagnoser::new(DiagnoseConfig::new().at_most(0, Duration::from_secs(1)));
        assert!(!off.take_token());
    }
}
