//! Accounting for every recipient at the end of a run, whatever ran it: delivered (the
//! ledger saw it), dead-lettered (a record in the dead-letter queue names it), or lost.

use std::collections::HashMap;
use std::fmt::Write as _;

use fanout_common::{
    BatchLimits, Channel, DeadCause, DeadLetter, DeadLetterRecord, FanoutRequest, IdempotencyKey, JobId, ObjectSource,
    RecipientSource, SyntheticSource,
};
use fanout_worker::decode::decode_body;

use crate::faults::FaultPlan;
use crate::ledger::Ledger;
use crate::report::Report;
use crate::tally::Tally;

/// Prefix of the synthetic recipient ids (`r0`, `r1`, …) that [`account`] walks.
pub const ID_PREFIX: &str = "r";

/// A load-test job: a fresh job id and the request for `count` recipients at `address` —
/// the recipients [`account`] accounts for — generated, or read from `object` (written
/// with the same ids by [`crate::objects::ObjectSpec`]).
pub fn loadtest_job(
    channel: Channel,
    count: u64,
    address: String,
    limits: BatchLimits,
    object: Option<ObjectSource>,
) -> anyhow::Result<(JobId, FanoutRequest)> {
    let job_id = JobId::parse(&format!("loadtest-{}", uuid::Uuid::new_v4().simple()))?;
    let request = FanoutRequest {
        job_id: Some(job_id.clone()),
        channel,
        payload: Some(serde_json::value::RawValue::from_string(
            r#"{"event":"loadtest","text":"hello from fanout"}"#.into(),
        )?),
        recipients: match object {
            Some(o) => RecipientSource::S3(o),
            None => RecipientSource::Synthetic(SyntheticSource { count, address, id_prefix: ID_PREFIX.into() }),
        },
        limits,
        resume: None,
    };
    Ok((job_id, request))
}

/// Why one recipient is in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    /// A record written by the producer or the worker.
    Cause(DeadCause),
    /// Its message was moved there by the queue's redrive policy.
    Redriven,
}

/// What the dead-letter queue holds, by idempotency key.
#[derive(Debug, Default)]
pub struct DeadLetterIndex {
    /// Dead recipients.
    pub by_key: HashMap<u128, Dead>,
    /// Poison messages recorded.
    pub poison: u64,
    /// Lines of a recipient object recorded as not a recipient.
    pub rejected_lines: u64,
    /// Messages that were neither a record nor a batch.
    pub unreadable: u64,
}

impl DeadLetterIndex {
    /// Reads the bodies of the dead-letter queue: records written by producer and worker,
    /// and batches the redrive policy moved there.
    pub fn read<'a>(bodies: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for body in bodies {
            if let Ok(rec) = DeadLetterRecord::from_json(body) {
                match rec.record {
                    DeadLetter::Recipients { recipients, .. } => {
                        for r in recipients {
                            out.by_key.entry(r.idempotency_key.0).or_insert(Dead::Cause(r.cause));
                        }
                    }
                    DeadLetter::Poison { .. } => out.poison += 1,
                    DeadLetter::Rejected { lines, .. } => out.rejected_lines += lines.len() as u64,
                }
            } else if let Ok(batch) = decode_body(body) {
                for r in &batch.recipients {
                    out.by_key.entry(r.key(&batch.job_id).0).or_insert(Dead::Redriven);
                }
            } else {
                out.unreadable += 1;
                tracing::error!(body = %&body[..body.len().min(200)], "unreadable message in the dead-letter queue");
            }
        }
        out
    }
}

/// Fills `report`'s recipient counts for the synthetic recipients of a [`loadtest_job`].
pub fn account(report: &mut Report, job: &JobId, ledger: &Ledger, plan: &FaultPlan, dead: &DeadLetterIndex) {
    let mut id = String::new();
    report.poison_messages = dead.poison;
    report.rejected_lines = dead.rejected_lines;
    for n in 0..report.recipients {
        id.clear();
        let _ = write!(id, "{ID_PREFIX}{n}");
        let key = IdempotencyKey::derive(job.as_str(), &id);
        let count = ledger.count(key);
        if plan.is_permanent(key) {
            report.expected_permanent += 1;
        }
        if count > 0 {
            report.delivered += 1;
            report.duplicates += u64::from(count - 1);
        } else {
            dead_or_lost(report, dead.by_key.get(&key.0));
        }
    }
}

/// Fills `report`'s recipient counts for a producer-only run: published (the tally saw it
/// reach the topic), dead-lettered, or lost.
pub fn account_published(report: &mut Report, job: &JobId, tally: &Tally, dead: &DeadLetterIndex) {
    let mut id = String::new();
    report.poison_messages = dead.poison;
    report.rejected_lines = dead.rejected_lines;
    report.duplicates = tally.duplicates();
    if tally.foreign() > 0 {
        tracing::error!(foreign = tally.foreign(), "recipients published that are not of this job");
    }
    for n in 0..report.recipients {
        if tally.seen(n) {
            report.delivered += 1;
            continue;
        }
        id.clear();
        let _ = write!(id, "{ID_PREFIX}{n}");
        let key = IdempotencyKey::derive(job.as_str(), &id);
        dead_or_lost(report, dead.by_key.get(&key.0));
    }
}

fn dead_or_lost(report: &mut Report, dead: Option<&Dead>) {
    let Some(cause) = dead else {
        report.lost += 1;
        return;
    };
    report.dead_lettered += 1;
    let c = &mut report.dead_letter_causes;
    match cause {
        Dead::Cause(DeadCause::Permanent) => c.permanent += 1,
        Dead::Cause(DeadCause::Exhausted) => c.exhausted += 1,
        Dead::Cause(DeadCause::Unpublished) => c.unpublished += 1,
        Dead::Cause(DeadCause::Invalid) => c.invalid += 1,
        Dead::Redriven => c.max_receive_count += 1,
    }
}
