//! The producer's handler: request → validated → recipient stream → batches →
//! `PublishBatch` groups with bounded concurrency → a summary.
//!
//! The deadline is watched at every batch boundary: when less than the margin is left, the
//! invocation stops before the batch the last recipient opened and hands on a cursor
//! (source position and next batch number), so the job goes on where it stopped with the
//! same batch ids. Rejected lines of an object are written as dead-letter records, those
//! past the cursor only by the invocation that goes on from it.

use std::time::{Duration, Instant};

use fanout_common::batching::{Batcher, EncodedBatch, PublishGrouper};
use fanout_common::retry::classify_publish_failure;
use fanout_common::{
    Cursor, DeadCause, DeadLetterRecord, DeadLetters, DeadRecipient, FailureClass, FanoutRequest, JobId,
    RecipientBatch, RecipientSource, RejectedLine, RetryPolicy,
};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use crate::publish::{PublishEntry, Publisher};
use crate::source::{self, Item, NoObjects, Objects, Position};
use crate::Error;

/// Rejected lines kept before they are written as one dead-letter record.
const REJECTED_PER_RECORD: usize = 500;

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
    /// Stop one invocation after this long even if its deadline is further away (`None`:
    /// run until the deadline margin). Bounds the work a retried invocation repeats.
    pub max_invocation: Option<Duration>,
    /// Most invocations one job may take; a continuation beyond is refused (with its cursor
    /// in the request, for an operator to resume).
    pub max_invocations: u32,
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
            max_invocation: None,
            max_invocations: 10_000,
        }
    }
}

/// What one invocation did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The job (generated when the request named none).
    pub job_id: String,
    /// Recipients read from the source and published (or dead-lettered) in this invocation.
    pub recipients: u64,
    /// Lines of an object that were not a valid recipient, written as dead-letter records.
    #[serde(default)]
    pub rejected_lines: u64,
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
    /// Where the job goes on when the deadline stopped this invocation first: the rest of
    /// the job as a request with a cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<FanoutRequest>,
    /// The function already invoked itself with `continuation` (the caller must not).
    #[serde(default)]
    pub continued: bool,
}

/// The producer: a publisher, a dead-letter target and an object store, plus its
/// configuration.
pub struct Producer<P, D, O = NoObjects> {
    publisher: P,
    dead_letters: D,
    objects: O,
    config: ProducerConfig,
}

struct GroupOutcome {
    requests: u64,
    retried: u64,
    dead: Vec<(EncodedBatch, String)>,
}

impl<P: Publisher, D: DeadLetters> Producer<P, D> {
    /// A producer publishing through `publisher`, recording unpublishable batches in
    /// `dead_letters`; it reads no objects until given a store.
    pub fn new(publisher: P, dead_letters: D, config: ProducerConfig) -> Self {
        Self { publisher, dead_letters, objects: NoObjects, config }
    }
}

impl<P: Publisher, D: DeadLetters, O: Objects> Producer<P, D, O> {
    /// The same producer reading recipient objects from `objects`.
    pub fn with_objects<O2: Objects>(self, objects: O2) -> Producer<P, D, O2> {
        Producer { publisher: self.publisher, dead_letters: self.dead_letters, objects, config: self.config }
    }

    /// The publisher, for callers that share it.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// The dead-letter target.
    pub fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    /// Runs one invocation of `request`. `deadline` is when the invocation will be killed
    /// (`None`: never); past `deadline - margin` no new batch is started and the summary
    /// carries a continuation. A source that cannot be opened fails the invocation before
    /// anything is published.
    pub async fn handle(&self, request: FanoutRequest, deadline: Option<Instant>) -> Result<Summary, Error> {
        let started = Instant::now();
        request.validate()?;
        let job_id = request.job_id.clone().unwrap_or_else(JobId::generate);
        let resume = request.resume.clone().unwrap_or_default();
        if resume.invocation >= self.config.max_invocations {
            return Err(Error::Continuation(format!(
                "job {job_id} has taken {} invocations, the most allowed (FANOUT_MAX_INVOCATIONS); the request holds its cursor",
                resume.invocation
            )));
        }
        let mut summary = Summary { job_id: job_id.to_string(), ..Summary::default() };
        tracing::info!(job_id = %job_id, channel = %request.channel, offset = resume.offset, next_seq = resume.next_seq, invocation = resume.invocation, "job started");
        let opened = source::open(&self.objects, &request, &resume).await?;
        let mut items = opened.items;

        let deadline = match (deadline, self.config.max_invocation) {
            (Some(d), Some(max)) => Some(d.min(started + max)),
            (d, max) => d.or(max.map(|m| started + m)),
        };
        // At most a third of the invocation goes to the margin (Lambda's default timeout
        // is 3 s).
        let margin = deadline.map_or(self.config.deadline_margin, |d| {
            self.config.deadline_margin.min(d.saturating_duration_since(started) / 3)
        });
        let late = || deadline.is_some_and(|d| Instant::now() + margin >= d);

        let mut batcher =
            Batcher::new(job_id.clone(), 1, request.channel, request.payload_json(), request.limits, resume.next_seq);
        let mut grouper = PublishGrouper::default();
        let mut inflight = FuturesUnordered::new();
        let mut dead = Vec::new();
        let concurrency = self.config.publish_concurrency.max(1);
        let mut rejected: Vec<RejectedLine> = Vec::new();
        // `pos`: after the last item read; `first_pending`: before the first recipient of
        // the batch being filled (where a continuation must start to rebuild it).
        let mut pos = Position { offset: resume.offset, line: resume.line };
        let mut first_pending = pos;
        let mut stopped_at: Option<Position> = None;
        let mut read_error = None;

        loop {
            let read = match items.next().await {
                None => break,
                Some(Ok(read)) => read,
                Some(Err(e)) => {
                    read_error = Some(e);
                    break;
                }
            };
            let before = std::mem::replace(&mut pos, read.end);
            let r = match read.item {
                Item::Recipient(r) => r,
                Item::Rejected(line) => {
                    tracing::debug!(line = line.line, reason = %line.reason, "line rejected");
                    rejected.push(line);
                    if rejected.len() >= REJECTED_PER_RECORD {
                        // Only lines no continuation will read again.
                        let safe = if batcher.pending() == 0 { pos.line } else { first_pending.line };
                        let n = rejected.partition_point(|l| l.line <= safe);
                        let lines: Vec<_> = rejected.drain(..n).collect();
                        self.reject(&job_id, &request, &mut summary, lines).await?;
                    }
                    if late() {
                        // Lines without recipients can run a long way: stop after this
                        // one, with the recipients read so far in a short batch.
                        stopped_at = Some(pos);
                        break;
                    }
                    continue;
                }
            };
            let opens_batch = batcher.pending() == 0;
            let full = batcher.push(&r).map_err(|e| Error::Internal(e.to_string()))?;
            summary.recipients += 1;
            if opens_batch || full.is_some() {
                first_pending = before;
            }
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
            if late() {
                // Stop at a batch boundary: the recipient just pushed opened the next batch.
                stopped_at = Some(first_pending);
                summary.recipients -= batcher.pending() as u64;
                break;
            }
        }
        if let Some(e) = read_error {
            // Go on from the last whole batch, if this invocation got anywhere; otherwise
            // the source is unreadable and the invocation fails.
            if summary.batches == 0 {
                return Err(e.into());
            }
            tracing::warn!(error = %e, "reading the source failed; the job goes on from the last whole batch");
            stopped_at = Some(first_pending);
            summary.recipients -= batcher.pending() as u64;
        }
        let stopped_mid_batch = matches!(stopped_at, Some(at) if at != first_pending);
        if stopped_at.is_none() || stopped_mid_batch {
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
        if let Some(at) = stopped_at {
            // Lines past the cursor are read again by the continuation.
            rejected.retain(|l| l.line <= at.line);
        }
        self.reject(&job_id, &request, &mut summary, rejected).await?;

        if let Some(at) = stopped_at {
            let cursor = Cursor {
                offset: at.offset,
                next_seq: batcher.next_seq(),
                line: at.line,
                etag: opened.etag,
                invocation: resume.invocation + 1,
            };
            summary.continuation = Some(continuation(request, job_id, cursor));
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(?summary, "invocation finished");
        Ok(summary)
    }

    /// Writes rejected lines of the job's object as one dead-letter record.
    async fn reject(
        &self,
        job: &JobId,
        request: &FanoutRequest,
        summary: &mut Summary,
        lines: Vec<RejectedLine>,
    ) -> Result<(), Error> {
        if lines.is_empty() {
            return Ok(());
        }
        let source = match &request.recipients {
            RecipientSource::S3(o) => o.url(),
            _ => "request".into(),
        };
        let count = lines.len() as u64;
        self.dead_letters
            .write(DeadLetterRecord::rejected(job, source, lines))
            .await
            .map_err(|e| Error::DeadLetter(format!("rejected lines: {e}")))?;
        summary.rejected_lines += count;
        Ok(())
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

/// The rest of the job from `cursor`. An inline list is cut to the recipients not yet
/// read, so the request shrinks as the job goes on.
fn continuation(mut next: FanoutRequest, job_id: JobId, mut cursor: Cursor) -> FanoutRequest {
    if let RecipientSource::Inline(list) = &mut next.recipients {
        list.drain(..usize::try_from(cursor.offset).unwrap_or(usize::MAX).min(list.len()));
        (cursor.offset, cursor.line) = (0, 0);
    }
    next.job_id = Some(job_id);
    next.resume = Some(cursor);
    next
}

fn absorb(summary: &mut Summary, dead: &mut Vec<(EncodedBatch, String)>, done: GroupOutcome) {
    summary.publish_requests += done.requests;
    summary.retried_entries += done.retried;
    dead.extend(done.dead);
}
