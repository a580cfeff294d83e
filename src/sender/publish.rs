//! Publishing: an event becomes one stored delivery per matching
//! destination before `publish` returns.

use super::delivery::{Delivery, OutgoingEvent};
use super::error::{DeliveryStoreError, SenderError};
use super::state::Handoff;
use super::store::{DeliveryStore, NewDelivery};
use super::{Sender, metric_names};

/// The event type of [`Sender::send_test_event`].
pub const TEST_EVENT_TYPE: &str = "webhook.test";

impl<S: DeliveryStore> Sender<S> {
    /// Stores the event and one delivery per enabled destination whose
    /// filter matches, then wakes the workers. The event is in the store
    /// when this returns.
    ///
    /// # Errors
    ///
    /// [`SenderError::DuplicateEvent`] when the id was published before, or a
    /// store failure.
    pub async fn publish(
        &self,
        event: impl Into<OutgoingEvent>,
    ) -> Result<Vec<Delivery>, SenderError> {
        let event = event.into().in_current_trace();
        let now = self.now();
        let mut news = self.matching_deliveries(&event, now).await?;
        // With workers running here and room in their queue (at most one
        // round of `max_in_flight` waiting for a slot), lease the deliveries
        // in the same transaction and hand them over: no claim needed.
        // Should they sit past the lease, a claim picks them up again. A
        // store that limits concurrency fleet-wide gets no hand-over: it
        // would bypass the limit; the store's wake-up starts a claim.
        let fleet = self.inner.store.coordinates_fleet();
        let direct = self
            .inner
            .direct
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|tx| !fleet && !tx.is_closed())
            .and_then(|tx| Handoff::reserve(&self.inner, news.len()).map(|room| (tx, room)));
        if direct.is_some() {
            let lease = now.saturating_add(self.inner.config.lease_ms);
            for n in &mut news {
                n.lease_until_ms = Some(lease);
            }
        }
        // Should this future be dropped or the enqueue fail, the reserved
        // room is given back when `direct` is dropped.
        let started = std::time::Instant::now();
        let out = self.inner.store.enqueue(&event, now, &news).await?;
        metrics::histogram!(metric_names::PUBLISH_SECONDS).record(started.elapsed().as_secs_f64());
        match direct {
            Some((tx, mut room)) => {
                for d in &out {
                    // A failed send means the workers stopped: the lease
                    // expires and a claim (here or after a restart) takes it.
                    if tx.send(d.clone()).is_ok() {
                        room.hand_over_one();
                    }
                }
            }
            None if !out.is_empty() => self.inner.wake.notify_one(),
            None => {}
        }
        Ok(out)
    }

    /// Sends a `webhook.test` event to one destination, whatever its filter.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`];
    /// [`SenderError::DestinationDisabled`] for a disabled destination; a
    /// store failure.
    pub async fn send_test_event(&self, destination_id: &str) -> Result<Delivery, SenderError> {
        let d = self.destination(destination_id).await?;
        if !d.enabled {
            return Err(SenderError::DestinationDisabled { id: d.id });
        }
        let now = self.now();
        let timestamp = time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1000))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let event = OutgoingEvent::new(
            TEST_EVENT_TYPE,
            &serde_json::json!({
                "event": TEST_EVENT_TYPE,
                "timestamp": timestamp,
                "data": { "destinationId": destination_id },
            }),
        )?;
        let news = [NewDelivery::new(event.id(), destination_id, now)];
        let mut out = self.inner.store.enqueue(&event, now, &news).await?;
        self.inner.wake.notify_one();
        out.pop().ok_or_else(|| {
            SenderError::Store(DeliveryStoreError::new("the store returned no delivery"))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    #[cfg(feature = "sqlite")]
    use crate::sender::{AddressPolicy, NewDestination, SqliteStore};

    /// Room reserved in the hand-over queue comes back whatever happens to
    /// the publish: handed over and taken by a worker, refused by the store
    /// (a duplicate event id), or dropped before the store answered.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn hand_over_room_is_never_leaked() {
        // SQLite answers on another thread, so a publish can be dropped
        // while it waits for the store; a second connection holding the
        // write lock makes sure it is still waiting.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let sender = Sender::builder(SqliteStore::open(&path).unwrap())
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .build()
            .unwrap();
        sender
            .add_destination(NewDestination::new(
                "http://127.0.0.1:9/",
                "s-0123456789abcdef0123456789",
            ))
            .await
            .unwrap();
        let _workers = sender.start();
        let handed = || sender.inner.handed.load(Ordering::Acquire);

        let event = OutgoingEvent::new("kpi.alert", &1).unwrap();
        sender.publish(event.clone()).await.unwrap();
        assert!(matches!(
            sender.publish(event).await,
            Err(SenderError::DuplicateEvent { .. })
        ));
        // A publish dropped while it waits for the store.
        let lock = rusqlite::Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut pending = Box::pin(sender.publish(OutgoingEvent::new("kpi.alert", &2).unwrap()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        assert!(handed() > 0, "the publish reserved room before waiting");
        drop(pending);
        lock.execute_batch("ROLLBACK").unwrap();
        let start = std::time::Instant::now();
        while handed() != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{} still reserved",
                handed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
