//! The producer's handler: request → validated → recipient stream → batches →
//! `PublishBatch` groups with bounded concurrency → a summary.

use std::time::{Duration, Instant};

use fanout_common::batching::{Batcher, EncodedBatch, PublishGrouper};
use fanout_common::retry::classify_publish_failure;
use fanout_common::{
    Cursor, DeadCause, DeadLetterRecord, DeadLetters, DeadRecipient, FailureClass, FanoutRequest, JobId,
    RecipientBatch, RetryPolicy,
};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use crate::publish::{PublishEntry, Publisher};
use crate::source;
use crate::Error;

/// How the producer behaves; read once from the environment by the binary.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `PublishBatch` requests in flight at once.
    pub publish_concurrency: usize,
    /// Retries of failed entries (sender faults are never retried).
    pub retry: RetryPolicy,
    /// Stop starting new batches when less than this is left before the deadline (at most
    /// a third of the invocation's time).
    pub deadline_margin: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            publish_concurrency: 16,
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(5),
            },
            deadline_margin: Duration::from_secs(5),
        }
    }
}

/// What one invocation did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The job (generated when the request named none).
    pub job_id: String,
    /// Recipients read from the source in this invocation.
    pub recipients: u64,
    /// Batches built.
    pub batches: u64,
    /// `PublishBatch` requests sent, retries included.
    pub publish_requests: u64,
    /// Entries that failed once and were sent again.
    pub retried_entries: u64,
    /// Batches that could not be published; their recipients are in dead-letter records.
    pub failed_batches: u64,
    /// Recipients in those batches.
    pub dead_lettered_recipients: u64,
    /// Wall time of the invocation, in milliseconds.
    pub duration_ms: u64,
    /// Where the job goes on when the deadline stopped this invocation first: invoke the
    /// producer again with this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<FanoutRequest>,
}

/// The producer: a publisher and a dead-letter target, plus its configuration.
pub struct Producer<P, D> {
    publisher: P,
    dead_letters: D,
    config: ProducerConfig,
}

struct GroupOutcome {
    requests: u64,
    retried: u64,
    dead: Vec<(EncodedBatch, String)>,
}

impl<P: Publisher, D: DeadLetters> Producer<P, D> {
    /// A producer publishing through `publisher`, recording unpublishable batches in
    /// `dead_letters`.
    pub fn new(publisher: P, dead_letters: D, config: ProducerConfig) -> Self {
        Self { publisher, dead_letters, config }
    }

    /// The publisher, for callers that share it.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// Runs one invocation of `request`. `deadline` is when the invocation will be killed
    /// (`None`: never); past `deadline - margin` no new batch is started and the summary
    /// carries a continuation.
    pub async fn handle(&self, request: FanoutRequest, deadline: Option<Instant>) -> Result<Summary, Error> {
        let started = Instant::now();
        request.validate()?;
        let job_id = request.job_id.clone().unwrap_or_else(JobId::generate);
        let resume = request.resume.unwrap_or(Cursor { offset: 0, next_seq: 0 });
        let mut summary = Summary { job_id: job_id.to_string(), ..Summary::default() };
        tracing::info!(job_id = %job_id, channel = %request.channel, offset = resume.offset, "job started");

        let mut batcher =
            Batcher::new(job_id.clone(), 1, request.channel, request.payload_json(), request.limits, resume.next_seq);
        let mut grouper = PublishGrouper::default();
        let mut recipients = source::recipients(&request.recipients, resume.offset);
        let mut inflight = FuturesUnordered::new();
        let mut dead = Vec::new();
        let mut stopped_at: Option<u64> = None;
        let concurrency = self.config.publish_concurrency.max(1);
        // At most a third of the invocation goes to the margin (Lambda's default timeout
        // is 3 s).
        let margin = deadline.map_or(self.config.deadline_margin, |d| {
            self.config.deadline_margin.min(d.saturating_duration_since(started) / 3)
        });

        while let Some(r) = recipients.next().await {
            let full = batcher.push(&r).map_err(|e| Error::Internal(e.to_string()))?;
            summary.recipients += 1;
            let Some(full) = full else { continue };
            summary.batches += 1;
            if let Some(group) = grouper.push(full) {
                while inflight.len() >= concurrency {
                    if let Some(done) = inflight.next().await {
                        absorb(&mut summary, &mut dead, done);
                    }
                }
                inflight.push(self.publish_group(group));
            }
            if deadline.is_some_and(|d| Instant::now() + margin >= d) {
                // Stop at a batch boundary: the recipient just pushed opened the next batch.
                stopped_at = Some(resume.offset + summary.recipients - batcher.pending() as u64);
                summary.recipients -= batcher.pending() as u64;
                break;
            }
        }
        if stopped_at.is_none() {
            if let Some(last) = batcher.flush() {
                summary.batches += 1;
                if let Some(group) = grouper.push(last) {
                    inflight.push(self.publish_group(group));
                }
            }
        }
        if let Some(group) = grouper.take() {
            inflight.push(self.publish_group(group));
        }
        while let Some(done) = inflight.next().await {
            absorb(&mut summary, &mut dead, done);
        }
        self.dead_letter(&job_id, &mut summary, dead).await?;

        if let Some(offset) = stopped_at {
            let mut next = request;
            next.job_id = Some(job_id);
            next.resume = Some(Cursor { offset, next_seq: batcher.next_seq() });
            summary.continuation = Some(next);
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(?summary, "invocation finished");
        Ok(summary)
    }

    /// Publishes one group, retrying failed entries by the policy.
    async fn publish_group(&self, group: Vec<EncodedBatch>) -> GroupOutcome {
        let mut out = GroupOutcome { requests: 0, retried: 0, dead: Vec::new() };
        let mut pending = group;
        let mut attempt = 1;
        let mut rng = fastrand::Rng::new();
        while !pending.is_empty() {
            let entries =
                pending.iter().map(|b| PublishEntry { id: b.batch_id.to_string(), body: b.body.clone() }).collect();
            out.requests += 1;
            let failures: Vec<(String, FailureClass, String)> = match self.publisher.publish_batch(entries).await {
                Ok(failed) => failed
                    .into_iter()
                    .map(|f| {
                        let class = classify_publish_failure(&f.code, f.sender_fault);
                        (f.id, class, format!("{}: {}", f.code, f.message))
                    })
                    .collect(),
                Err(e) => pending.iter().map(|b| (b.batch_id.to_string(), e.class, e.message.clone())).collect(),
            };
            let mut retry = Vec::new();
            let mut worst = FailureClass::Transient;
            for (id, class, reason) in failures {
                let Some(pos) = pending.iter().position(|b| b.batch_id.as_str() == id) else {
                    tracing::warn!(entry = %id, "publish response names an entry that was not sent");
                    continue;
                };
                let batch = pending.swap_remove(pos);
                if self.config.retry.should_retry(attempt, class) {
                    if matches!(class, FailureClass::Throttled { .. }) {
                        worst = class;
                    }
                    retry.push(batch);
                } else {
                    tracing::error!(batch_id = %batch.batch_id, %reason, attempt, "batch not published");
                    out.dead.push((batch, reason));
                }
            }
            out.retried += retry.len() as u64;
            pending = retry;
            if !pending.is_empty() {
                tokio::time::sleep(self.config.retry.delay(attempt, worst, &mut rng)).await;
                attempt += 1;
            }
        }
        out
    }

    /// Records the recipients of unpublishable batches; only if that fails does the
    /// invocation fail (so the trigger retries the job: the batch ids do not change).
    async fn dead_letter(
        &self,
        job: &JobId,
        summary: &mut Summary,
        dead: Vec<(EncodedBatch, String)>,
    ) -> Result<(), Error> {
        for (enc, reason) in dead {
            let batch = RecipientBatch::from_json(&enc.body).map_err(|e| Error::Internal(e.to_string()))?;
            summary.failed_batches += 1;
            summary.dead_lettered_recipients += batch.recipients.len() as u64;
            let recipients: Vec<DeadRecipient> = batch
                .recipients
                .iter()
                .map(|r| DeadRecipient {
                    idempotency_key: r.key(job),
                    recipient: r.clone(),
                    cause: DeadCause::Unpublished,
                    reason: reason.clone(),
                    attempt: batch.attempt,
                })
                .collect();
            for record in DeadLetterRecord::recipients(&batch, recipients) {
                self.dead_letters
                    .write(record)
                    .await
                    .map_err(|e| Error::DeadLetter(format!("batch {}: {e}", enc.batch_id)))?;
            }
        }
        Ok(())
    }
}

fn absorb(summary: &mut Summary, dead: &mut Vec<(EncodedBatch, String)>, done: GroupOutcome) {
    summary.publish_requests += done.requests;
    summary.retried_entries += done.retried;
    dead.extend(done.dead);
}
