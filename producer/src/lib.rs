//! # fanout-producer
//!
//! Splits a recipient set into batches and publishes one SNS message per batch.
//!
//! A trigger (an application event, a schedule, a load-test run) hands the producer a
//! [`FanoutRequest`](fanout_common::FanoutRequest). The producer checks it (errors name the
//! field), streams the recipients, packs them into batches by count and by bytes (one 64 KiB
//! billing chunk by default), groups batches into `PublishBatch` requests (≤ 10 entries,
//! ≤ 256 KiB) and publishes them with bounded concurrency, retrying failed entries by the
//! retry policy. Batches that cannot be published end in a dead-letter record.
//!
//! Recipients come inline, generated (load tests), or streamed from an S3 object (JSON
//! Lines or CSV) of any size. A job that does not fit in one invocation stops at a batch
//! boundary before the deadline and goes on in the next invocation from a cursor; on
//! Lambda the function invokes itself asynchronously with it ([`continuation`]).
//!
//! Layout: [`produce`] is the handler, [`trigger`] reads the three trigger formats,
//! [`lambda`] runs the handler as a Lambda function, [`config`] reads the environment,
//! [`publish`] is the topic edge with [`sns`] its AWS implementation, [`source`] the recipient
//! streams with [`s3`] the AWS object store, [`continuation`] the edge that starts the next
//! invocation. The `producer` binary is `src/main.rs`.

pub mod config;
pub mod continuation;
pub mod lambda;
pub mod produce;
pub mod publish;
pub mod s3;
pub mod sns;
pub mod source;
pub mod trigger;

pub use continuation::{Continuer, LambdaContinuer, MemoryContinuer};
pub use produce::{Producer, ProducerConfig, Summary};
pub use publish::{EntryFailure, MemoryPublisher, PublishEntry, Publisher};
pub use source::{FileObjects, NoObjects, Objects, SourceError};

/// Errors of the producer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid; the message names the field.
    #[error("invalid request: {0}")]
    Invalid(#[from] fanout_common::FieldError),
    /// The request is not valid JSON or has the wrong shape.
    #[error("invalid request: {0}")]
    Decode(#[from] fanout_common::Error),
    /// The recipient source cannot be read (missing object, no permission, bad header …).
    #[error("recipient source: {0}")]
    Source(#[from] SourceError),
    /// The job stopped at its deadline and the next invocation could not be started.
    #[error("continuation not started: {0}")]
    Continuation(String),
    /// Batches could not be published and their dead-letter record could not be written.
    #[error("dead-letter write failed: {0}")]
    DeadLetter(String),
    /// A broken invariant; a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for lambda_runtime::Diagnostic {
    /// The Lambda error response: an error type a caller can branch on, and the message.
    fn from(e: Error) -> Self {
        let error_type = match &e {
            Error::Invalid(_) | Error::Decode(_) | Error::Source(SourceError::Header(_)) => "InvalidRequest",
            Error::Source(_) => "SourceUnavailable",
            Error::Continuation(_) => "ContinuationFailed",
            Error::DeadLetter(_) => "DeadLetterWriteFailed",
            Error::Internal(_) => "InternalError",
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}
