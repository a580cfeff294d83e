//! Destination administration: register, read, enable and disable, change
//! the event filter, rotate the secret, delete.

use std::time::Duration;

use super::Sender;
use super::destination::{self, Destination, EventFilter, NewDestination};
use super::error::SenderError;
use super::ssrf;
use super::store::DeliveryStore;
use crate::secret::Secret;

impl<S: DeliveryStore> Sender<S> {
    /// Registers a destination.
    ///
    /// # Errors
    ///
    /// [`SenderError::InvalidDestination`] for a URL that is not http(s) or
    /// carries credentials, an empty secret or a bad id;
    /// [`SenderError::ForbiddenAddress`] when the host resolves to no address
    /// the SSRF guard allows (only refused ones, or none at all: the error
    /// does not say which, the log does).
    /// [`ConfigError::InvalidSecret`](crate::error::ConfigError::InvalidSecret) for a secret the scheme cannot read
    /// ([`Scheme::read_secret`](crate::Scheme::read_secret)) or one under
    /// [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes.
    pub async fn add_destination(&self, new: NewDestination) -> Result<Destination, SenderError> {
        ssrf::check_url(&self.inner.policy, &new.url).await?;
        let secrets = new
            .secrets
            .into_iter()
            .map(|s| destination::signing_key(&new.scheme, s))
            .collect::<Result<Vec<_>, _>>()?;
        let id = match new.id {
            Some(id) => {
                crate::scheme::validate_id(id.as_bytes()).map_err(|reason| {
                    SenderError::InvalidDestination {
                        reason: format!("invalid destination id: {reason}"),
                    }
                })?;
                id
            }
            None => format!("dst_{}", uuid::Uuid::now_v7().simple()),
        };
        let destination = Destination {
            id,
            url: new.url,
            scheme: new.scheme.name(),
            events: new.events,
            enabled: true,
            disabled_reason: None,
            created_at_ms: self.now(),
            secrets,
        };
        self.inner.store.save_destination(&destination).await?;
        self.inner.forget_destinations();
        Ok(destination)
    }

    /// The destination with this id.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn destination(&self, id: &str) -> Result<Destination, SenderError> {
        self.inner
            .store
            .destination(id)
            .await?
            .ok_or_else(|| SenderError::DestinationNotFound { id: id.to_owned() })
    }

    /// Every destination.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn destinations(&self) -> Result<Vec<Destination>, SenderError> {
        Ok(self.inner.store.destinations().await?)
    }

    /// Whether deliveries to this destination are paused by the circuit
    /// breaker right now: in this process, or, for a store that
    /// [coordinates the fleet](DeliveryStore::coordinates_fleet), across
    /// every node as of this sender's last claim or attempt (at most a poll
    /// interval old while the sender runs).
    pub fn is_paused(&self, destination_id: &str) -> bool {
        let now = self.now();
        self.inner
            .store
            .circuit_open(destination_id, now)
            .unwrap_or_else(|| self.inner.breaker.is_open(destination_id, now))
    }

    async fn update_destination(
        &self,
        id: &str,
        change: impl FnOnce(&mut Destination),
    ) -> Result<Destination, SenderError> {
        let mut d = self.destination(id).await?;
        change(&mut d);
        self.inner.store.save_destination(&d).await?;
        self.inner.forget_destinations();
        self.inner.wake.notify_one();
        Ok(d)
    }

    /// Stops deliveries to a destination; its pending ones wait.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn disable_destination(
        &self,
        id: &str,
        reason: impl Into<String>,
    ) -> Result<Destination, SenderError> {
        let reason = reason.into();
        self.update_destination(id, |d| {
            d.enabled = false;
            d.disabled_reason = Some(reason);
        })
        .await
    }

    /// Resumes deliveries to a destination (and closes its circuit, for
    /// every node when the store coordinates the fleet).
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn enable_destination(&self, id: &str) -> Result<Destination, SenderError> {
        self.inner.breaker.reset(id);
        self.inner.store.close_circuit(id).await?;
        self.update_destination(id, |d| {
            d.enabled = true;
            d.disabled_reason = None;
        })
        .await
    }

    /// Changes which events a destination receives. The next
    /// [`publish`](Self::publish) uses the new filter; deliveries already
    /// created stay as they are.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn set_event_filter(
        &self,
        id: &str,
        events: EventFilter,
    ) -> Result<Destination, SenderError> {
        self.update_destination(id, |d| d.events = events).await
    }

    /// Deletes a destination; its pending deliveries are dead-lettered.
    /// Its delivery history stays.
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], or a store failure.
    pub async fn delete_destination(&self, id: &str) -> Result<(), SenderError> {
        let existed = self
            .inner
            .store
            .delete_destination(id, self.now(), "the destination was deleted")
            .await?;
        self.inner.forget_destinations();
        if existed {
            Ok(())
        } else {
            Err(SenderError::DestinationNotFound { id: id.to_owned() })
        }
    }

    /// Rotates a destination's secret: `new` signs from now on, and the
    /// current secrets keep signing alongside it for `overlap` (both
    /// signatures travel in one header), so receivers can switch at any
    /// moment in between. Secrets already expired are dropped. `new` is read
    /// the way the destination's scheme reads text, as in
    /// [`add_destination`](Self::add_destination).
    ///
    /// # Errors
    ///
    /// [`SenderError::DestinationNotFound`], a secret the scheme cannot read
    /// or under [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes
    /// ([`ConfigError::InvalidSecret`](crate::error::ConfigError::InvalidSecret)), or a store failure.
    pub async fn rotate_secret(
        &self,
        id: &str,
        new: impl Into<Secret>,
        overlap: Duration,
    ) -> Result<Destination, SenderError> {
        let current = self.destination(id).await?;
        let new = destination::signing_key(&crate::Scheme::for_name(current.scheme), new.into())?;
        let now_s = self.now().div_euclid(1000);
        let until = now_s.saturating_add(i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX));
        self.update_destination(id, move |d| {
            let old = std::mem::take(&mut d.secrets);
            d.secrets.push(new);
            for s in old {
                let expiry = s.expiry().map_or(until, |t| t.min(until));
                if expiry > now_s {
                    d.secrets.push(s.expires_at(expiry));
                }
            }
        })
        .await
    }
}
