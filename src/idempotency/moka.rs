use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use moka::policy::{EvictionPolicy, Expiry};

use super::store::{Begin, IdempotencyStore, LeaseToken, StoreFuture};

/// Default [`MokaStore`] capacity: 1,000,000 keys.
pub const DEFAULT_CAPACITY: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight(LeaseToken),
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: State,
    ttl: Duration,
}

/// Each entry lives for its own `ttl`: the lease while in flight, the done
/// TTL once completed.
struct PerEntryTtl;

impl Expiry<String, Slot> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}

/// The in-process [`IdempotencyStore`]: a [moka](https://docs.rs/moka)
/// concurrent cache with a maximum number of keys and a TTL per entry.
///
/// Right for a receiver that runs as **one** process. With several
/// processes behind a load balancer, each would keep its own keys and the
/// same event could be processed once per process: use `RedisStore` (feature
/// `redis`) there.
///
/// Memory is bounded by `capacity`: when it is reached, the least recently
/// used keys are evicted first (LRU, so a new key is always admitted). An
/// evicted done key no longer deduplicates, so size the capacity for every
/// event you expect within the done TTL (24 h by default). Each key costs
/// roughly 200 bytes plus the key text (see `BENCHMARKS.md`).
///
/// ```
/// use std::time::Duration;
/// use webhook_guard::idempotency::{Begin, IdempotencyStore, MokaStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MokaStore::new(10_000);
/// let lease = Duration::from_secs(300);
/// let Begin::New(token) = store.begin("evt_1", lease).await? else { panic!() };
/// assert_eq!(store.begin("evt_1", lease).await?, Begin::InFlight);
/// assert!(store.complete("evt_1", token, Duration::from_secs(86_400)).await?);
/// assert_eq!(store.begin("evt_1", lease).await?, Begin::Done);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MokaStore {
    cache: Cache<String, Slot>,
    next_token: Arc<AtomicU64>,
    capacity: u64,
}

impl MokaStore {
    /// A store holding at most `capacity` keys.
    pub fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(PerEntryTtl)
            .build();
        Self {
            cache,
            next_token: Arc::new(AtomicU64::new(1)),
            capacity,
        }
    }

    /// The configured maximum number of keys.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The number of keys held, as of the last maintenance run (see
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Runs the cache's pending maintenance now: evictions beyond capacity
    /// and removal of expired keys. It also runs on its own as the cache is
    /// used; call it to read an exact [`entry_count`](Self::entry_count).
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    fn token(&self) -> LeaseToken {
        LeaseToken::new(u128::from(self.next_token.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("capacity", &self.capacity)
            .field("entry_count", &self.cache.entry_count())
            .finish()
    }
}

impl IdempotencyStore for MokaStore {
    fn begin<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Begin> {
        Box::pin(async move {
            let token = self.token();
            // One atomic insert-if-absent: concurrent callers for a missing
            // key are coalesced, exactly one of them gets a fresh entry.
            let entry = self
                .cache
                .entry_by_ref(key)
                .or_insert_with(async move {
                    Slot {
                        state: State::InFlight(token),
                        ttl: lease,
                    }
                })
                .await;
            Ok(match entry.value().state {
                State::InFlight(owner) if entry.is_fresh() && owner == token => Begin::New(token),
                State::InFlight(_) => Begin::InFlight,
                State::Done => Begin::Done,
            })
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self
                .cache
                .entry_by_ref(key)
                .and_compute_with(|current| {
                    let op = match current.map(|e| e.into_value().state) {
                        Some(State::InFlight(owner)) if owner == token => Op::Put(Slot {
                            state: State::Done,
                            ttl,
                        }),
                        _ => Op::Nop,
                    };
                    std::future::ready(op)
                })
                .await;
            Ok(matches!(result, CompResult::ReplacedWith(_)))
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self
                .cache
                .entry_by_ref(key)
                .and_compute_with(|current| {
                    let op = match current.map(|e| e.into_value().state) {
                        Some(State::InFlight(owner)) if owner == token => Op::Remove,
                        _ => Op::Nop,
                    };
                    std::future::ready(op)
                })
                .await;
            Ok(matches!(result, CompResult::Removed(_)))
        })
    }
}
