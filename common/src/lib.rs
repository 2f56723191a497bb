//! # fanout-common — the contract between producer and worker
//!
//! A fan-out job reaches a very large set of recipients through SNS → SQS → Lambda. The
//! producer and the worker agree on everything through this crate, so they cannot drift
//! apart:
//!
//! - [`message`]: the request a trigger sends, the versioned batch that travels through SNS
//!   and SQS, and the dead-letter record;
//! - [`invocation`]: the invocation's deadline and cold start, read alike by both functions;
//! - [`ids`]: typed ids, deterministic batch ids and per-recipient idempotency keys;
//! - [`limits`]: the AWS limits, named, with the figures they come from;
//! - [`batching`]: size-aware packing of recipients into batches and of batches into
//!   `PublishBatch` requests;
//! - [`metrics`]: CloudWatch Embedded Metric Format lines;
//! - [`retry`]: the retry policy and the failure classifier;
//! - [`edge`]: the dead-letter edge and the error every edge answers with;
//! - [`env`]: configuration from environment variables, errors naming the variable;
//! - `aws` (feature `aws`): SDK error mapping, the SQS dead-letter writer, SDK configuration;
//! - [`error`]: errors that name the field at fault.

#[cfg(feature = "aws")]
pub mod aws;
pub mod batching;
pub mod edge;
pub mod env;
pub mod error;
pub mod ids;
pub mod invocation;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod retry;

pub use edge::{DeadLetters, EdgeError, MemoryDeadLetters};
pub use error::{Error, FieldError, Result};
pub use ids::{BatchId, IdempotencyKey, JobId, RecipientId};
pub use message::{
    BatchLimits, Channel, Cursor, DeadCause, DeadLetter, DeadLetterRecord, DeadRecipient, FanoutRequest, ObjectFormat,
    ObjectSource, Recipient, RecipientBatch, RecipientSource, RejectedLine, SyntheticSource,
};
pub use retry::{FailureClass, RetryPolicy};
