//! An in-memory [`DeliveryStore`]: for tests and throwaway senders. Nothing
//! survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    CircuitChange, DeliveryStore, EventContent, NewDelivery, NextStep, QueueStats, not_stored,
    page_of,
};
use crate::sender::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, OutgoingEvent, Page,
};
use crate::sender::destination::Destination;
use crate::sender::error::{DeliveryStoreError, SenderError};
use crate::sender::health::{DestinationHealth, HealthParts, HealthWindow, LastError, QueueHealth};

#[derive(Default)]
struct State {
    destinations: Vec<Destination>,
    events: HashMap<String, EventContent>,
    deliveries: BTreeMap<i64, Delivery>,
    seq_of: HashMap<String, i64>,
    attempts: HashMap<String, Vec<DeliveryAttempt>>,
    next_seq: i64,
}

impl State {
    fn insert(&mut self, new: &NewDelivery) -> Result<Delivery, DeliveryStoreError> {
        let event = self.events.get(&new.event_id).ok_or_else(|| {
            DeliveryStoreError::new(format!("event `{}` is not stored", new.event_id))
        })?;
        let d = new.pending(self.next_seq + 1, event);
        self.next_seq += 1;
        self.seq_of.insert(d.id.clone(), d.seq);
        self.deliveries.insert(d.seq, d.clone());
        Ok(d)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Delivery> {
        let seq = *self.seq_of.get(id)?;
        self.deliveries.get_mut(&seq)
    }
}

/// Keeps everything in memory behind one mutex. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a worker holding `lease_until_ms` may move `d` on: it is still
/// pending under that very lease (the fencing rule of the store trait).
fn held_under(d: &Delivery, lease_until_ms: i64) -> bool {
    d.status == DeliveryStatus::Pending && d.lease_until_ms == Some(lease_until_ms)
}

fn dead_letter_in_place(d: &mut Delivery, now_ms: i64, reason: &str) {
    d.status = DeliveryStatus::DeadLettered;
    d.next_attempt_at_ms = None;
    d.lease_until_ms = None;
    d.dead_lettered_at_ms = Some(now_ms);
    d.updated_at_ms = now_ms;
    d.last_error = Some(reason.to_owned());
}

impl DeliveryStore for MemoryStore {
    async fn save_destination(&self, destination: &Destination) -> Result<(), DeliveryStoreError> {
        let mut s = self.lock();
        match s.destinations.iter_mut().find(|d| d.id == destination.id) {
            Some(d) => *d = destination.clone(),
            None => s.destinations.push(destination.clone()),
        }
        Ok(())
    }

    async fn destination(&self, id: &str) -> Result<Option<Destination>, DeliveryStoreError> {
        Ok(self
            .lock()
            .destinations
            .iter()
            .find(|d| d.id == id)
            .cloned())
    }

    async fn destinations(&self) -> Result<Vec<Destination>, DeliveryStoreError> {
        Ok(self.lock().destinations.clone())
    }

    async fn delete_destination(
        &self,
        id: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<bool, DeliveryStoreError> {
        let mut s = self.lock();
        let before = s.destinations.len();
        s.destinations.retain(|d| d.id != id);
        let existed = s.destinations.len() != before;
        for d in s.deliveries.values_mut() {
            if d.destination_id == id && d.status == DeliveryStatus::Pending {
                dead_letter_in_place(d, now_ms, reason);
            }
        }
        Ok(existed)
    }

    async fn enqueue(
        &self,
        event: &OutgoingEvent,
        _created_at_ms: i64,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<Delivery>, SenderError> {
        let mut s = self.lock();
        if s.events.contains_key(event.id()) {
            return Err(SenderError::DuplicateEvent {
                id: event.id().to_owned(),
            });
        }
        s.events
            .insert(event.id().to_owned(), EventContent::of(event));
        let mut out = Vec::with_capacity(deliveries.len());
        for new in deliveries {
            out.push(s.insert(new)?);
        }
        Ok(out)
    }

    async fn replay(
        &self,
        original: &str,
        new: &NewDelivery,
    ) -> Result<Option<Delivery>, DeliveryStoreError> {
        let mut s = self.lock();
        let status = s
            .get_mut(original)
            .map(|d| d.status)
            .ok_or_else(|| not_stored(original))?;
        if status == DeliveryStatus::Replayed {
            return Ok(None);
        }
        let created = s.insert(new)?;
        if status == DeliveryStatus::DeadLettered {
            if let Some(d) = s.get_mut(original) {
                d.status = DeliveryStatus::Replayed;
                d.replayed_as = Some(created.id.clone());
                d.updated_at_ms = new.created_at_ms;
            }
        }
        Ok(Some(created))
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        lease_until_ms: i64,
    ) -> Result<Vec<Delivery>, DeliveryStoreError> {
        let mut s = self.lock();
        let enabled: std::collections::HashSet<String> = s
            .destinations
            .iter()
            .filter(|d| d.enabled)
            .map(|d| d.id.clone())
            .collect();
        let mut due: Vec<(i64, i64)> = s
            .deliveries
            .values()
            .filter(|d| {
                d.status == DeliveryStatus::Pending
                    && d.next_attempt_at_ms.is_some_and(|t| t <= now_ms)
                    && d.lease_until_ms.is_none_or(|t| t <= now_ms)
                    && enabled.contains(&d.destination_id)
            })
            .map(|d| (d.next_attempt_at_ms.unwrap_or(now_ms), d.seq))
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, seq) in due {
            if let Some(d) = s.deliveries.get_mut(&seq) {
                d.lease_until_ms = Some(lease_until_ms);
                out.push(d.clone());
            }
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        lease_until_ms: i64,
        next: &NextStep,
    ) -> Result<Option<CircuitChange>, DeliveryStoreError> {
        let mut s = self.lock();
        s.attempts
            .entry(attempt.delivery_id.clone())
            .or_default()
            .push(attempt.clone());
        let d = s
            .get_mut(&attempt.delivery_id)
            .ok_or_else(|| not_stored(&attempt.delivery_id))?;
        if !held_under(d, lease_until_ms) {
            // A worker whose lease expired finished late: keep its attempt in
            // the history, but the delivery has moved on without it.
            return Ok(None);
        }
        let outcome = next.outcome(attempt);
        d.attempts = d.attempts.max(attempt.attempt);
        d.lease_until_ms = None;
        d.updated_at_ms = outcome.at_ms;
        d.status = outcome.status;
        d.next_attempt_at_ms = outcome.next_attempt_at_ms;
        d.delivered_at_ms = outcome.delivered_at_ms.or(d.delivered_at_ms);
        d.dead_lettered_at_ms = outcome.dead_lettered_at_ms.or(d.dead_lettered_at_ms);
        d.last_error = outcome.last_error;
        Ok(None)
    }

    async fn disable_destination(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<bool, DeliveryStoreError> {
        let mut s = self.lock();
        let Some(d) = s.destinations.iter_mut().find(|d| d.id == id && d.enabled) else {
            return Ok(false);
        };
        d.enabled = false;
        d.disabled_reason = Some(reason.to_owned());
        Ok(true)
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, DeliveryStoreError> {
        let s = self.lock();
        let enabled = |id: &str| s.destinations.iter().any(|t| t.id == id && t.enabled);
        let pending = s
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending);
        let (mut count, mut oldest) = (0_u64, None::<i64>);
        for d in pending {
            count += 1;
            let claimable = d.lease_until_ms.is_none_or(|t| t <= now_ms);
            if let Some(due) = d.next_attempt_at_ms.filter(|_| claimable) {
                if enabled(&d.destination_id) && oldest.is_none_or(|o| due < o) {
                    oldest = Some(due);
                }
            }
        }
        Ok(QueueStats::new(count, oldest))
    }

    async fn reschedule(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        at_ms: i64,
    ) -> Result<(), DeliveryStoreError> {
        if let Some(d) = self.lock().get_mut(delivery_id) {
            if held_under(d, lease_until_ms) {
                d.lease_until_ms = None;
                d.next_attempt_at_ms = Some(at_ms);
            }
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        delivery_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<(), DeliveryStoreError> {
        if let Some(d) = self.lock().get_mut(delivery_id) {
            if held_under(d, lease_until_ms) {
                dead_letter_in_place(d, now_ms, reason);
            }
        }
        Ok(())
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, DeliveryStoreError> {
        Ok(self.lock().get_mut(id).map(|d| d.clone()))
    }

    async fn deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Page<Delivery>, DeliveryStoreError> {
        let s = self.lock();
        let size = query.page_size();
        let items: Vec<Delivery> = s
            .deliveries
            .values()
            .rev()
            .filter(|d| query.matches(d))
            .take(size + 1)
            .cloned()
            .collect();
        Ok(page_of(items, size))
    }

    async fn attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, DeliveryStoreError> {
        Ok(self
            .lock()
            .attempts
            .get(delivery_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn destination_health(
        &self,
        now_ms: i64,
    ) -> Result<Vec<DestinationHealth>, DeliveryStoreError> {
        let s = self.lock();
        let window = HealthWindow::at(now_ms);
        let mut parts: HashMap<&str, HealthParts> = s
            .destinations
            .iter()
            .map(|d| (d.id.as_str(), HealthParts::default()))
            .collect();
        for d in s.deliveries.values() {
            let Some(p) = parts.get_mut(d.destination_id.as_str()) else {
                continue;
            };
            count_queue(&mut p.queue, d, now_ms);
            for a in s.attempts.get(&d.id).into_iter().flatten() {
                count_attempt(p, a, window);
            }
        }
        Ok(s.destinations
            .iter()
            .map(|d| {
                let p = parts.remove(d.id.as_str()).unwrap_or_default();
                p.finish(d.id.clone(), window)
            })
            .collect())
    }
}

/// Counts `d` in its destination's queue when it is pending.
fn count_queue(q: &mut QueueHealth, d: &Delivery, now_ms: i64) {
    if d.status != DeliveryStatus::Pending {
        return;
    }
    q.pending += 1;
    if let Some(at) = d.next_attempt_at_ms.filter(|&at| at <= now_ms) {
        q.due += 1;
        q.oldest_due_at_ms = Some(q.oldest_due_at_ms.map_or(at, |o| o.min(at)));
    }
}

/// Counts an attempt in the window and keeps it when it is the latest error.
fn count_attempt(p: &mut HealthParts, a: &DeliveryAttempt, window: HealthWindow) {
    p.count_attempt(a, window);
    if let Some(e) = LastError::of(a) {
        if p.last_error.as_ref().is_none_or(|l| e.at_ms >= l.at_ms) {
            p.last_error = Some(e);
        }
    }
}
