use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::store::{Begin, IdempotencyStore, IdempotencyStoreError, LeaseToken, StoreFuture};

/// Default prefix of every key this store writes.
pub const DEFAULT_KEY_PREFIX: &str = "webhook-guard:idem:";

/// The value of a done key. Lease tokens are 32 hex digits, so never equal.
const DONE: &str = "done";

const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// An [`IdempotencyStore`] in Redis, shared by receivers on several machines
/// (feature `redis`).
///
/// - `begin`: `SET <prefix><key> <token> NX PX <lease ms>`, one atomic
///   insert-if-absent; on a conflict a `GET` tells in flight from done.
/// - `complete`: a Lua script that sets the value to `done` with
///   `PX <ttl ms>` only if the value is still this lease's token.
/// - `release`: a Lua script that deletes the key only if the value is still
///   this lease's token.
///
/// Each lease's token is 128 random bits, so one instance can never complete
/// or release another's lease, even after its own lease expired and a retry
/// on another machine took the key over.
///
/// Connections: a [`ConnectionManager`], one multiplexed connection that
/// pipelines every concurrent request and reconnects by itself after a
/// failure. Each store operation is a single short command, so a pool of
/// sockets (deadpool-redis) would add sockets but not throughput; clones of
/// the store share the connection.
///
/// When Redis cannot be reached, operations fail after the connection and
/// response timeouts (1 s each by default) and the layer answers 503
/// ([`FailMode::Closed`](super::FailMode::Closed)).
///
/// ```no_run
/// use webhook_guard::idempotency::{IdempotencyLayer, RedisStore};
///
/// # async fn run() -> Result<(), webhook_guard::idempotency::IdempotencyStoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?
///     .key_prefix("orders-webhooks:");
/// let layer = IdempotencyLayer::new(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    complete: Script,
    release: Script,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/db`),
    /// with 1 s connection and response timeouts.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when the URL is invalid or Redis cannot be reached. The
    /// message never contains the URL (it may hold a password).
    pub async fn connect(url: &str) -> Result<Self, IdempotencyStoreError> {
        let client = Client::open(url).map_err(|e| {
            IdempotencyStoreError::new(format!(
                "invalid Redis URL ({}): expected redis://[user:password@]host:port/db",
                e.category()
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| IdempotencyStoreError::new(format!("cannot connect to Redis: {e}")))?;
        Ok(Self::from_connection_manager(conn))
    }

    /// A store over a connection manager you configured yourself.
    pub fn from_connection_manager(conn: ConnectionManager) -> Self {
        Self {
            conn,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        }
    }

    /// Puts `prefix` before every key (default `webhook-guard:idem:`), to
    /// share one Redis between applications.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn redis_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn store_error(what: &str, err: redis::RedisError) -> IdempotencyStoreError {
    IdempotencyStoreError::new(format!("Redis {what} failed: {err}"))
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore for RedisStore {
    fn begin<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Begin> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = self.redis_key(key);
            let token = LeaseToken::random();
            // A key can expire between a failed SET NX and the GET; then try
            // again, a bounded number of times.
            for _ in 0..3 {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(token.to_string())
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(lease))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| store_error("SET NX", e))?;
                if set.is_some() {
                    return Ok(Begin::New(token));
                }
                let current: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| store_error("GET", e))?;
                match current.as_deref() {
                    Some(DONE) => return Ok(Begin::Done),
                    Some(_) => return Ok(Begin::InFlight),
                    None => continue,
                }
            }
            Ok(Begin::InFlight)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let done: i64 = self
                .complete
                .key(self.redis_key(key))
                .arg(token.to_string())
                .arg(DONE)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| store_error("complete script", e))?;
            Ok(done == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let removed: i64 = self
                .release
                .key(self.redis_key(key))
                .arg(token.to_string())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| store_error("release script", e))?;
            Ok(removed == 1)
        })
    }
}
