//! The worker's handler: an SQS event in, a partial batch response out.
//!
//! Every record is decoded and delivered in its own future, so one bad record never fails
//! its neighbours; deliveries of all records share one concurrency bound; a panic is
//! caught per record. Per message, after delivery:
//!
//! - delivered or permanently failed recipients are done; the permanent failures (and those
//!   whose attempts ran out) go into a dead-letter record;
//! - transiently failed recipients are re-enqueued as a smaller batch with `attempt + 1`
//!   and the retry policy's delay, and the original message succeeds;
//! - recipients not started before the deadline margin are re-enqueued at the same attempt;
//!   a message none of whose recipients started is reported as failed instead (SQS brings
//!   it back after its visibility timeout, and nothing is delivered twice);
//! - an undecodable record (poison) is dead-lettered with the reason, not retried forever;
//! - any edge failing (dead-letter target, queue) or a panic reports the message in
//!   `batchItemFailures`, so SQS delivers it again.
//!
//! The response lists only message ids of the event, never an empty one; a total failure is
//! reported as every id, never as a handler error (which would shrink the event source
//! mapping's concurrency).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use fanout_common::{
    DeadCause, DeadLetterRecord, DeadLetters, DeadRecipient, FailureClass, Recipient, RecipientBatch, RetryPolicy,
};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::Semaphore;

use crate::decode::decode_body;
use crate::deliver::{Deliverer, Delivery, Outcome};
use crate::requeue::{Outgoing, Requeue};

/// How the worker behaves; read once from the environment by the binary.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Deliveries in flight at once across all records of one invocation.
    pub concurrency: usize,
    /// No delivery starts when less than this is left before the deadline: time to write
    /// dead letters, re-enqueue and answer. Capped at a third of the invocation's time.
    pub deadline_margin: Duration,
    /// When failed recipients are tried again.
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { concurrency: 256, deadline_margin: Duration::from_secs(3), retry: RetryPolicy::default() }
    }
}

/// What became of one message; the counts feed logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageReport {
    /// Recipients delivered now.
    pub delivered: usize,
    /// Recipients re-enqueued for another attempt.
    pub retried: usize,
    /// Recipients re-enqueued because the deadline came first.
    pub continued: usize,
    /// Recipients dead-lettered (permanent, exhausted).
    pub dead_lettered: usize,
    /// The message was poison and is dead-lettered.
    pub poison: bool,
    /// Why the message must come back, if it must.
    pub failed: Option<String>,
}

/// The totals of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationReport {
    /// Records in the event.
    pub records: usize,
    /// Sum over the records.
    pub delivered: usize,
    /// Sum over the records.
    pub retried: usize,
    /// Sum over the records.
    pub continued: usize,
    /// Sum over the records.
    pub dead_lettered: usize,
    /// Poison records.
    pub poison: usize,
    /// Records reported in `batchItemFailures`.
    pub failed: usize,
}

/// The worker: a deliverer, the queue to re-enqueue to, the dead-letter target.
pub struct Worker<D, Q, L> {
    deliverer: D,
    requeue: Q,
    dead_letters: L,
    config: WorkerConfig,
}

enum Attempted<'a> {
    Done(&'a Recipient, Outcome),
    NotStarted(&'a Recipient),
}

impl<D: Deliverer, Q: Requeue, L: DeadLetters> Worker<D, Q, L> {
    /// A worker delivering through `deliverer`.
    pub fn new(deliverer: D, requeue: Q, dead_letters: L, config: WorkerConfig) -> Self {
        Self { deliverer, requeue, dead_letters, config }
    }

    /// The worker's configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Handles one SQS event that must be done by `deadline`.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        self.handle_with_report(event, deadline).await.0
    }

    /// [`Worker::handle`], also returning what happened.
    pub async fn handle_with_report(&self, event: SqsEvent, deadline: Instant) -> (SqsBatchResponse, InvocationReport) {
        let permits = Semaphore::new(self.config.concurrency.max(1));
        // The margin never takes more than a third of the invocation: with a short function
        // timeout (Lambda's default is 3 s) a fixed margin would leave no time to deliver.
        let margin = self.config.deadline_margin.min(deadline.saturating_duration_since(Instant::now()) / 3);
        // Plain loops rather than combinator closures over borrowed records: the future
        // stays `Send` for every lifetime, which `tokio::spawn` needs.
        let mut running = Vec::with_capacity(event.records.len());
        for m in &event.records {
            running.push(AssertUnwindSafe(self.process(m, &permits, deadline, margin)).catch_unwind());
        }
        let mut results = Vec::with_capacity(running.len());
        for r in futures::future::join_all(running).await {
            results.push(
                r.unwrap_or_else(|p| MessageReport { failed: Some(panic_text(&*p)), ..MessageReport::default() }),
            );
        }

        let mut response = SqsBatchResponse::default();
        let mut total = InvocationReport { records: event.records.len(), ..InvocationReport::default() };
        for (msg, r) in event.records.iter().zip(results) {
            total.delivered += r.delivered;
            total.retried += r.retried;
            total.continued += r.continued;
            total.dead_lettered += r.dead_lettered;
            total.poison += usize::from(r.poison);
            if let Some(why) = r.failed {
                match msg.message_id.as_deref().filter(|id| !id.is_empty()) {
                    Some(id) => {
                        tracing::warn!(message_id = id, reason = %why, "message returns to the queue");
                        response.add_failure(id);
                        total.failed += 1;
                    }
                    None => {
                        tracing::error!(reason = %why, "a record without a message id failed; it cannot be reported")
                    }
                }
            }
        }
        tracing::info!(?total, "invocation done");
        (response, total)
    }

    async fn process(
        &self,
        msg: &SqsMessage,
        permits: &Semaphore,
        deadline: Instant,
        margin: Duration,
    ) -> MessageReport {
        let message_id = msg.message_id.as_deref().unwrap_or("");
        let body = msg.body.as_deref().unwrap_or("");
        let batch = match decode_body(body) {
            Ok(b) => b,
            Err(reason) => return self.poison(message_id, reason, body).await,
        };
        let cutoff = deadline.checked_sub(margin).unwrap_or(deadline);
        // Deliveries still running this late are abandoned as transient failures (they
        // may have arrived; the retry carries the same idempotency key), leaving a third
        // of the margin to record dead letters, re-enqueue and answer.
        let hard_stop = deadline.checked_sub(margin / 3).unwrap_or(deadline);
        if Instant::now() >= cutoff {
            return MessageReport {
                failed: Some("deadline reached before delivery".into()),
                ..MessageReport::default()
            };
        }

        let limit = self.config.concurrency.max(1);
        let mut queued = batch.recipients.iter();
        let mut running = FuturesUnordered::new();
        let mut attempted = Vec::with_capacity(batch.recipients.len());
        loop {
            while running.len() < limit {
                let Some(r) = queued.next() else { break };
                running.push(self.attempt(&batch, r, permits, cutoff, hard_stop));
            }
            match running.next().await {
                Some(a) => attempted.push(a),
                None => break,
            }
        }

        let mut report = MessageReport::default();
        let mut retry = Vec::new();
        let (mut throttled, mut longest_retry_after) = (false, None::<Duration>);
        let mut not_started = Vec::new();
        let mut dead = Vec::new();
        for a in attempted {
            match a {
                Attempted::Done(_, Outcome::Delivered) => report.delivered += 1,
                Attempted::Done(r, Outcome::Failed { class, reason }) => {
                    if self.config.retry.should_retry(batch.attempt, class) {
                        // One delay serves the whole retry batch: the longest any
                        // throttling receiver asked for.
                        if let FailureClass::Throttled { retry_after } = class {
                            throttled = true;
                            longest_retry_after = longest_retry_after.max(retry_after);
                        }
                        retry.push(r.clone());
                    } else {
                        let cause = if class.is_retryable() { DeadCause::Exhausted } else { DeadCause::Permanent };
                        dead.push(DeadRecipient {
                            idempotency_key: r.key(&batch.job_id),
                            recipient: r.clone(),
                            cause,
                            reason,
                            attempt: batch.attempt,
                        });
                    }
                }
                Attempted::NotStarted(r) => not_started.push(r.clone()),
            }
        }
        if not_started.len() == batch.recipients.len() {
            return MessageReport {
                failed: Some("deadline reached before delivery".into()),
                ..MessageReport::default()
            };
        }

        if !dead.is_empty() {
            report.dead_lettered = dead.len();
            for record in DeadLetterRecord::recipients(&batch, dead) {
                if let Err(e) = self.dead_letters.write(record).await {
                    return MessageReport { failed: Some(format!("dead-letter write failed: {e}")), ..report };
                }
            }
        }

        let mut outgoing = Vec::new();
        if !retry.is_empty() {
            report.retried = retry.len();
            let mut rng = fastrand::Rng::new();
            let class = if throttled {
                FailureClass::Throttled { retry_after: longest_retry_after }
            } else {
                FailureClass::Transient
            };
            let delay_seconds = self.config.retry.delay_seconds(batch.attempt, class, &mut rng);
            let next = batch.derive(batch.batch_id.retry(batch.attempt + 1), batch.attempt + 1, retry);
            outgoing.push(Outgoing { body: next.to_json(), delay_seconds });
        }
        if !not_started.is_empty() {
            report.continued = not_started.len();
            let rest = batch.derive(batch.batch_id.continuation(), batch.attempt, not_started);
            outgoing.push(Outgoing { body: rest.to_json(), delay_seconds: 0 });
        }
        if !outgoing.is_empty() {
            if let Err(e) = self.requeue.enqueue(outgoing).await {
                return MessageReport { failed: Some(format!("re-enqueue failed: {e}")), ..report };
            }
        }
        tracing::info!(
            message_id,
            job_id = %batch.job_id,
            batch_id = %batch.batch_id,
            attempt = batch.attempt,
            delivered = report.delivered,
            retried = report.retried,
            continued = report.continued,
            dead_lettered = report.dead_lettered,
            "message done"
        );
        report
    }

    async fn attempt<'a>(
        &self,
        batch: &'a RecipientBatch,
        r: &'a Recipient,
        permits: &Semaphore,
        cutoff: Instant,
        hard_stop: Instant,
    ) -> Attempted<'a> {
        let Ok(_permit) = permits.acquire().await else { return Attempted::NotStarted(r) };
        if Instant::now() >= cutoff {
            return Attempted::NotStarted(r);
        }
        let d = Delivery {
            job_id: &batch.job_id,
            batch_id: &batch.batch_id,
            attempt: batch.attempt,
            channel: batch.channel,
            payload: &batch.payload,
            recipient: r,
            key: r.key(&batch.job_id),
        };
        let outcome = tokio::time::timeout_at(hard_stop.into(), self.deliverer.deliver(d)).await.unwrap_or_else(|_| {
            Outcome::Failed { class: FailureClass::Transient, reason: "abandoned at the invocation deadline".into() }
        });
        Attempted::Done(r, outcome)
    }

    async fn poison(&self, message_id: &str, reason: String, body: &str) -> MessageReport {
        tracing::error!(message_id, %reason, "poison message");
        match self.dead_letters.write(DeadLetterRecord::poison(message_id, reason, body)).await {
            Ok(()) => MessageReport { poison: true, ..MessageReport::default() },
            Err(e) => {
                MessageReport { failed: Some(format!("dead-letter write failed: {e}")), ..MessageReport::default() }
            }
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("panic: {what}")
}
