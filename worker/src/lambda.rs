//! The worker as a Lambda function behind an SQS event source mapping with
//! `ReportBatchItemFailures`: the event in, the partial batch response out. The handler
//! never returns an error (that would shrink the mapping's concurrency).

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use fanout_common::DeadLetters;
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::deliver::Deliverer;
use crate::requeue::Requeue;
use crate::{InvocationReport, Worker};

/// The build: crate version and git revision.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("FANOUT_GIT_REV"));

/// Handles one invocation.
pub async fn handle<D: Deliverer, Q: Requeue, L: DeadLetters>(
    worker: &Worker<D, Q, L>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let cold_start = fanout_common::invocation::cold_start();
    let deadline = fanout_common::invocation::deadline_instant(event.context.deadline());
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        version = VERSION,
        cold_start,
        remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
        records = event.payload.records.len(),
    );
    let started = Instant::now();
    let (response, report) = worker.handle_with_report(event.payload, deadline).instrument(span).await;
    println!("{}", metrics_line(&report, started.elapsed()));
    Ok(response)
}

/// The invocation's metrics as one EMF line (stdout goes to CloudWatch Logs).
pub fn metrics_line(report: &InvocationReport, duration: std::time::Duration) -> String {
    use fanout_common::metrics::{emf_line, now_ms, Unit};
    emf_line(
        &[("function", "worker")],
        &[
            ("Delivered", report.delivered as f64, Unit::Count),
            ("Retried", report.retried as f64, Unit::Count),
            ("Continued", report.continued as f64, Unit::Count),
            ("DeadLettered", report.dead_lettered as f64, Unit::Count),
            ("Poison", report.poison as f64, Unit::Count),
            ("FailedMessages", report.failed as f64, Unit::Count),
            ("BatchDuration", duration.as_secs_f64() * 1000.0, Unit::Milliseconds),
        ],
        now_ms(),
    )
}
