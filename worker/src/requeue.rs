//! The queue edge: putting recipients back on the queue as a new, smaller batch (SQS
//! `SendMessageBatch` with `DelaySeconds`).

use std::future::Future;
use std::sync::Mutex;

use fanout_common::EdgeError;

/// One message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The body (a `RecipientBatch`).
    pub body: String,
    /// Seconds before it becomes visible (0 to 900).
    pub delay_seconds: u32,
}

/// Sends batches back to the job's queue.
pub trait Requeue: Send + Sync {
    /// Enqueues all of `messages` (at most 10), or fails as a whole.
    fn enqueue(&self, messages: Vec<Outgoing>) -> impl Future<Output = Result<(), EdgeError>> + Send;
}

/// A queue in memory, for tests: keeps what it is sent.
#[derive(Debug, Default)]
pub struct MemoryRequeue {
    sent: Mutex<Vec<Outgoing>>,
    fail: bool,
}

impl MemoryRequeue {
    /// A queue that refuses every message, to test what happens then.
    pub fn failing() -> Self {
        Self { fail: true, ..Self::default() }
    }

    /// What was enqueued.
    pub fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Requeue for MemoryRequeue {
    async fn enqueue(&self, messages: Vec<Outgoing>) -> Result<(), EdgeError> {
        if self.fail {
            return Err(EdgeError::transient("queue unavailable"));
        }
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(messages);
        Ok(())
    }
}

impl<T: Requeue> Requeue for std::sync::Arc<T> {
    fn enqueue(&self, messages: Vec<Outgoing>) -> impl Future<Output = Result<(), EdgeError>> + Send {
        (**self).enqueue(messages)
    }
}

impl<T: Requeue> Requeue for &T {
    fn enqueue(&self, messages: Vec<Outgoing>) -> impl Future<Output = Result<(), EdgeError>> + Send {
        (**self).enqueue(messages)
    }
}
