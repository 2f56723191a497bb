//! The worker as a Lambda function behind an SQS event source mapping with
//! `ReportBatchItemFailures`: the event in, the partial batch response out. The handler
//! never returns an error (that would shrink the mapping's concurrency).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use fanout_common::DeadLetters;
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::deliver::Deliverer;
use crate::requeue::Requeue;
use crate::Worker;

static COLD: AtomicBool = AtomicBool::new(true);

/// The build: crate version and git revision.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("FANOUT_GIT_REV"));

/// Converts the runtime's wall-clock deadline into an `Instant`.
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    Instant::now() + deadline.duration_since(SystemTime::now()).unwrap_or_default()
}

/// Handles one invocation.
pub async fn handle<D: Deliverer, Q: Requeue, L: DeadLetters>(
    worker: &Worker<D, Q, L>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let cold_start = COLD.swap(false, Ordering::Relaxed);
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        version = VERSION,
        cold_start,
        records = event.payload.records.len(),
    );
    let deadline = deadline_instant(event.context.deadline());
    Ok(worker.handle(event.payload, deadline).instrument(span).await)
}
