//! The names of the metrics [`VerifyLayer`](super::VerifyLayer) records
//! through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Nothing is recorded until the application installs a recorder (for
//! example `metrics-exporter-prometheus`); without one, each request costs a
//! few no-op calls. Every label value comes from configuration or from a
//! closed list, never from the request, so a client cannot create new time
//! series by varying what it sends:
//!
//! | label | values |
//! |---|---|
//! | `scheme` | the layer's scheme: `native`, `native-body-only`, `standard`, `github`, `stripe`, `slack`, `shopify` |
//! | `outcome` | `accepted`, `rejected` |
//! | `kind` | `none` when accepted, else a [`VerifyErrorKind`](crate::VerifyErrorKind) name: `missing-header`, `malformed-header`, `invalid-signature`, `timestamp-too-old`, `timestamp-too-new`, `missing-timestamp`, `payload-too-large`, `body-read-failed` |
//! | `algorithm` | `hmac-sha256`, `ed25519` |
//! | `key` | the matching key's [label](crate::Secret::labelled), or its position (`0`, `1`, ...) in the [`SecretSet`](crate::SecretSet) (HMAC) or among the scheme's public keys (ed25519) |
//! | `cause` | a [`FailureCause`](super::FailureCause) name |
//! | `reason` | `rate-limited`, `body-too-large` |
//!
//! # Rotating a secret
//!
//! Label both secrets ([`Secret::labelled`](crate::Secret::labelled)), then
//! watch [`KEY_LAST_USED`] for the old one: once it is older than the
//! sender's whole retry horizon, no delivery signed with the old secret is
//! still on its way, and the old secret can be removed.

/// Counter: requests that reached the layer, by result. Labels `scheme`,
/// `outcome` (`accepted` or `rejected`) and `kind` (`none`, or why the
/// request was rejected).
pub const REQUESTS: &str = "webhook_guard_verify_requests_total";

/// Histogram: seconds spent checking the signature and the replay window of
/// a request whose body was read (reading the body is not counted). Label
/// `scheme`.
pub const DURATION_SECONDS: &str = "webhook_guard_verify_duration_seconds";

/// Counter: accepted requests by the key that matched. Labels `scheme`,
/// `algorithm` and `key`.
pub const KEY_MATCHES: &str = "webhook_guard_verify_key_matches_total";

/// Gauge: when each key last verified a request, in unix seconds (by the
/// layer's clock). Labels `scheme`, `algorithm` and `key`. A key that never
/// matched has no series.
pub const KEY_LAST_USED: &str = "webhook_guard_verify_key_last_used_timestamp_seconds";

/// Counter: rejected requests diagnosed by
/// [`VerifyLayer::diagnose_failures`](super::VerifyLayer::diagnose_failures),
/// by likely cause. Labels `scheme` and `cause`.
pub const DIAGNOSED_FAILURES: &str = "webhook_guard_verify_diagnosed_failures_total";

/// Counter: rejected requests that
/// [`VerifyLayer::diagnose_failures`](super::VerifyLayer::diagnose_failures)
/// left undiagnosed. Labels `scheme` and `reason` (`rate-limited`: over the
/// configured rate; `body-too-large`: over the configured body size).
pub const DIAGNOSES_SKIPPED: &str = "webhook_guard_verify_diagnoses_skipped_total";
