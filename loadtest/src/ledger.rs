//! The delivery ledger: every delivery that reached a receiver, by idempotency key, with
//! the latency of the first one (from job start). Sharded so many workers can record at
//! once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use fanout_common::IdempotencyKey;
use hdrhistogram::Histogram;

const SHARDS: usize = 64;

/// Keys are already uniform hashes: use their low bits as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Per shard, the low 64 bits of the key (the shard is chosen by the high bits, so 70 of
/// the 128 bits tell keys apart: for ten million recipients the chance of any two sharing
/// an entry is below 10⁻⁵). Half the memory of full keys.
type KeyMap = HashMap<u64, u32, BuildHasherDefault<KeyHasher>>;

struct Shard {
    deliveries: KeyMap,
    latency_us: Histogram<u64>,
}

/// What the ledger holds.
pub struct Ledger {
    started: Instant,
    shards: Vec<Mutex<Shard>>,
    unique: AtomicU64,
    total: AtomicU64,
    refused: AtomicU64,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Ledger {
    /// An empty ledger; latencies count from `started` (the job's start).
    pub fn new(started: Instant) -> Self {
        Self::with_capacity(started, 0)
    }

    /// An empty ledger with room for `recipients` keys, so it never grows (growing a hash
    /// map holds the old and the new table at once).
    pub fn with_capacity(started: Instant, recipients: u64) -> Self {
        let per_shard = usize::try_from(recipients / SHARDS as u64 + recipients / SHARDS as u64 / 16).unwrap_or(0);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    deliveries: KeyMap::with_capacity_and_hasher(per_shard, BuildHasherDefault::default()),
                    latency_us: Histogram::new_with_bounds(1, 24 * 3600 * 1_000_000, 3)
                        .unwrap_or_else(|e| panic!("histogram bounds: {e}")),
                })
            })
            .collect();
        Self { started, shards, unique: AtomicU64::new(0), total: AtomicU64::new(0), refused: AtomicU64::new(0) }
    }

    fn shard(&self, key: IdempotencyKey) -> std::sync::MutexGuard<'_, Shard> {
        let i = ((key.0 >> 122) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a delivery that the receiver accepted.
    pub fn delivered(&self, key: IdempotencyKey) {
        let latency = self.started.elapsed().as_micros() as u64;
        let mut s = self.shard(key);
        let n = s.deliveries.entry(key.0 as u64).or_insert(0);
        *n += 1;
        if *n == 1 {
            let _ = s.latency_us.record(latency.max(1));
            drop(s);
            self.unique.fetch_add(1, Ordering::Relaxed);
        }
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an attempt the receiver refused (any failure).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// How often `key` was delivered.
    pub fn count(&self, key: IdempotencyKey) -> u32 {
        self.shard(key).deliveries.get(&(key.0 as u64)).copied().unwrap_or(0)
    }

    /// Distinct recipients delivered so far.
    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Deliveries so far, repeats included.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Attempts refused so far.
    pub fn refused_attempts(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// First-delivery latency percentiles.
    pub fn latency(&self) -> Latency {
        let mut all = Histogram::<u64>::new_with_bounds(1, 24 * 3600 * 1_000_000, 3)
            .unwrap_or_else(|e| panic!("histogram bounds: {e}"));
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = all.add(&s.latency_us);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(all.value_at_quantile(0.50)),
            p90: ms(all.value_at_quantile(0.90)),
            p99: ms(all.value_at_quantile(0.99)),
            max: ms(all.max()),
        }
    }
}
