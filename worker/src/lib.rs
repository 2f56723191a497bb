//! # fanout-worker
//!
//! Delivers batches of recipients taken from an SQS queue, and tells SQS exactly which
//! messages must come back (partial batch failure reporting).
//!
//! Layout: [`handler`] is the heart (event in, `SqsBatchResponse` out), [`decode`] reads
//! record bodies (raw or SNS envelope), [`deliver`] is the recipient edge and the built-in
//! channels, [`webhook`] the HTTP channel, [`requeue`] the queue edge with [`sqs`] its AWS
//! implementation. Dead-letter records go through [`fanout_common::DeadLetters`]. [`lambda`]
//! runs the handler as a Lambda function, [`consumer`] as a long-lived SQS consumer;
//! [`config`] reads the environment. The `worker` binary is `src/main.rs`.

pub mod config;
pub mod consumer;
pub mod decode;
pub mod deliver;
pub mod handler;
pub mod lambda;
pub mod requeue;
pub mod sqs;
pub mod webhook;

pub use deliver::{Channels, Deliverer, Delivery, LogDeliverer, NoopDeliverer, Outcome};
pub use handler::{InvocationReport, MessageReport, Worker, WorkerConfig};
pub use requeue::{MemoryRequeue, Outgoing, Requeue};
pub use webhook::WebhookDeliverer;
