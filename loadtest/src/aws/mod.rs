//! The `aws` target: the same job and the same report, but run by a deployed stack (real
//! AWS, or a local emulator through `AWS_ENDPOINT_URL`): the producer function is invoked
//! through the Lambda Invoke API, the worker runs behind its event source mapping (or as a
//! consumer process), the webhook sink on this machine records deliveries, and the
//! dead-letter queue is read at the end.

pub mod drive;
pub mod stack;

pub use drive::{run, AwsRunConfig, ConsumerProcess};
pub use stack::{provision, Provision, StackNames};
