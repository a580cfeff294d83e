use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The future every [`IdempotencyStore`] method returns.
pub type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, IdempotencyStoreError>> + Send + 'a>>;

/// Proof of owning an in-flight lease: only the holder of the token that
/// [`begin`](IdempotencyStore::begin) handed out can complete or release the
/// key, so one receiver can never finish or free another's lease (for
/// example after its own lease expired and a retry took the key over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(u128);

impl LeaseToken {
    /// A token with this value. Stores that share keys between processes
    /// must use values that cannot collide, such as [`random`](Self::random).
    pub const fn new(value: u128) -> Self {
        Self(value)
    }

    /// 128 random bits from the thread-local CSPRNG.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The token's value.
    pub const fn get(self) -> u128 {
        self.0
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Begin {
    /// The key was absent and is now in flight, owned by this token: process
    /// the event, then [`complete`](IdempotencyStore::complete) or
    /// [`release`](IdempotencyStore::release).
    New(LeaseToken),
    /// Another delivery of the same event holds an unexpired lease.
    InFlight,
    /// The event was processed successfully within the done TTL.
    Done,
}

/// The store could not be reached or answered something unexpected.
///
/// The message says what failed; it never contains a connection password.
#[derive(Debug, Clone)]
pub struct IdempotencyStoreError {
    message: Arc<str>,
}

impl IdempotencyStoreError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string().into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for IdempotencyStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IdempotencyStoreError {}

/// Where idempotency keys live: `absent -> in flight -> done`.
///
/// Implementations must make [`begin`](Self::begin) a single atomic
/// insert-if-absent (never a read followed by a write: two concurrent
/// deliveries would both see "absent"), and must guard
/// [`complete`](Self::complete) and [`release`](Self::release) with the
/// lease token (compare-and-set), so a lease that expired and was taken over
/// cannot be finished by its former owner.
///
/// Three stores ship with the crate: [`MokaStore`](super::MokaStore) (in
/// process) and, shared between machines, `RedisStore` (feature `redis`)
/// and `PgIdempotencyStore` (feature `postgres`). The trait is object safe; the layer holds an
/// `Arc<dyn IdempotencyStore>`.
pub trait IdempotencyStore: fmt::Debug + Send + Sync + 'static {
    /// Atomically: when `key` is absent (or its entry expired), stores it as
    /// in flight for `lease` and returns [`Begin::New`]; otherwise reports
    /// what is there.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when the store cannot be reached.
    fn begin<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Begin>;

    /// Marks `key` done for `ttl`, if `token` still owns its lease. Returns
    /// whether it did (`false`: the lease expired and someone else may hold
    /// the key now).
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when the store cannot be reached.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Removes `key`, if `token` still owns its lease, so the next delivery
    /// is processed. Returns whether it did.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when the store cannot be reached.
    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool>;
}

impl<T: IdempotencyStore + ?Sized> IdempotencyStore for Arc<T> {
    fn begin<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Begin> {
        (**self).begin(key, lease)
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).complete(key, token, ttl)
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        (**self).release(key, token)
    }
}
