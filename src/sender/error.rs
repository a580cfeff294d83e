//! Errors of the sender: bad input from the caller, and storage failures.

use super::delivery::DeliveryStatus;
use crate::error::ConfigError;

/// A storage backend failed (I/O, a corrupt row, a lost connection).
#[derive(Debug, Clone, thiserror::Error)]
#[error("delivery store failed: {message}")]
pub struct DeliveryStoreError {
    message: String,
}

impl DeliveryStoreError {
    /// A store error with this explanation (never a secret).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a sender operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SenderError {
    /// A destination URL or setting cannot be used.
    #[error("invalid destination: {reason}")]
    InvalidDestination {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The destination's host resolves to no address the SSRF guard allows:
    /// only to refused ones, or to none at all. The message is the same in
    /// both cases and names no address, so a caller registering URLs cannot
    /// probe internal DNS names; the sender logs the detail (host, resolved
    /// addresses, range, DNS error) at `warn` level for the operator.
    #[error("destination URL is not allowed: {}", super::ssrf::NOT_PUBLIC)]
    ForbiddenAddress {
        /// The scheme and host of the URL given (`https://example.com`).
        url: String,
    },
    /// An event cannot be published as given.
    #[error("invalid event: {reason}")]
    InvalidEvent {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An event with this id was already published.
    #[error("event `{id}` was already published; each event id is published once")]
    DuplicateEvent {
        /// The event id.
        id: String,
    },
    /// No destination has this id.
    #[error("no destination with id `{id}`")]
    DestinationNotFound {
        /// The id asked for.
        id: String,
    },
    /// The operation needs an enabled destination.
    #[error("destination `{id}` is disabled; enable it first")]
    DestinationDisabled {
        /// The destination id.
        id: String,
    },
    /// No delivery has this id.
    #[error("no delivery with id `{id}`")]
    DeliveryNotFound {
        /// The id asked for.
        id: String,
    },
    /// The operation needs a delivery in another state.
    #[error("delivery `{id}` is {status}; {reason}")]
    WrongState {
        /// The delivery id.
        id: String,
        /// Its current status.
        status: DeliveryStatus,
        /// What the operation needs.
        reason: &'static str,
    },
    /// A setting, secret or scheme name is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The delivery store failed.
    #[error(transparent)]
    Store(#[from] DeliveryStoreError),
}
