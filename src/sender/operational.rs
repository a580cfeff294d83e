//! Operational events: what an operator wants to hear about at once, as a
//! call to a hook and, optionally, as a signed webhook to an operator URL.
//!
//! | event | `type` on the wire | when |
//! |---|---|---|
//! | [`DestinationDisabled`](OperationalEvent::DestinationDisabled) | `destination.disabled` | an endpoint answered `410 Gone` and its destination was disabled |
//! | [`CircuitOpened`](OperationalEvent::CircuitOpened) | `destination.circuit_opened` | consecutive failures opened a destination's circuit: its deliveries pause |
//! | [`CircuitClosed`](OperationalEvent::CircuitClosed) | `destination.circuit_closed` | a successful attempt closed an open (or half-open) circuit |
//! | [`DeadLettered`](OperationalEvent::DeadLettered) | `delivery.dead_lettered` | a delivery gave up and went to the dead letter queue |
//!
//! ```
//! use std::sync::mpsc;
//! use webhook_guard::sender::{MemoryStore, OperationalEvent, Sender};
//!
//! let (tx, rx) = mpsc::channel::<String>();
//! let tx = std::sync::Mutex::new(tx);
//! let sender = Sender::builder(MemoryStore::new())
//!     // Quick and non-blocking: hand the event on, do the work elsewhere.
//!     .on_operational_event(move |e: &OperationalEvent| {
//!         let _ = tx.lock().map(|tx| tx.send(e.event_type().to_owned()));
//!     })
//!     .operational_webhook("https://ops.example.com/hooks", "operator-secret-of-24-bytes+")
//!     .build()?;
//! # drop((sender, rx));
//!
//! // The secret is checked when the sender is built.
//! let short = Sender::builder(MemoryStore::new())
//!     .operational_webhook("https://ops.example.com/hooks", "too-short")
//!     .build();
//! assert!(short.is_err());
//! # Ok::<(), webhook_guard::sender::SenderError>(())
//! ```
//!
//! # Once per change
//!
//! Each event is emitted once per change, by the node whose attempt made
//! it, after the change is stored:
//!
//! - `destination.disabled`: the store disables the destination only if it
//!   is enabled ([`DeliveryStore::disable_destination`]), so of several
//!   attempts answered 410 at once, on one node or many, one reports it.
//! - circuits: with a store that [coordinates the fleet]
//!   (`PgStore`) the store decides each opening and closing under a row
//!   lock and reports it to one node. Otherwise each sender process keeps
//!   its own circuits, and so reports its own: several processes sharing
//!   one store each report theirs. An operator enabling a destination
//!   closes its circuit without an event.
//! - `delivery.dead_lettered`: once per delivery, except when a worker's
//!   lease expired during its last attempt and another claim took the
//!   delivery: the late worker reports what its attempt decided, though
//!   the store kept the other claim's outcome (the lease is longer than an
//!   attempt can take, so this takes a clock jump or a stalled process).
//!   Deliveries that [`Sender::delete_destination`](super::Sender::delete_destination)
//!   dead-letters (an operator's own action) are not reported; one a worker
//!   holds when it finds its destination deleted is.
//!
//! # The operational webhook
//!
//! [`SenderBuilder::operational_webhook`](super::SenderBuilder::operational_webhook)
//! posts each event, signed with the `native` scheme, to an operator URL:
//!
//! ```json
//! {"type": "delivery.dead_lettered", "timestamp": "2025-01-15T10:30:00Z",
//!  "data": {"deliveryId": "dlv_..", "destinationId": "dst_..", "eventType": "kpi.alert",
//!           "attempts": 4, "lastError": "gave up after 4 attempt(s): the endpoint answered 500 .."}}
//! ```
//!
//! with `X-Webhook-Event` carrying the `type` and `X-Webhook-Id` a fresh
//! `op_..` id; verify it with [`VerifyLayer`](crate::VerifyLayer) and the
//! secret. It does not go through the delivery queue, on purpose: these
//! events report the queue's own trouble (a dead store, a backlog, a dead
//! endpoint), and an alert queued behind the trouble it reports arrives
//! late or never; nor can an operator webhook that fails become a dead
//! letter that reports itself. It is sent from a task of its own, retried
//! in memory on its own schedule, and dropped (logged, counted in
//! [`OPERATIONAL_WEBHOOKS`](super::metric_names::OPERATIONAL_WEBHOOKS))
//! when that is exhausted or the process stops: the durable record is the
//! store itself (disabled destinations, the dead letter queue). At most
//! [`MAX_OPERATIONAL_IN_FLIGHT`] are in flight; more are dropped the same way.
//!
//! [`DeliveryStore::disable_destination`]: super::DeliveryStore::disable_destination
//! [coordinates the fleet]: super::DeliveryStore::coordinates_fleet

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::metric_names;
use super::ssrf::AddressPolicy;
use super::worker::{Target, signed_request};
use crate::durable::retry::RetryPolicy;
use crate::replay::Clock;

/// Something an operator wants to hear about at once (see the
/// [module docs](self) for when each is emitted, and how often).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperationalEvent {
    /// An endpoint answered `410 Gone`: its destination was disabled.
    #[non_exhaustive]
    DestinationDisabled {
        /// The destination's id.
        id: String,
        /// Why, as stored in the destination's `disabled_reason`.
        reason: String,
    },
    /// Consecutive failures opened the destination's circuit.
    #[non_exhaustive]
    CircuitOpened {
        /// The destination's id.
        id: String,
    },
    /// A successful attempt closed the destination's circuit.
    #[non_exhaustive]
    CircuitClosed {
        /// The destination's id.
        id: String,
    },
    /// A delivery went to the dead letter queue.
    #[non_exhaustive]
    DeadLettered {
        /// The delivery's id.
        delivery_id: String,
        /// Its destination's id.
        destination_id: String,
        /// The event's type.
        event_type: String,
        /// Attempts made.
        attempts: u32,
        /// Why it gave up (the dead letter reason), at most
        /// [`MAX_ERROR_SUMMARY`] bytes.
        last_error: String,
    },
}

/// The most bytes of a dead letter reason an event carries.
pub const MAX_ERROR_SUMMARY: usize = 512;

/// The most operational webhooks in flight at once; more are dropped.
pub const MAX_OPERATIONAL_IN_FLIGHT: usize = 64;

impl OperationalEvent {
    /// The event's `type` on the wire: `destination.disabled`,
    /// `destination.circuit_opened`, `destination.circuit_closed` or
    /// `delivery.dead_lettered`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::DestinationDisabled { .. } => "destination.disabled",
            Self::CircuitOpened { .. } => "destination.circuit_opened",
            Self::CircuitClosed { .. } => "destination.circuit_closed",
            Self::DeadLettered { .. } => "delivery.dead_lettered",
        }
    }

    /// The destination the event is about.
    pub fn destination_id(&self) -> &str {
        match self {
            Self::DestinationDisabled { id, .. }
            | Self::CircuitOpened { id }
            | Self::CircuitClosed { id } => id,
            Self::DeadLettered { destination_id, .. } => destination_id,
        }
    }

    /// A dead-lettered delivery, its reason cut to [`MAX_ERROR_SUMMARY`].
    pub(crate) fn dead_lettered(delivery: &super::Delivery, attempts: u32, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_ERROR_SUMMARY);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self::DeadLettered {
            delivery_id: delivery.id.clone(),
            destination_id: delivery.destination_id.clone(),
            event_type: delivery.event_type.clone(),
            attempts,
            last_error: reason[..end].to_owned(),
        }
    }

    /// The operational webhook's JSON body, stamped `at_ms`.
    pub fn to_json(&self, at_ms: i64) -> serde_json::Value {
        let data = match self {
            Self::DestinationDisabled { id, reason } => {
                serde_json::json!({ "destinationId": id, "reason": reason })
            }
            Self::CircuitOpened { id } | Self::CircuitClosed { id } => {
                serde_json::json!({ "destinationId": id })
            }
            Self::DeadLettered {
                delivery_id,
                destination_id,
                event_type,
                attempts,
                last_error,
            } => serde_json::json!({
                "deliveryId": delivery_id,
                "destinationId": destination_id,
                "eventType": event_type,
                "attempts": attempts,
                "lastError": last_error,
            }),
        };
        let timestamp = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        serde_json::json!({ "type": self.event_type(), "timestamp": timestamp, "data": data })
    }
}

/// What [`SenderBuilder::on_operational_event`](super::SenderBuilder::on_operational_event)
/// calls.
pub(super) type OperationalHook = Arc<dyn Fn(&OperationalEvent) + Send + Sync>;

/// Where operational events go: the hook and the operator's URL.
#[derive(Default)]
pub(crate) struct Operational {
    pub(super) hook: Option<OperationalHook>,
    pub(super) webhook: Option<Arc<OperatorWebhook>>,
}

/// The operator's URL, signed for like a destination.
pub(crate) struct OperatorWebhook {
    pub(super) target: Target,
    pub(super) retry: RetryPolicy,
    pub(super) in_flight: Arc<Semaphore>,
}

/// What a post needs of the sender, owned so that it runs on its own task.
pub(crate) struct PostContext {
    pub(super) client: reqwest::Client,
    pub(super) policy: Arc<AddressPolicy>,
    pub(super) clock: Arc<dyn Clock>,
}

impl Operational {
    /// Tells the hook, then hands the event to a task that posts it to the
    /// operator's URL.
    pub(super) fn emit(&self, event: &OperationalEvent, post: impl FnOnce() -> PostContext) {
        tracing::info!(
            kind = event.event_type(),
            destination = event.destination_id(),
            "operational event"
        );
        if let Some(hook) = &self.hook {
            hook(event);
        }
        let Some(webhook) = &self.webhook else {
            return;
        };
        let Ok(permit) = Arc::clone(&webhook.in_flight).try_acquire_owned() else {
            tracing::warn!(
                kind = event.event_type(),
                "too many operational webhooks in flight; dropped"
            );
            count_webhook("dropped");
            return;
        };
        let ctx = post();
        let body = Bytes::from(event.to_json(ctx.clock.now_millis()).to_string());
        let webhook = Arc::clone(webhook);
        let kind = event.event_type();
        tokio::spawn(async move {
            let _permit = permit;
            send_with_retries(&ctx, &webhook, kind, body).await;
        });
    }
}

fn count_webhook(outcome: &'static str) {
    metrics::counter!(metric_names::OPERATIONAL_WEBHOOKS, "outcome" => outcome).increment(1);
}

/// Posts one operational webhook, retrying on the webhook's schedule.
async fn send_with_retries(ctx: &PostContext, webhook: &OperatorWebhook, kind: &str, body: Bytes) {
    let id = format!("op_{}", uuid::Uuid::now_v7().simple());
    let mut attempt = 0_u32;
    loop {
        attempt = attempt.saturating_add(1);
        let now = ctx.clock.now_millis();
        let error = match signed_request(&ctx.policy, &webhook.target, &id, kind, &body, now) {
            Err((_, msg)) => msg,
            Ok(request) => match ctx.client.execute(request).await {
                Ok(r) if r.status().is_success() => {
                    count_webhook("sent");
                    return;
                }
                Ok(r) => format!("the operator URL answered {}", r.status()),
                Err(e) => e.without_url().to_string(),
            },
        };
        let Some(wait) = webhook.retry.delay_after(attempt, None) else {
            tracing::warn!(kind, attempt, error, "operational webhook failed; dropped");
            count_webhook("failed");
            return;
        };
        tracing::debug!(kind, attempt, error, "operational webhook failed; retrying");
        tokio::time::sleep(wait.min(Duration::from_secs(3600))).await;
    }
}
