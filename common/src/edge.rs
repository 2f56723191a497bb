//! The edges shared by producer and worker: where dead-letter records go, and the error
//! any edge (a topic, a queue, a dead-letter target) answers with.
//!
//! Each edge is a small trait with an in-memory implementation beside it, so the handlers
//! can be tested without AWS; the AWS SDK implementations live with the binaries.

use std::future::Future;
use std::sync::Mutex;

use crate::message::DeadLetterRecord;
use crate::retry::FailureClass;

/// A failed call to an edge: what happened, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EdgeError {
    /// Whether a retry may succeed.
    pub class: FailureClass,
    /// What went wrong, with the service's error code where there is one.
    pub message: String,
}

impl EdgeError {
    /// A failure that may pass.
    pub fn transient(message: impl Into<String>) -> Self {
        Self { class: FailureClass::Transient, message: message.into() }
    }

    /// A failure that will not pass by retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { class: FailureClass::Permanent, message: message.into() }
    }
}

/// Where records of what will never be delivered go (in AWS: the dead-letter queue), so
/// an operator finds them and nothing vanishes.
pub trait DeadLetters: Send + Sync {
    /// Stores one record durably, or says why it could not.
    fn write(&self, record: DeadLetterRecord) -> impl Future<Output = Result<(), EdgeError>> + Send;
}

/// Dead letters kept in memory, for tests and the embedded runtime's checks.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    records: Mutex<Vec<DeadLetterRecord>>,
}

impl MemoryDeadLetters {
    /// Everything written so far.
    pub fn records(&self) -> Vec<DeadLetterRecord> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl DeadLetters for MemoryDeadLetters {
    async fn write(&self, record: DeadLetterRecord) -> Result<(), EdgeError> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(record);
        Ok(())
    }
}

impl<T: DeadLetters> DeadLetters for &T {
    fn write(&self, record: DeadLetterRecord) -> impl Future<Output = Result<(), EdgeError>> + Send {
        (**self).write(record)
    }
}

impl<T: DeadLetters> DeadLetters for std::sync::Arc<T> {
    fn write(&self, record: DeadLetterRecord) -> impl Future<Output = Result<(), EdgeError>> + Send {
        (**self).write(record)
    }
}
