//! Delivery history, the dead letter queue, resend and replay, with their
//! result types.

use std::fmt;

use serde::Serialize;

use super::Sender;
use super::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, MAX_PAGE_SIZE, Page,
};
use super::error::SenderError;
use super::store::{DeliveryStore, NewDelivery};

/// One delivery with every attempt made for it, as
/// [`Sender::delivery_history`] returns it and the operator console's
/// `GET /api/deliveries/{id}` answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeliveryHistory {
    /// The delivery: one event to one destination, with its current state.
    pub delivery: Delivery,
    /// Its attempts, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// What [`Sender::replay_dead_letters`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReplaySummary {
    /// The new deliveries, one per replayed dead letter.
    pub replayed: Vec<Delivery>,
    /// Dead letters left as they were, with the reason.
    pub skipped: Vec<SkippedReplay>,
}

/// A dead letter that [`Sender::replay_dead_letters`] did not replay.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SkippedReplay {
    /// The dead-lettered delivery.
    pub delivery_id: String,
    /// Why it was skipped; serialized as its text.
    #[serde(serialize_with = "serialize_display")]
    pub reason: ReplaySkipReason,
}

/// Why [`Sender::replay_dead_letters`] left a dead letter as it was. Its
/// text ([`Display`](fmt::Display)) is that of the [`SenderError`] that
/// replaying it alone would have returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplaySkipReason {
    /// The delivery's destination was deleted.
    DestinationNotFound {
        /// The deleted destination's id.
        destination_id: String,
    },
    /// The delivery was no longer dead-lettered (another call replayed it
    /// first).
    WrongState {
        /// The delivery's id.
        delivery_id: String,
        /// Its status when the replay was tried.
        status: DeliveryStatus,
        /// What replaying it needed.
        reason: &'static str,
    },
    /// The delivery no longer exists.
    DeliveryNotFound {
        /// The delivery's id.
        delivery_id: String,
    },
}

impl ReplaySkipReason {
    /// The reason for a dead letter that replaying refused with `error`, or
    /// `error` back when it is not one to skip over (a store failure).
    fn from_error(error: SenderError) -> Result<Self, SenderError> {
        Ok(match error {
            SenderError::DestinationNotFound { id } => {
                Self::DestinationNotFound { destination_id: id }
            }
            SenderError::WrongState { id, status, reason } => Self::WrongState {
                delivery_id: id,
                status,
                reason,
            },
            SenderError::DeliveryNotFound { id } => Self::DeliveryNotFound { delivery_id: id },
            other => return Err(other),
        })
    }

    /// The error replaying this dead letter alone returns.
    fn as_error(&self) -> SenderError {
        match self {
            Self::DestinationNotFound { destination_id } => SenderError::DestinationNotFound {
                id: destination_id.clone(),
            },
            Self::WrongState {
                delivery_id,
                status,
                reason,
            } => SenderError::WrongState {
                id: delivery_id.clone(),
                status: *status,
                reason,
            },
            Self::DeliveryNotFound { delivery_id } => SenderError::DeliveryNotFound {
                id: delivery_id.clone(),
            },
        }
    }
}

impl fmt::Display for ReplaySkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_error().fmt(f)
    }
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl<S: DeliveryStore> Sender<S> {
    /// The delivery with this id.
    async fn stored_delivery(&self, id: &str) -> Result<Delivery, SenderError> {
        self.inner
            .store
            .delivery(id)
            .await?
            .ok_or_else(|| SenderError::DeliveryNotFound { id: id.to_owned() })
    }

    /// Delivery history, newest first, filtered and paged.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<Page<Delivery>, SenderError> {
        Ok(self.inner.store.deliveries(query).await?)
    }

    /// One delivery with all its attempts.
    ///
    /// # Errors
    ///
    /// [`SenderError::DeliveryNotFound`], or a store failure.
    pub async fn delivery_history(&self, id: &str) -> Result<DeliveryHistory, SenderError> {
        let delivery = self.stored_delivery(id).await?;
        let attempts = self.inner.store.attempts(id).await?;
        Ok(DeliveryHistory { delivery, attempts })
    }

    /// The dead letter queue (each with its `last_error`), newest first;
    /// `query`'s status is ignored.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn dead_letters(&self, query: &DeliveryQuery) -> Result<Page<Delivery>, SenderError> {
        let query = query.clone().status(DeliveryStatus::DeadLettered);
        Ok(self.inner.store.deliveries(&query).await?)
    }

    /// Sends a finished delivery again as a new delivery (same event id and
    /// body, fresh retry budget). The original and its attempts stay; a
    /// dead-lettered original becomes [`DeliveryStatus::Replayed`].
    ///
    /// # Errors
    ///
    /// [`SenderError::DeliveryNotFound`]; [`SenderError::WrongState`] for a
    /// delivery still pending or already replayed;
    /// [`SenderError::DestinationNotFound`] when its destination was deleted.
    pub async fn resend(&self, delivery_id: &str) -> Result<Delivery, SenderError> {
        let original = self.stored_delivery(delivery_id).await?;
        let wrong = |reason| SenderError::WrongState {
            id: original.id.clone(),
            status: original.status,
            reason,
        };
        match original.status {
            DeliveryStatus::Pending => {
                return Err(wrong("it is still being delivered; wait for it to finish"));
            }
            DeliveryStatus::Replayed => {
                return Err(wrong("it was already replayed; resend the replay instead"));
            }
            _ => {}
        }
        self.destination(&original.destination_id).await?;
        let mut new = NewDelivery::new(&original.event_id, &original.destination_id, self.now());
        new.replay_of = Some(original.id.clone());
        let created = self
            .inner
            .store
            .replay(&original.id, &new)
            .await?
            .ok_or_else(|| wrong("it was already replayed; resend the replay instead"))?;
        self.inner.wake.notify_one();
        Ok(created)
    }

    /// Replays one dead letter as a new delivery.
    ///
    /// # Errors
    ///
    /// As [`resend`](Self::resend), and [`SenderError::WrongState`] when the
    /// delivery is not dead-lettered.
    pub async fn replay_dead_letter(&self, delivery_id: &str) -> Result<Delivery, SenderError> {
        let d = self.stored_delivery(delivery_id).await?;
        if d.status != DeliveryStatus::DeadLettered {
            return Err(SenderError::WrongState {
                id: d.id,
                status: d.status,
                reason: "only dead-lettered deliveries can be replayed",
            });
        }
        self.resend(delivery_id).await
    }

    /// Replays every dead letter that entered the queue in
    /// `[since_ms, until_ms)` (unix ms; `None` for no bound).
    ///
    /// # Errors
    ///
    /// A store failure. Dead letters that cannot be replayed (destination
    /// deleted) are listed in [`ReplaySummary::skipped`].
    pub async fn replay_dead_letters(
        &self,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<ReplaySummary, SenderError> {
        let mut targets = Vec::new();
        let mut query = DeliveryQuery::new()
            .status(DeliveryStatus::DeadLettered)
            .limit(MAX_PAGE_SIZE);
        loop {
            let page = self.inner.store.deliveries(&query).await?;
            targets.extend(
                page.items
                    .iter()
                    .filter(|d| {
                        let at = d.dead_lettered_at_ms.unwrap_or(d.updated_at_ms);
                        since_ms.is_none_or(|s| at >= s) && until_ms.is_none_or(|u| at < u)
                    })
                    .map(|d| d.id.clone()),
            );
            if page.next_cursor.is_none() {
                break;
            }
            query = query.after_page(&page);
        }
        let mut summary = ReplaySummary::default();
        // Oldest first, so the receiver sees them in their original order.
        for id in targets.into_iter().rev() {
            match self.resend(&id).await {
                Ok(d) => summary.replayed.push(d),
                Err(e) => summary.skipped.push(SkippedReplay {
                    delivery_id: id,
                    reason: ReplaySkipReason::from_error(e)?,
                }),
            }
        }
        Ok(summary)
    }
}
