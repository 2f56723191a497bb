//! The embedded engine: SNS, SQS and the Lambda event source mapping in one process, with
//! the AWS semantics the pipeline depends on. Each module's doc lists what it keeps and
//! where it differs from AWS.

pub mod esm;
pub mod queue;
pub mod topic;

pub use esm::{EsmConfig, EventSourceMapping, Function};
pub use queue::{DeadLetterQueue, Queue, QueueConfig, Received, Redrive, SqsError};
pub use topic::{SnsError, Subscription, Topic};
