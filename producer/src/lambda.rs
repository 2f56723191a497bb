//! The producer as a Lambda function: the invocation payload (any trigger) in, the
//! summary out. The deadline is the invocation's; a job it stops goes on in an asynchronous
//! invocation of the same function (the ARN it was invoked by, so an alias or version
//! stays the same) started before this one returns.

use std::time::Instant;

use fanout_common::limits::LAMBDA_ASYNC_PAYLOAD_MAX_BYTES;
use fanout_common::{DeadLetters, FanoutRequest};
use lambda_runtime::LambdaEvent;
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::continuation::Continuer;
use crate::publish::Publisher;
use crate::source::Objects;
use crate::trigger::request_from_event;
use crate::{Error, Producer, Summary};

/// The build: crate version and git revision.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("FANOUT_GIT_REV"));

/// Handles one invocation. With a `continuer`, a job stopped by the deadline is continued
/// through it (`continued` in the summary); without, the continuation is left to the caller.
pub async fn handle<P: Publisher, D: DeadLetters, O: Objects, C: Continuer>(
    producer: &Producer<P, D, O>,
    continuer: Option<&C>,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Summary, Error> {
    let function = match event.context.invoked_function_arn.as_str() {
        "" => std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        arn => arn.to_owned(),
    };
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
        let mut summary = producer
            .handle(request, Some(deadline))
            .await
            .inspect_err(|e| tracing::error!(error = %e, "job failed"))?;
        if let (Some(next), Some(continuer)) = (&summary.continuation, continuer) {
            continue_job(continuer, &function, next)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "job stopped"))?;
            summary.continued = true;
        }
        println!("{}", metrics_line(&summary));
        Ok(summary)
    }
    .instrument(span)
    .await
}

/// Starts the invocation that goes on with `next`.
async fn continue_job<C: Continuer>(continuer: &C, function: &str, next: &FanoutRequest) -> Result<(), Error> {
    let size = serde_json::to_vec(next).map_or(0, |v| v.len());
    if size > LAMBDA_ASYNC_PAYLOAD_MAX_BYTES {
        return Err(Error::Continuation(format!(
            "the rest of the job is {size} bytes, over the {LAMBDA_ASYNC_PAYLOAD_MAX_BYTES} byte limit of an asynchronous invoke; put recipient sets this large in S3"
        )));
    }
    if function.is_empty() {
        return Err(Error::Continuation("the function's own name is unknown (no invoked function ARN)".into()));
    }
    continuer.continue_job(function, next).await.map_err(|e| Error::Continuation(e.message))?;
    let cursor = next.resume.as_ref();
    tracing::info!(
        function,
        offset = cursor.map_or(0, |c| c.offset),
        next_seq = cursor.map_or(0, |c| c.next_seq),
        "job continues in a new invocation"
    );
    Ok(())
}

/// The invocation's metrics as one EMF line (stdout goes to CloudWatch Logs).
pub fn metrics_line(summary: &Summary) -> String {
    use fanout_common::metrics::{emf_line, now_ms, Unit};
    emf_line(
        &[("function", "producer")],
        &[
            ("Recipients", summary.recipients as f64, Unit::Count),
            ("RejectedLines", summary.rejected_lines as f64, Unit::Count),
            ("Continued", f64::from(u8::from(summary.continued)), Unit::Count),
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
