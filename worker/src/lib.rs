//! # fanout-worker
//!
//! Delivers batches of recipients taken from an SQS queue, and tells SQS exactly which
//! messages must come back (partial batch failure reporting).
//!
//! Layout: [`handler`] is the heart (event in, `SqsBatchResponse` out), [`decode`] reads
//! record bodies (raw or SNS envelope), [`deliver`] is the recipient edge and the built-in
//! channels, [`webhook`] the HTTP channel, [`requeue`] the queue edge. Dead-letter records go
//! through [`fanout_common::DeadLetters`].

pub mod decode;
pub mod deliver;
pub mod handler;
pub mod requeue;
pub mod webhook;

pub use deliver::{Channels, Deliverer, Delivery, LogDeliverer, NoopDeliverer, Outcome};
pub use handler::{InvocationReport, MessageReport, Worker, WorkerConfig};
pub use requeue::{MemoryRequeue, Outgoing, Requeue};
pub use webhook::WebhookDeliverer;
