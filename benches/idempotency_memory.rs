//! Memory of the moka store: inserts `IDEM_KEYS` distinct keys (default
//! 1,000,000) into a `MokaStore` of capacity `IDEM_CAPACITY` (default
//! 100,000), checks that the store holds no more than its capacity, and
//! prints the resident memory it added per held key (from
//! `/proc/self/statm`; Linux only).
//!
//! `cargo bench --bench idempotency_memory`
//! `IDEM_CAPACITY=1000000 cargo bench --bench idempotency_memory`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use webhook_guard::idempotency::{Begin, IdempotencyStore, MokaStore};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Peak resident set size in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Scope and verifier parts of a real key, as `IdempotencyLayer` writes
/// them for the route `/webhooks` and one HMAC secret.
const KEY_PREFIX: &str = "9:/webhooks:37:hmac:0123456789abcdef0123456789abcdef:";

fn main() {
    let capacity = env_u64("IDEM_CAPACITY", 100_000);
    let keys = env_u64("IDEM_KEYS", 1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = rss();
        let store = MokaStore::new(capacity);
        let started = Instant::now();
        let mut max_seen = 0;
        for i in 0..keys {
            // The shape of a real key: route template and verifier identity
            // (each after its length), event id.
            let key = format!("{KEY_PREFIX}evt_{i:012}");
            let Begin::New(token) = store.begin(&key, Duration::from_secs(300)).await.unwrap()
            else {
                panic!("distinct keys are new")
            };
            store
                .complete(&key, token, Duration::from_secs(86_400))
                .await
                .unwrap();
            if i % 100_000 == 0 {
                store.run_pending_tasks().await;
                max_seen = max_seen.max(store.entry_count());
            }
        }
        store.run_pending_tasks().await;
        let held = store.entry_count();
        max_seen = max_seen.max(held);
        let after = rss();
        assert!(
            held <= capacity && max_seen <= capacity,
            "held {held}, max seen {max_seen}, capacity {capacity}"
        );
        let added = after.saturating_sub(before);
        println!(
            "moka store: {keys} distinct keys into capacity {capacity} in {:.2?}; held {held} (max seen {max_seen}); \
             RSS +{:.1} MiB => {:.0} bytes per held key; peak RSS {:.1} MiB",
            started.elapsed(),
            added as f64 / 1048576.0,
            added as f64 / held.max(1) as f64,
            peak_rss() as f64 / 1048576.0,
        );
        drop(store);
    });
}
