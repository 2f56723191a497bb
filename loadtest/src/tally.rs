//! The producer alone: which recipients reached the topic, how often. A bit per recipient
//! (`r<n>` is bit n), so checking ten million costs 1.25 MB and the memory of a
//! producer-only run is the producer's.

use std::sync::atomic::{AtomicU64, Ordering};

use fanout_common::{EdgeError, RecipientBatch};
use fanout_producer::{EntryFailure, PublishEntry, Publisher};

use crate::accounting::ID_PREFIX;

/// Recipients seen, by number.
pub struct Tally {
    count: u64,
    seen: Vec<AtomicU64>,
    duplicates: AtomicU64,
    foreign: AtomicU64,
}

impl Tally {
    /// A tally of recipients `r0` … `r<count - 1>`.
    pub fn new(count: u64) -> Self {
        let words = usize::try_from(count.div_ceil(64)).unwrap_or(usize::MAX);
        Self {
            count,
            seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
            duplicates: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
        }
    }

    /// Marks the recipients of one published batch body.
    pub fn mark_body(&self, body: &str) {
        let Ok(batch) = RecipientBatch::from_json(body) else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        for r in &batch.recipients {
            match r.id.as_str().strip_prefix(ID_PREFIX).and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => self.mark(n),
                None => {
                    self.foreign.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn mark(&self, n: u64) {
        let Some(word) = self.seen.get((n / 64) as usize).filter(|_| n < self.count) else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let bit = 1u64 << (n % 64);
        if word.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether recipient `n` was seen.
    pub fn seen(&self, n: u64) -> bool {
        self.seen.get((n / 64) as usize).is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (n % 64)) != 0)
    }

    /// Recipients seen at least once.
    pub fn unique(&self) -> u64 {
        self.seen.iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum()
    }

    /// Sightings beyond the first.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Bodies or recipients that are not of this job's numbering (must be 0).
    pub fn foreign(&self) -> u64 {
        self.foreign.load(Ordering::Relaxed)
    }
}

/// A publisher that tallies the entries its inner publisher accepted.
pub struct Tap<P> {
    inner: P,
    /// What got through.
    pub tally: Tally,
}

impl<P> Tap<P> {
    /// Tallies `count` recipients published through `inner`.
    pub fn new(inner: P, count: u64) -> Self {
        Self { inner, tally: Tally::new(count) }
    }
}

impl<P: Publisher> Publisher for Tap<P> {
    async fn publish_batch(&self, entries: Vec<PublishEntry>) -> Result<Vec<EntryFailure>, EdgeError> {
        let sent: Vec<(String, String)> = entries.iter().map(|e| (e.id.clone(), e.body.clone())).collect();
        let failed = self.inner.publish_batch(entries).await?;
        for (id, body) in &sent {
            if !failed.iter().any(|f| &f.id == id) {
                self.tally.mark_body(body);
            }
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_recipient_once_and_the_rest_as_duplicates_or_foreign() {
        let t = Tally::new(130);
        let body = |ids: &[&str]| {
            let recipients: Vec<_> = ids.iter().map(|i| serde_json::json!({"id": i, "address": "x"})).collect();
            serde_json::json!({"v":1,"job_id":"j","batch_id":"j-00000000","attempt":1,"channel":"noop","payload":null,"recipients":recipients}).to_string()
        };
        t.mark_body(&body(&["r0", "r64", "r129"]));
        t.mark_body(&body(&["r64", "x1", "r130"]));
        t.mark_body("not a batch");
        assert_eq!((t.unique(), t.duplicates(), t.foreign()), (3, 1, 3));
        assert!(t.seen(129) && !t.seen(1));
    }
}
