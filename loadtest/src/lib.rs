//! # fanout-loadtest
//!
//! Runs the whole fanout pipeline and reports what happened to every recipient.
//!
//! By default everything runs in this process: the [`engine`] models SNS, SQS (with its
//! dead-letter queue) and the Lambda event source mapping with the AWS semantics the
//! pipeline relies on; the producer and worker libraries run as they would in Lambda; a
//! [`sink`] on 127.0.0.1 receives webhooks and injects faults ([`faults`]); the [`ledger`]
//! records every delivery by idempotency key; [`harness`] wires a run and [`report`] says
//! what it cost and whether anyone was lost. Recipients can come from a generated object
//! ([`objects`]); a producer-only run checks what reaches the topic with a [`tally`].

pub mod accounting;
pub mod aws;
pub mod clock;
pub mod engine;
pub mod faults;
pub mod harness;
pub mod ledger;
pub mod objects;
pub mod report;
pub mod sink;
pub mod tally;

pub use harness::{run, RunConfig};
pub use report::Report;
