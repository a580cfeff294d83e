//! Where an event stands at a moment, finer than its stored
//! [`InboxStatus`], and how many events stand where.

use super::{InboxEntry, InboxStatus};

/// Where an event stands at a moment: its stored [`InboxStatus`], with
/// `pending` split by what the workers are doing with it. An operator's
/// view (the console's inbox counts and filters); the store keeps the
/// status only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InboxState {
    /// Pending and not attempted yet (or replayed, which counts attempts
    /// from one again); no worker holds it.
    Received,
    /// Pending and held by a worker's live lease.
    Processing,
    /// Pending after a failed attempt (or one whose worker died), waiting
    /// for the next one; [`InboxEntry::last_error`] says what went wrong.
    Retrying,
    /// The handler succeeded (or a stale event was skipped).
    Done,
    /// In the dead letter queue.
    DeadLettered,
}

impl InboxState {
    /// Every state, in the order of an event's life.
    pub const ALL: [Self; 5] = [
        Self::Received,
        Self::Processing,
        Self::Retrying,
        Self::Done,
        Self::DeadLettered,
    ];

    /// The stored status this state is a part of.
    pub const fn status(self) -> InboxStatus {
        match self {
            Self::Received | Self::Processing | Self::Retrying => InboxStatus::Pending,
            Self::Done => InboxStatus::Done,
            Self::DeadLettered => InboxStatus::DeadLettered,
        }
    }

    /// The state's name on the wire (`received`, `processing`, `retrying`,
    /// `done`, `dead_lettered`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Processing => "processing",
            Self::Retrying => "retrying",
            Self::Done => "done",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

impl std::fmt::Display for InboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl InboxEntry {
    /// Where this event stands at `now_ms` (unix ms): a lease that has
    /// expired by then no longer counts as processing.
    pub fn state_at(&self, now_ms: i64) -> InboxState {
        match self.status {
            InboxStatus::Done => InboxState::Done,
            InboxStatus::DeadLettered => InboxState::DeadLettered,
            InboxStatus::Pending if self.lease_until_ms.is_some_and(|l| l > now_ms) => {
                InboxState::Processing
            }
            InboxStatus::Pending if self.attempts > 0 => InboxState::Retrying,
            InboxStatus::Pending => InboxState::Received,
        }
    }
}

/// How many events are in each [`InboxState`], as
/// [`InboxStore::counts`](super::InboxStore::counts) reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InboxCounts {
    /// [`InboxState::Received`].
    pub received: u64,
    /// [`InboxState::Processing`].
    pub processing: u64,
    /// [`InboxState::Retrying`].
    pub retrying: u64,
    /// [`InboxState::Done`].
    pub done: u64,
    /// [`InboxState::DeadLettered`].
    pub dead_lettered: u64,
}

impl InboxCounts {
    /// Counts one more event in `state`.
    pub fn add(&mut self, state: InboxState) {
        let slot = match state {
            InboxState::Received => &mut self.received,
            InboxState::Processing => &mut self.processing,
            InboxState::Retrying => &mut self.retrying,
            InboxState::Done => &mut self.done,
            InboxState::DeadLettered => &mut self.dead_lettered,
        };
        *slot = slot.saturating_add(1);
    }

    /// The count of `state`.
    pub const fn of(&self, state: InboxState) -> u64 {
        match state {
            InboxState::Received => self.received,
            InboxState::Processing => self.processing,
            InboxState::Retrying => self.retrying,
            InboxState::Done => self.done,
            InboxState::DeadLettered => self.dead_lettered,
        }
    }

    /// Every event counted.
    pub const fn total(&self) -> u64 {
        self.received
            .saturating_add(self.processing)
            .saturating_add(self.retrying)
            .saturating_add(self.done)
            .saturating_add(self.dead_lettered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::store::NewInboxEvent;

    #[test]
    fn pending_splits_by_lease_and_attempts() {
        let mut e = NewInboxEvent::new("evt", "{}", 0).pending(1);
        assert_eq!(e.state_at(10), InboxState::Received);
        e.attempts = 1;
        e.lease_until_ms = Some(20);
        assert_eq!(e.state_at(10), InboxState::Processing);
        // The lease expired: the worker died; it waits for another attempt.
        assert_eq!(e.state_at(20), InboxState::Retrying);
        e.lease_until_ms = None;
        assert_eq!(e.state_at(10), InboxState::Retrying);
        e.status = InboxStatus::DeadLettered;
        assert_eq!(e.state_at(10), InboxState::DeadLettered);
        let mut counts = InboxCounts::default();
        for s in InboxState::ALL {
            counts.add(s);
            assert_eq!(counts.of(s), 1);
        }
        assert_eq!(counts.total(), 5);
    }
}
