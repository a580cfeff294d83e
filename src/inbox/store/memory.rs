//! An [`InboxStore`] in memory, for tests: lost when the process ends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    InboxDepth, InboxEntry, InboxQuery, InboxStatus, InboxStore, InboxStoreError, Insert,
    NewInboxEvent, ReplaySelection, Settle,
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
        let heads = key_heads(&state.events, now_ms);
        let newest_done = newest_done(&state.events);
        let mut due: Vec<&mut InboxEntry> = state
            .events
            .values_mut()
            .filter(|e| {
                e.status == InboxStatus::Pending
                    && e.next_attempt_at_ms.is_some_and(|at| at <= now_ms)
                    && e.lease_until_ms.is_none_or(|l| l <= now_ms)
                    && e.ordering_key
                        .as_ref()
                        .is_none_or(|k| heads.get(k.as_str()) == Some(&Some(e.seq)))
            })
            .collect();
        due.sort_by_key(|e| (e.next_attempt_at_ms, e.seq));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|e| {
                e.lease_until_ms = Some(lease_until_ms);
                e.attempts = e.attempts.saturating_add(1);
                let mut claimed = e.clone();
                claimed.stale = is_stale(&claimed, &newest_done);
                claimed
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
        let out = settle.outcome(now_ms);
        e.status = out.status;
        e.next_attempt_at_ms = out.next_attempt_at_ms;
        e.lease_until_ms = None;
        e.last_error = out.last_error.map(str::to_owned);
        e.finished_at_ms = out.finished_at_ms;
        Ok(true)
    }

    async fn renew_lease(
        &self,
        id: &str,
        lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, InboxStoreError> {
        let mut state = self.lock()?;
        match state.events.get_mut(id) {
            Some(e)
                if e.status == InboxStatus::Pending && e.lease_until_ms == Some(lease_until_ms) =>
            {
                e.lease_until_ms = Some(new_lease_until_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
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

    async fn depth(&self) -> Result<InboxDepth, InboxStoreError> {
        let state = self.lock()?;
        let pending = state
            .events
            .values()
            .filter(|e| e.status == InboxStatus::Pending);
        let (n, oldest) = pending.fold((0u64, None::<i64>), |(n, oldest), e| {
            let at = oldest.map_or(e.received_at_ms, |o| o.min(e.received_at_ms));
            (n + 1, Some(at))
        });
        Ok(InboxDepth::new(n, oldest))
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

/// Per ordering key of the pending events, the `seq` of the one that may be
/// claimed: the earliest in `(signed_at, seq)` order, or `None` while one of
/// the key is in flight (holds a live lease).
fn key_heads(events: &HashMap<String, InboxEntry>, now_ms: i64) -> HashMap<String, Option<i64>> {
    let mut first: HashMap<&str, (Option<i64>, i64)> = HashMap::new();
    let mut busy: HashSet<&str> = HashSet::new();
    for e in events.values().filter(|e| e.status == InboxStatus::Pending) {
        let Some(key) = e.ordering_key.as_deref() else {
            continue;
        };
        if e.lease_until_ms.is_some_and(|l| l > now_ms) {
            busy.insert(key);
        }
        let order = (e.signed_at, e.seq);
        first
            .entry(key)
            .and_modify(|f| *f = (*f).min(order))
            .or_insert(order);
    }
    first
        .into_iter()
        .map(|(key, (_, seq))| (key.to_owned(), (!busy.contains(key)).then_some(seq)))
        .collect()
}

/// Per ordering key, the latest `signed_at` of its `done` events.
fn newest_done(events: &HashMap<String, InboxEntry>) -> HashMap<String, i64> {
    let mut newest: HashMap<String, i64> = HashMap::new();
    for e in events.values().filter(|e| e.status == InboxStatus::Done) {
        if let (Some(key), Some(at)) = (&e.ordering_key, e.signed_at) {
            let slot = newest.entry(key.clone()).or_insert(at);
            *slot = (*slot).max(at);
        }
    }
    newest
}

/// Whether a `done` event of `e`'s key is signed later than `e`.
fn is_stale(e: &InboxEntry, newest_done: &HashMap<String, i64>) -> bool {
    match (&e.ordering_key, e.signed_at) {
        (Some(key), Some(at)) => newest_done.get(key).is_some_and(|&done| done > at),
        _ => false,
    }
}
