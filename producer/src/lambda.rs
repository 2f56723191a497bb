//! The producer as a Lambda function: the invocation payload (any trigger) in, the
//! summary out. The deadline is the invocation's.

use std::time::Instant;

use fanout_common::DeadLetters;
use lambda_runtime::LambdaEvent;
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::publish::Publisher;
use crate::trigger::request_from_event;
use crate::{Error, Producer, Summary};

/// The build: crate version and git revision.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("FANOUT_GIT_REV"));

/// Handles one invocation.
pub async fn handle<P: Publisher, D: DeadLetters>(
    producer: &Producer<P, D>,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Summary, Error> {
    let cold_start = fanout_common::invocation::cold_start();
    let deadline = fanout_common::invocation::deadline_instant(event.context.deadline());
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        version = VERSION,
        cold_start,
        remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
        job_id = tracing::field::Empty,
    );
    async move {
        let request =
            request_from_event(event.payload.get()).inspect_err(|e| tracing::error!(error = %e, "bad request"))?;
        if let Some(job) = &request.job_id {
            tracing::Span::current().record("job_id", job.as_str());
        }
        let summary = producer
            .handle(request, Some(deadline))
            .await
            .inspect_err(|e| tracing::error!(error = %e, "job failed"))?;
        println!("{}", metrics_line(&summary));
        Ok(summary)
    }
    .instrument(span)
    .await
}

/// The invocation's metrics as one EMF line (stdout goes to CloudWatch Logs).
pub fn metrics_line(summary: &Summary) -> String {
    use fanout_common::metrics::{emf_line, now_ms, Unit};
    emf_line(
        &[("function", "producer")],
        &[
            ("Recipients", summary.recipients as f64, Unit::Count),
            ("Batches", summary.batches as f64, Unit::Count),
            ("PublishRequests", summary.publish_requests as f64, Unit::Count),
            ("RetriedEntries", summary.retried_entries as f64, Unit::Count),
            ("FailedBatches", summary.failed_batches as f64, Unit::Count),
            ("DeadLettered", summary.dead_lettered_recipients as f64, Unit::Count),
            ("JobDuration", summary.duration_ms as f64, Unit::Milliseconds),
        ],
        now_ms(),
    )
}
