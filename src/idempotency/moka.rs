use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use moka::Equivalent;
use moka::ops::compute::{CompResult, Op};
use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;

use super::store::{Begin, IdempotencyStore, LeaseToken, StoreFuture};

/// Default [`MokaStore`] capacity: 100,000 keys (about 50 MB when full).
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// `Cell::state` of a done key. Lease tokens of this store start at 1.
const DONE: u64 = 0;

/// Longest TTL applied, so `Instant + ttl` cannot overflow: 100 years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A key with its hash computed once, when the operation starts.
///
/// The cache hashes only the stored `u64`, so growing or cleaning its table
/// (which rehashes every key) does not read each key's text again, and a
/// probe that meets another key usually differs on the hash without reading
/// the text either.
#[derive(Debug, PartialEq, Eq)]
struct StoreKey {
    hash: u64,
    text: Box<str>,
}

impl Hash for StoreKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A borrowed [`StoreKey`], for lookups that need no owned copy.
struct KeyRef<'a> {
    hash: u64,
    text: &'a str,
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<StoreKey> for KeyRef<'_> {
    fn equivalent(&self, key: &StoreKey) -> bool {
        self.hash == key.hash && self.text == &*key.text
    }
}

/// One key's state, changed in place so that completing a key is a lookup
/// and a compare-and-swap rather than a second cache write.
#[derive(Debug)]
struct Cell {
    /// The owning lease token while in flight, [`DONE`] once completed.
    state: AtomicU64,
    /// How long the key stays in flight.
    lease: Duration,
    /// When a done key expires; set once, by the completing owner.
    done_until: OnceLock<Instant>,
}

/// An entry lives for its lease; once done, until `done_until`. The cache
/// asks on every read, so the read that follows completion moves the expiry.
struct CellExpiry;

impl Expiry<StoreKey, Arc<Cell>> for CellExpiry {
    fn expire_after_create(&self, _: &StoreKey, cell: &Arc<Cell>, _: Instant) -> Option<Duration> {
        Some(cell.lease)
    }

    fn expire_after_read(
        &self,
        _: &StoreKey,
        cell: &Arc<Cell>,
        read_at: Instant,
        until_expiry: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        match cell.done_until.get() {
            Some(until) => Some(until.saturating_duration_since(read_at)),
            None => until_expiry,
        }
    }
}

/// The in-process [`IdempotencyStore`]: a [moka](https://docs.rs/moka)
/// concurrent cache with a maximum number of keys and a TTL per entry.
///
/// It uses moka's synchronous cache: every operation is a short,
/// non-blocking step (an insert-if-absent, a lookup, a compare-and-swap), so
/// the returned futures complete on their first poll and never hold a runtime
/// thread for long. Each key's hash is computed once per operation with a
/// randomly keyed SipHash; the cache itself only hashes that number.
///
/// Right for a receiver that runs as **one** process. With several
/// processes behind a load balancer, each would keep its own keys and the
/// same event could be processed once per process: use `RedisStore` (feature
/// `redis`) or `PgIdempotencyStore` (feature `postgres`) there.
///
/// Memory is bounded by `capacity`: when it is reached, the least recently
/// used keys are evicted first (LRU, so a new key is always admitted). An
/// evicted done key no longer deduplicates, so size the capacity for every
/// event you expect within the done TTL (24 h by default). Each key costs
/// about 500 bytes of resident memory with a 28-byte key (measured with
/// 1,000,000 keys; see `BENCHMARKS.md`): the default capacity of
/// [`DEFAULT_CAPACITY`] keys takes about 50 MB when full, a million keys
/// about 500 MB.
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
    cache: Cache<StoreKey, Arc<Cell>, foldhash::fast::RandomState>,
    /// Hashes key text (SipHash with a random key per store, so a sender
    /// cannot choose ids that collide).
    key_hasher: RandomState,
    next_token: Arc<AtomicU64>,
    capacity: u64,
}

impl MokaStore {
    /// A store holding at most `capacity` keys.
    pub fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(CellExpiry)
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            cache,
            key_hasher: RandomState::new(),
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
        self.cache.run_pending_tasks();
    }

    fn next_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    fn key_ref<'k>(&self, key: &'k str) -> KeyRef<'k> {
        KeyRef {
            hash: self.key_hasher.hash_one(key),
            text: key,
        }
    }

    fn owned_key(&self, key: &str) -> StoreKey {
        StoreKey {
            hash: self.key_hasher.hash_one(key),
            text: key.into(),
        }
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
            let token = self.next_token();
            // One atomic insert-if-absent: concurrent callers for a missing
            // (or expired) key are coalesced, exactly one gets a fresh entry.
            let entry = self.cache.entry(self.owned_key(key)).or_insert_with(|| {
                Arc::new(Cell {
                    state: AtomicU64::new(token),
                    lease: lease.min(MAX_TTL),
                    done_until: OnceLock::new(),
                })
            });
            let state = entry.value().state.load(Ordering::Acquire);
            Ok(if entry.is_fresh() && state == token {
                Begin::New(LeaseToken::new(u128::from(token)))
            } else if state == DONE {
                Begin::Done
            } else {
                Begin::InFlight
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
            let Ok(token) = u64::try_from(token.get()) else {
                return Ok(false);
            };
            // Absent when the lease expired (the cache never returns an
            // expired entry).
            let key = self.key_ref(key);
            let Some(cell) = self.cache.get(&key) else {
                return Ok(false);
            };
            if token == DONE
                || cell
                    .state
                    .compare_exchange(token, DONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return Ok(false);
            }
            let _ = cell.done_until.set(Instant::now() + ttl.min(MAX_TTL));
            // This read makes the cache apply the done TTL
            // (`expire_after_read`). Another cell here means the lease
            // expired and the key was taken over before the swap counted.
            let now = self.cache.get(&key);
            Ok(now.is_some_and(|now| Arc::ptr_eq(&now, &cell)))
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Under the cache's per-key lock: remove only this owner's entry.
            let result = self
                .cache
                .entry(self.owned_key(key))
                .and_compute_with(|current| {
                    let owned = current.is_some_and(|e| {
                        token.get() != u128::from(DONE)
                            && u128::from(e.value().state.load(Ordering::Acquire)) == token.get()
                    });
                    if owned { Op::Remove } else { Op::Nop }
                });
            Ok(matches!(result, CompResult::Removed(_)))
        })
    }
}
