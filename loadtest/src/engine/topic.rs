//! An SNS standard topic in memory: `PublishBatch` with its limits and error codes, and
//! delivery to SQS subscriptions, raw or wrapped in the notification envelope.
//!
//! Limits kept: at most 10 entries, distinct entry ids of at most 80 letters, digits, `-`
//! and `_`, at most 256 KiB per message and per request; per-entry failures are reported in
//! `Failed` with `SenderFault`. Injected faults fail an entry with `Throttled` (not a sender
//! fault), as SNS does when a topic's publish quota is exceeded. Differences from AWS: no
//! message attributes, no filter policies, no signature in the envelope.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fanout_common::limits::{
    BILLING_CHUNK_BYTES, SNS_BATCH_ENTRY_ID_MAX_CHARS, SNS_MAX_MESSAGE_BYTES, SNS_PUBLISH_BATCH_MAX_BYTES,
    SNS_PUBLISH_BATCH_MAX_ENTRIES,
};
use fanout_common::EdgeError;
use fanout_producer::{EntryFailure, PublishEntry, Publisher};

use crate::engine::queue::Queue;

/// An SNS API error that fails a whole `PublishBatch` request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// No entries.
    #[error("EmptyBatchRequest: the batch request contains no entries")]
    EmptyBatchRequest,
    /// More than 10 entries.
    #[error("TooManyEntriesInBatchRequest: {0} entries, at most 10")]
    TooManyEntriesInBatchRequest(usize),
    /// The entries add up to more than 256 KiB.
    #[error("BatchRequestTooLong: {0} bytes in all, at most 262144")]
    BatchRequestTooLong(usize),
    /// Two entries share an id.
    #[error("BatchEntryIdsNotDistinct: {0}")]
    BatchEntryIdsNotDistinct(String),
    /// An entry id breaks the rules.
    #[error("InvalidBatchEntryId: {0:?}")]
    InvalidBatchEntryId(String),
}

/// A subscription of a queue to the topic.
pub struct Subscription {
    /// The subscribed queue.
    pub queue: Arc<Queue>,
    /// Raw message delivery: the body as published, without the SNS envelope.
    pub raw: bool,
}

/// Request counters, for the report and the cost model.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// `PublishBatch` requests, refused ones included.
    pub publish_requests: AtomicU64,
    /// Messages accepted.
    pub messages_published: AtomicU64,
    /// Entries failed (faults and sender faults).
    pub failed_entries: AtomicU64,
    /// 64 KiB chunks of accepted requests (each billed as one publish).
    pub billed_chunks: AtomicU64,
}

/// One topic.
pub struct Topic {
    arn: String,
    subscriptions: Vec<Subscription>,
    throttle_rate: f64,
    /// Counters of this topic.
    pub counters: TopicCounters,
}

/// The outcome of an accepted `PublishBatch` request.
#[derive(Debug, Default)]
pub struct PublishOutput {
    /// Entry ids published, with their message ids.
    pub successful: Vec<(String, String)>,
    /// Entries that failed.
    pub failed: Vec<EntryFailure>,
}

fn valid_entry_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= SNS_BATCH_ENTRY_ID_MAX_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Topic {
    /// A topic named `name` delivering to `subscriptions`; `throttle_rate` is the share of
    /// entries failed with `Throttled`.
    pub fn new(name: &str, subscriptions: Vec<Subscription>, throttle_rate: f64) -> Self {
        Self {
            arn: format!("arn:aws:sns:us-east-1:000000000000:{name}"),
            subscriptions,
            throttle_rate,
            counters: TopicCounters::default(),
        }
    }

    /// `PublishBatch`.
    pub fn publish_batch(&self, entries: &[PublishEntry]) -> Result<PublishOutput, SnsError> {
        self.counters.publish_requests.fetch_add(1, Ordering::Relaxed);
        if entries.is_empty() {
            return Err(SnsError::EmptyBatchRequest);
        }
        if entries.len() > SNS_PUBLISH_BATCH_MAX_ENTRIES {
            return Err(SnsError::TooManyEntriesInBatchRequest(entries.len()));
        }
        let mut ids = HashSet::new();
        for e in entries {
            if !valid_entry_id(&e.id) {
                return Err(SnsError::InvalidBatchEntryId(e.id.clone()));
            }
            if !ids.insert(e.id.as_str()) {
                return Err(SnsError::BatchEntryIdsNotDistinct(e.id.clone()));
            }
        }
        let total: usize = entries.iter().map(|e| e.body.len()).sum();
        if total > SNS_PUBLISH_BATCH_MAX_BYTES {
            return Err(SnsError::BatchRequestTooLong(total));
        }
        self.counters.billed_chunks.fetch_add(total.div_ceil(BILLING_CHUNK_BYTES).max(1) as u64, Ordering::Relaxed);
        let mut out = PublishOutput::default();
        for e in entries {
            let failure = |code: &str, message: &str, sender_fault| EntryFailure {
                id: e.id.clone(),
                code: code.into(),
                message: message.into(),
                sender_fault,
            };
            if e.body.is_empty() || e.body.len() > SNS_MAX_MESSAGE_BYTES {
                out.failed.push(failure("InvalidParameter", "message must be 1 byte to 256 KiB", true));
                continue;
            }
            if self.throttle_rate > 0.0 && fastrand::f64() < self.throttle_rate {
                out.failed.push(failure("Throttled", "rate exceeded (injected)", false));
                continue;
            }
            let message_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
            let raw: Arc<str> = e.body.as_str().into();
            for s in &self.subscriptions {
                let body = if s.raw { raw.clone() } else { self.envelope(&message_id, &e.body).into() };
                s.queue.deliver_from_sns(message_id.clone(), body);
            }
            out.successful.push((e.id.clone(), message_id.to_string()));
        }
        self.counters.messages_published.fetch_add(out.successful.len() as u64, Ordering::Relaxed);
        self.counters.failed_entries.fetch_add(out.failed.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// The notification envelope SNS wraps a message in when raw delivery is off.
    fn envelope(&self, message_id: &str, body: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": self.arn,
            "Message": body,
            "Timestamp": "1970-01-01T00:00:00.000Z",
            "SignatureVersion": "1",
        })
        .to_string()
    }
}

/// The producer's publish edge on this topic.
impl Publisher for Topic {
    async fn publish_batch(&self, entries: Vec<PublishEntry>) -> Result<Vec<EntryFailure>, EdgeError> {
        Topic::publish_batch(self, &entries).map(|o| o.failed).map_err(|e| EdgeError::permanent(e.to_string()))
    }
}
