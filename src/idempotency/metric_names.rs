//! The names of the metrics [`IdempotencyLayer`](super::IdempotencyLayer)
//! records through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Label values come from a closed list, never from the request:
//!
//! | label | values |
//! |---|---|
//! | `scheme` | the scheme that verified the request: `native`, `native-body-only`, `standard`, `github`, `stripe`, `slack`, `shopify` |
//! | `outcome` | `new`, `duplicate`, `in-flight`, `store-unavailable`, `unprotected` |

/// Counter: verified requests by what the layer did with them. Labels
/// `scheme` and `outcome`:
///
/// - `new`: the event was not seen before; the handler was called;
/// - `duplicate`: already processed; answered 200 with
///   `X-Webhook-Duplicate: true`, the handler not called;
/// - `in-flight`: another delivery of the event was being processed;
///   answered 409, the handler not called;
/// - `store-unavailable`: the store failed and the layer fails closed;
///   answered 503, the handler not called;
/// - `unprotected`: the store failed and the layer fails open; the handler
///   was called without deduplication.
pub const REQUESTS: &str = "webhook_guard_idempotency_requests_total";
