//! Size-aware batching: recipients go into [`RecipientBatch`](crate::message::RecipientBatch)
//! bodies by count and by encoded bytes, and bodies go into `PublishBatch` requests by
//! entry count and aggregate size.
//!
//! A batch body is written as it fills, each recipient encoded once, so knowing a batch's
//! size costs nothing extra and a recipient stream of any length needs memory for one
//! batch only. The bytes are exactly those `serde_json` writes for a `RecipientBatch`
//! (a test holds the two together), so the worker decodes them with the ordinary type.

use serde::Serialize;

use crate::error::FieldError;
use crate::ids::{BatchId, JobId};
use crate::limits::{SNS_PUBLISH_BATCH_MAX_BYTES, SNS_PUBLISH_BATCH_MAX_ENTRIES};
use crate::message::{BatchLimits, Channel, Recipient};

/// One finished batch body, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// The batch's sequence number within the job, from 0.
    pub seq: u64,
    /// The batch's deterministic id.
    pub batch_id: BatchId,
    /// The message body (a v1 `RecipientBatch`).
    pub body: String,
    /// How many recipients it holds.
    pub recipients: usize,
}

/// Packs a stream of recipients into batch bodies of one job.
#[derive(Debug)]
pub struct Batcher {
    job_id: JobId,
    head: String,
    tail: String,
    limits: BatchLimits,
    next_seq: u64,
    body: Vec<u8>,
    empty_len: usize,
    count: usize,
    item: Vec<u8>,
}

const SUFFIX: &str = "]}";

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| panic!("encoding a plain value failed: {e}"))
}

impl Batcher {
    /// A batcher for `job_id`, starting at batch number `first_seq` (a continuation of a
    /// job starts where the previous invocation stopped). `payload` is raw JSON text.
    pub fn new(
        job_id: JobId,
        attempt: u32,
        channel: Channel,
        payload: &str,
        limits: BatchLimits,
        first_seq: u64,
    ) -> Self {
        // Field order is the declaration order of `RecipientBatch`.
        let head = format!("{{\"v\":1,\"job_id\":{},\"batch_id\":", json(job_id.as_str()));
        let tail =
            format!(",\"attempt\":{attempt},\"channel\":{},\"payload\":{payload},\"recipients\":[", json(&channel));
        let mut b = Self {
            job_id,
            head,
            tail,
            limits,
            next_seq: first_seq,
            body: Vec::with_capacity(limits.max_bytes),
            empty_len: 0,
            count: 0,
            item: Vec::with_capacity(256),
        };
        b.open();
        b
    }

    fn open(&mut self) {
        self.body.clear();
        self.body.extend_from_slice(self.head.as_bytes());
        let id = self.job_id.batch_id(self.next_seq);
        self.body.extend_from_slice(json(id.as_str()).as_bytes());
        self.body.extend_from_slice(self.tail.as_bytes());
        self.empty_len = self.body.len();
        self.count = 0;
    }

    /// The sequence number the next finished batch will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Recipients in the batch being filled.
    pub fn pending(&self) -> usize {
        self.count
    }

    /// Adds a recipient. Returns the full batch when `r` did not fit in it (`r` then opens
    /// the next one). A recipient too large for even an empty batch is an error and is not
    /// added.
    pub fn push(&mut self, r: &Recipient) -> Result<Option<EncodedBatch>, FieldError> {
        self.item.clear();
        serde_json::to_writer(&mut self.item, r).map_err(|e| FieldError::new("", e.to_string()))?;
        if self.empty_len + self.item.len() + SUFFIX.len() > self.limits.max_bytes {
            return Err(FieldError::new(
                "",
                format!(
                    "recipient encodes to {} bytes, too large for one batch of at most {} bytes",
                    self.item.len(),
                    self.limits.max_bytes
                ),
            ));
        }
        let sep = usize::from(self.count > 0);
        let fits = self.count < self.limits.max_recipients
            && self.body.len() + sep + self.item.len() + SUFFIX.len() <= self.limits.max_bytes;
        let full = if fits { None } else { Some(self.seal()) };
        if self.count > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(&self.item);
        self.count += 1;
        Ok(full)
    }

    fn seal(&mut self) -> EncodedBatch {
        self.body.extend_from_slice(SUFFIX.as_bytes());
        let seq = self.next_seq;
        let body = std::mem::replace(&mut self.body, Vec::with_capacity(self.limits.max_bytes));
        let done = EncodedBatch {
            seq,
            batch_id: self.job_id.batch_id(seq),
            // serde_json writes UTF-8 only; the lossy path is never taken.
            body: String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            recipients: self.count,
        };
        self.next_seq += 1;
        self.open();
        done
    }

    /// Closes the batch being filled, if it holds anyone.
    pub fn flush(&mut self) -> Option<EncodedBatch> {
        (self.count > 0).then(|| self.seal())
    }
}

/// Groups batch bodies into `PublishBatch` requests: at most 10 entries and at most
/// 256 KiB in all per request. With the default 64 KiB batches that is four per request.
#[derive(Debug, Default)]
pub struct PublishGrouper {
    group: Vec<EncodedBatch>,
    bytes: usize,
}

impl PublishGrouper {
    /// Adds a batch; returns a full group when `b` did not fit in the current one.
    pub fn push(&mut self, b: EncodedBatch) -> Option<Vec<EncodedBatch>> {
        let full = self.group.len() == SNS_PUBLISH_BATCH_MAX_ENTRIES
            || self.bytes + b.body.len() > SNS_PUBLISH_BATCH_MAX_BYTES;
        let out = if full && !self.group.is_empty() { self.take() } else { None };
        self.bytes += b.body.len();
        self.group.push(b);
        out
    }

    /// The group being filled, if any.
    pub fn take(&mut self) -> Option<Vec<EncodedBatch>> {
        self.bytes = 0;
        (!self.group.is_empty()).then(|| std::mem::take(&mut self.group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::RecipientBatch;

    fn job() -> JobId {
        JobId::parse("job-1").unwrap()
    }

    fn all_batches(n: usize, limits: BatchLimits, address: &str) -> Vec<EncodedBatch> {
        let mut b = Batcher::new(job(), 1, Channel::Webhook, r#"{"title":"hi \"there\""}"#, limits, 0);
        let mut out = Vec::new();
        for i in 0..n {
            if let Some(full) = b.push(&Recipient::new(format!("user-{i}"), address)).unwrap() {
                out.push(full);
            }
        }
        out.extend(b.flush());
        out
    }

    #[test]
    fn bodies_are_exactly_what_serde_writes() {
        let batches = all_batches(2500, BatchLimits::default(), "https://example.com/hook?a=\"b\"");
        for enc in &batches {
            let decoded = RecipientBatch::from_json(&enc.body).unwrap();
            assert_eq!(decoded.to_json(), enc.body);
            assert_eq!(decoded.recipients.len(), enc.recipients);
            assert_eq!(decoded.batch_id, enc.batch_id);
        }
    }

    #[test]
    fn batches_respect_bytes_and_count_and_lose_no_one() {
        for limits in [
            BatchLimits::default(),
            BatchLimits { max_recipients: 7, max_bytes: 65536 },
            BatchLimits { max_recipients: 10_000, max_bytes: 2048 },
        ] {
            let batches = all_batches(3001, limits, "https://example.com/x");
            let mut ids = Vec::new();
            for (i, enc) in batches.iter().enumerate() {
                assert!(enc.body.len() <= limits.max_bytes, "{} > {}", enc.body.len(), limits.max_bytes);
                assert!(enc.recipients <= limits.max_recipients);
                assert_eq!(enc.seq, i as u64);
                let d = RecipientBatch::from_json(&enc.body).unwrap();
                ids.extend(d.recipients.into_iter().map(|r| r.id.0));
            }
            let expected: Vec<_> = (0..3001).map(|i| format!("user-{i}")).collect();
            assert_eq!(ids, expected, "every recipient exactly once, in order");
        }
    }

    #[test]
    fn default_batches_fill_most_of_one_billing_chunk() {
        let batches =
            all_batches(10_000, BatchLimits { max_recipients: 10_000, max_bytes: 65536 }, "https://example.com/x");
        let first = &batches[0];
        assert!(first.body.len() > 65536 - 100, "a full batch uses the chunk: {}", first.body.len());
    }

    #[test]
    fn ids_are_deterministic_across_runs_and_continuations() {
        let a = all_batches(500, BatchLimits { max_recipients: 100, max_bytes: 65536 }, "https://e.com/");
        let b = all_batches(500, BatchLimits { max_recipients: 100, max_bytes: 65536 }, "https://e.com/");
        assert_eq!(a, b);
        let mut cont = Batcher::new(job(), 1, Channel::Webhook, "null", BatchLimits::default(), 42);
        cont.push(&Recipient::new("x", "https://e.com/")).unwrap();
        assert_eq!(cont.flush().unwrap().batch_id.as_str(), "job-1-00000042");
    }

    #[test]
    fn oversized_recipient_is_an_error_not_a_batch() {
        let mut b =
            Batcher::new(job(), 1, Channel::Log, "null", BatchLimits { max_recipients: 10, max_bytes: 1024 }, 0);
        b.push(&Recipient::new("small", "a")).unwrap();
        let e = b.push(&Recipient::new("big", "x".repeat(2000))).unwrap_err();
        assert!(e.message.contains("too large for one batch"), "{e}");
        let rest = b.flush().unwrap();
        assert_eq!(rest.recipients, 1);
    }

    #[test]
    fn publish_groups_hold_at_most_ten_entries_and_256_kib() {
        let mut g = PublishGrouper::default();
        let mk = |seq: u64, len: usize| EncodedBatch {
            seq,
            batch_id: job().batch_id(seq),
            body: "x".repeat(len),
            recipients: 1,
        };
        let mut groups = Vec::new();
        for i in 0..25 {
            groups.extend(g.push(mk(i, 100)));
        }
        groups.extend(g.take());
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);

        let mut groups = Vec::new();
        for i in 0..9 {
            groups.extend(g.push(mk(i, 65536)));
        }
        groups.extend(g.take());
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 1]);
        for grp in &groups {
            assert!(grp.iter().map(|b| b.body.len()).sum::<usize>() <= SNS_PUBLISH_BATCH_MAX_BYTES);
        }
    }
}
