//! The worker as a Lambda function behind an SQS event source mapping with
//! `ReportBatchItemFailures`: the event in, the partial batch response out. The handler
//! never returns an error (that would shrink the mapping's concurrency).

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use fanout_common::DeadLetters;
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::deliver::Deliverer;
use crate::requeue::Requeue;
use crate::Worker;

/// The build: crate version and git revision.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("FANOUT_GIT_REV"));

/// Handles one invocation.
pub async fn handle<D: Deliverer, Q: Requeue, L: DeadLetters>(
    worker: &Worker<D, Q, L>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let cold_start = fanout_common::invocation::cold_start();
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        version = VERSION,
        cold_start,
        remaining_ms = event.context.deadline().duration_since(SystemTime::now()).map_or(0, |d| d.as_millis() as u64),
        records = event.payload.records.len(),
    );
    let deadline = fanout_common::invocation::deadline_instant(event.context.deadline());
    Ok(worker.handle(event.payload, deadline).instrument(span).await)
}
