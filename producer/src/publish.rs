//! The topic edge: publishing batch bodies with SNS `PublishBatch` semantics.

use std::future::Future;
use std::sync::Mutex;

use fanout_common::EdgeError;

/// One `PublishBatch` entry: a unique (within the request) entry id and a message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishEntry {
    /// The entry id (the batch id: ≤ 80 characters of letters, digits, `-` and `_`).
    pub id: String,
    /// The message body.
    pub body: String,
}

/// One entry that SNS did not accept, as listed in `PublishBatchResponse.Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The entry id it was sent with.
    pub id: String,
    /// The service's error code (`Throttled`, `InternalError`, `InvalidParameter` …).
    pub code: String,
    /// The service's message.
    pub message: String,
    /// Whether the fault is the caller's (never retried).
    pub sender_fault: bool,
}

/// Publishes message bodies to the job's topic.
pub trait Publisher: Send + Sync {
    /// Sends at most 10 entries of at most 256 KiB in all. `Ok` lists the entries that
    /// failed (the rest were published); `Err` means the request as a whole failed.
    fn publish_batch(
        &self,
        entries: Vec<PublishEntry>,
    ) -> impl Future<Output = Result<Vec<EntryFailure>, EdgeError>> + Send;
}

/// A publisher that keeps what it is sent, optionally failing entries by a rule: for tests.
#[derive(Default)]
pub struct MemoryPublisher {
    published: Mutex<Vec<PublishEntry>>,
    requests: Mutex<Vec<usize>>,
    #[allow(clippy::type_complexity)]
    fail: Option<Box<dyn Fn(&PublishEntry, usize) -> Option<EntryFailure> + Send + Sync>>,
}

impl MemoryPublisher {
    /// A publisher that fails an entry when `rule(entry, request_number)` says so.
    pub fn failing(rule: impl Fn(&PublishEntry, usize) -> Option<EntryFailure> + Send + Sync + 'static) -> Self {
        Self { fail: Some(Box::new(rule)), ..Self::default() }
    }

    /// The entries published, in order of acceptance.
    pub fn published(&self) -> Vec<PublishEntry> {
        lock(&self.published).clone()
    }

    /// The number of entries of each request received.
    pub fn requests(&self) -> Vec<usize> {
        lock(&self.requests).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Publisher for MemoryPublisher {
    async fn publish_batch(&self, entries: Vec<PublishEntry>) -> Result<Vec<EntryFailure>, EdgeError> {
        let n = {
            let mut r = lock(&self.requests);
            r.push(entries.len());
            r.len()
        };
        let mut failed = Vec::new();
        for e in entries {
            match self.fail.as_ref().and_then(|f| f(&e, n)) {
                Some(f) => failed.push(f),
                None => lock(&self.published).push(e),
            }
        }
        Ok(failed)
    }
}

impl<T: Publisher> Publisher for &T {
    fn publish_batch(
        &self,
        entries: Vec<PublishEntry>,
    ) -> impl Future<Output = Result<Vec<EntryFailure>, EdgeError>> + Send {
        (**self).publish_batch(entries)
    }
}

impl<T: Publisher> Publisher for std::sync::Arc<T> {
    fn publish_batch(
        &self,
        entries: Vec<PublishEntry>,
    ) -> impl Future<Output = Result<Vec<EntryFailure>, EdgeError>> + Send {
        (**self).publish_batch(entries)
    }
}
