//! An [`InboxStore`] in memory, for tests: lost when the process ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    InboxEntry, InboxQuery, InboxStatus, InboxStore, InboxStoreError, Insert, NewInboxEvent,
    ReplaySelection, Settle,
};

/// Inbox events in memory. Cheap to clone (shared state). For tests: use
/// [`SqliteInboxStore`](super::SqliteInboxStore) for anything that must
/// survive a restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryInboxStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    next_seq: i64,
    events: HashMap<String, InboxEntry>,
}

impl MemoryInboxStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, InboxStoreError> {
        self.state
            .lock()
            .map_err(|_| InboxStoreError::new("the memory store's lock is poisoned"))
    }
}

impl InboxStore for MemoryInboxStore {
    async fn insert(&self, event: &NewInboxEvent) -> Result<Insert, InboxStoreError> {
        let mut state = self.lock()?;
        if state.events.contains_key(&event.id) {
            return Ok(Insert::Duplicate);
        }
        state.next_seq += 1;
        let entry = event.pending(state.next_seq);
        state.events.insert(event.id.clone(), entry);
        Ok(Insert::Stored)
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<InboxEntry>, InboxStoreError> {
        let mut state = self.lock()?;
        let mut due: Vec<&mut InboxEntry> = state
            .events
            .values_mut()
            .filter(|e| {
                e.status == InboxStatus::Pending
                    && e.next_attempt_at_ms.is_some_and(|at| at <= now_ms)
                    && e.lease_until_ms.is_none_or(|l| l <= now_ms)
            })
            .collect();
        due.sort_by_key(|e| (e.next_attempt_at_ms, e.seq));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|e| {
                e.lease_until_ms = Some(lease_until_ms);
                e.attempts = e.attempts.saturating_add(1);
                e.clone()
            })
            .collect())
    }

    async fn settle(
        &self,
        id: &str,
        lease_until_ms: i64,
        settle: &Settle,
        now_ms: i64,
    ) -> Result<bool, InboxStoreError> {
        let mut state = self.lock()?;
        let Some(e) = state.events.get_mut(id) else {
            return Ok(false);
        };
        if e.status != InboxStatus::Pending || e.lease_until_ms != Some(lease_until_ms) {
            return Ok(false);
        }
        let (status, next, error) = settle.state();
        e.status = status;
        e.next_attempt_at_ms = next;
        e.lease_until_ms = None;
        e.last_error = error.map(str::to_owned);
        if status != InboxStatus::Pending {
            e.finished_at_ms = Some(now_ms);
        }
        Ok(true)
    }

    async fn replay(
        &self,
        selection: &ReplaySelection,
        now_ms: i64,
    ) -> Result<u64, InboxStoreError> {
        let mut state = self.lock()?;
        let mut n = 0;
        for e in state.events.values_mut().filter(|e| selection.takes(e)) {
            e.status = InboxStatus::Pending;
            e.attempts = 0;
            e.next_attempt_at_ms = Some(now_ms);
            e.lease_until_ms = None;
            e.finished_at_ms = None;
            n += 1;
        }
        Ok(n)
    }

    async fn unprocessed(&self) -> Result<u64, InboxStoreError> {
        let state = self.lock()?;
        let n = state
            .events
            .values()
            .filter(|e| e.status == InboxStatus::Pending)
            .count();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn event(&self, id: &str) -> Result<Option<InboxEntry>, InboxStoreError> {
        Ok(self.lock()?.events.get(id).cloned())
    }

    async fn events(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, InboxStoreError> {
        let state = self.lock()?;
        let mut out: Vec<InboxEntry> = state
            .events
            .values()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.seq));
        out.truncate(query.limit);
        Ok(out)
    }
}
