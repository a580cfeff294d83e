//! [`InboxLayer`]: stores verified requests in an [`Inbox`].

use tower_layer::Layer;

use super::Inbox;
use super::service::InboxService;

/// Stores each verified request in its [`Inbox`] and answers at once; from
/// [`Inbox::layer`]. Must run after [`VerifyLayer`](crate::VerifyLayer).
#[derive(Clone, Debug)]
#[must_use]
pub struct InboxLayer<S> {
    inbox: Inbox<S>,
}

impl<S> InboxLayer<S> {
    /// A layer that stores requests in `inbox`.
    pub fn new(inbox: Inbox<S>) -> Self {
        Self { inbox }
    }
}

impl<St: Clone, S> Layer<S> for InboxLayer<St> {
    type Service = InboxService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        InboxService::new(inner, self.inbox.clone())
    }
}
