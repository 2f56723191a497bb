//! The wire format: what a trigger sends the producer ([`FanoutRequest`]), what travels
//! through SNS and SQS ([`RecipientBatch`], version 1) and what an operator finds in the
//! dead-letter queue ([`DeadLetterRecord`]).

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, FieldError, Result};
use crate::ids::{BatchId, IdempotencyKey, JobId, RecipientId};
use crate::limits;

/// How recipients are reached. The worker picks its deliverer by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// HTTP POST of the payload to the recipient's address (an absolute URL).
    Webhook,
    /// One structured log line per delivery.
    Log,
    /// Delivers nowhere: measures the pipeline's own cost.
    Noop,
}

impl Channel {
    /// The channel's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Log => "log",
            Channel::Noop => "noop",
        }
    }

    /// Checks that `address` can be delivered to on this channel.
    pub fn check_address(self, address: &str) -> std::result::Result<(), String> {
        if address.is_empty() {
            return Err("must not be empty".into());
        }
        if address.len() > limits::RECIPIENT_ADDRESS_MAX_BYTES {
            return Err(format!("longer than {} bytes", limits::RECIPIENT_ADDRESS_MAX_BYTES));
        }
        if self == Channel::Webhook {
            match url::Url::parse(address) {
                Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {}
                Ok(u) => return Err(format!("scheme {:?} is not http or https", u.scheme())),
                Err(e) => return Err(format!("not an absolute URL ({e})")),
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient: who (the id, which keys idempotency) and where (the channel address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Stable id of the recipient within the job.
    pub id: RecipientId,
    /// Where to deliver: a URL for webhooks, free text for `log` and `noop`.
    pub address: String,
}

impl Recipient {
    /// A recipient from plain strings.
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Self {
        Self { id: RecipientId(id.into()), address: address.into() }
    }

    /// Checks the id and the address for `channel`; the error path is relative.
    pub fn check(&self, channel: Channel) -> std::result::Result<(), FieldError> {
        let id = self.id.as_str();
        if id.is_empty() || id.len() > limits::RECIPIENT_ID_MAX_BYTES {
            return Err(FieldError::new("id", format!("must be 1 to {} bytes", limits::RECIPIENT_ID_MAX_BYTES)));
        }
        if id.chars().any(char::is_control) {
            return Err(FieldError::new("id", "must not contain control characters"));
        }
        channel.check_address(&self.address).map_err(|m| FieldError::new("address", m))
    }

    /// The idempotency key of delivering to this recipient in `job`.
    pub fn key(&self, job: &JobId) -> IdempotencyKey {
        IdempotencyKey::derive(job.as_str(), self.id.as_str())
    }
}

/// How the producer packs recipients into batches (one batch = one SNS message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchLimits {
    /// Most recipients in one batch.
    pub max_recipients: usize,
    /// Most encoded bytes of one batch; the default is one 64 KiB billing chunk.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_recipients: limits::DEFAULT_MAX_RECIPIENTS_PER_BATCH, max_bytes: limits::BILLING_CHUNK_BYTES }
    }
}

/// Bytes a batch must keep free for at least one recipient of the largest allowed size,
/// even if every character of it needs escaping.
pub const ONE_RECIPIENT_RESERVE_BYTES: usize =
    2 * (limits::RECIPIENT_ID_MAX_BYTES + limits::RECIPIENT_ADDRESS_MAX_BYTES) + 32;

impl BatchLimits {
    fn check(&self) -> std::result::Result<(), FieldError> {
        if self.max_recipients == 0 || self.max_recipients > limits::MAX_RECIPIENTS_PER_BATCH {
            return Err(FieldError::new(
                "max_recipients",
                format!("must be 1 to {}, got {}", limits::MAX_RECIPIENTS_PER_BATCH, self.max_recipients),
            ));
        }
        let min = 1024;
        if self.max_bytes < min || self.max_bytes > limits::SNS_MAX_MESSAGE_BYTES {
            return Err(FieldError::new(
                "max_bytes",
                format!(
                    "must be {min} to {} (the SNS message limit), got {}",
                    limits::SNS_MAX_MESSAGE_BYTES,
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Where the producer reads recipients from. Each source is streamed, never collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RecipientSource {
    /// A list inside the request (bounded by the invoke payload: 6 MB sync, 1 MB async).
    Inline(Vec<Recipient>),
    /// `count` generated recipients `<id_prefix><n>` (n = 0..count), all at `address`;
    /// for load tests.
    Synthetic(SyntheticSource),
    /// An object in S3 holding one recipient per line (JSON Lines, or CSV with a header
    /// row), streamed: any size.
    S3(ObjectSource),
}

/// Recipients kept in an S3 object, one per line.
///
/// JSON Lines: each line is an object whose `id_field` (a string or an integer) and
/// `address_field` (a string) are the recipient. CSV: the first line names the columns,
/// `id_field` and `address_field` pick two of them; fields may be quoted (RFC 4180) but a
/// record may not span lines. Blank lines are skipped. A line that is not a valid
/// recipient becomes a dead-letter record naming its line number; the job goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSource {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// A version of the object (versioned buckets); the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// How the lines are written.
    pub format: ObjectFormat,
    /// The field (JSON Lines) or column (CSV) holding the recipient id.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// The field or column holding the address.
    #[serde(default = "default_address_field")]
    pub address_field: String,
}

/// The line format of an [`ObjectSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

fn default_id_field() -> String {
    "id".into()
}

fn default_address_field() -> String {
    "address".into()
}

impl ObjectSource {
    /// The object as an `s3://` URL, for messages and records.
    pub fn url(&self) -> String {
        match &self.version_id {
            Some(v) => format!("s3://{}/{}?versionId={v}", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
    }

    fn check(&self) -> std::result::Result<(), FieldError> {
        if self.bucket.len() < 3 || self.bucket.len() > 63 || self.bucket.contains('/') {
            return Err(FieldError::new("bucket", format!("{:?} is not a bucket name", self.bucket)));
        }
        if self.key.is_empty() || self.key.len() > 1024 {
            return Err(FieldError::new("key", "must be 1 to 1024 bytes"));
        }
        for (name, field) in [("id_field", &self.id_field), ("address_field", &self.address_field)] {
            if field.is_empty() {
                return Err(FieldError::new(name, "must not be empty"));
            }
        }
        if self.id_field == self.address_field {
            return Err(FieldError::new("address_field", "must differ from id_field"));
        }
        Ok(())
    }
}

/// A generated recipient set, for load tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSource {
    /// How many recipients.
    pub count: u64,
    /// The address every recipient gets.
    pub address: String,
    /// Prefix of the generated ids; `r` gives `r0`, `r1`, …
    #[serde(default = "default_id_prefix")]
    pub id_prefix: String,
}

fn default_id_prefix() -> String {
    "r".into()
}

/// Most synthetic recipients one request may ask for.
pub const SYNTHETIC_MAX_COUNT: u64 = 1_000_000_000;

impl SyntheticSource {
    /// Recipient number `n` of this source.
    pub fn recipient(&self, n: u64) -> Recipient {
        Recipient { id: RecipientId(format!("{}{n}", self.id_prefix)), address: self.address.clone() }
    }
}

/// What a trigger asks the producer to do: deliver `payload` on `channel` to every
/// recipient of `recipients`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutRequest {
    /// The job's id; generated when absent. Naming it makes a re-run publish the same
    /// batch ids and idempotency keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// How to deliver.
    pub channel: Channel,
    /// What to deliver: any JSON value, at most [`limits::PAYLOAD_MAX_BYTES`] encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// Who to deliver to.
    pub recipients: RecipientSource,
    /// How to batch.
    #[serde(default)]
    pub limits: BatchLimits,
    /// Where to resume a job that one invocation could not finish before its deadline;
    /// set by the producer on the continuation it hands back, never by a trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Cursor>,
}

/// A position in a job: how much of the source is already published, and the sequence
/// number of the next batch. Batch ids stay deterministic across continuations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// Where to go on reading: recipients for inline and synthetic sources, bytes for an
    /// object.
    pub offset: u64,
    /// Sequence number of the next batch.
    pub next_seq: u64,
    /// Lines of an object read before `offset` (so line numbers in dead-letter records
    /// count from the start of the object).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub line: u64,
    /// The object's ETag when the job started: a continuation reads the same object or
    /// fails, never another object's bytes from the same offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Invocations of the job before this one (a guard against a runaway chain).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub invocation: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FanoutRequest {
    /// Decodes a request; errors name the offending field.
    pub fn from_json(s: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(s);
        serde_path_to_error::deserialize(de).map_err(Error::from_path_error)
    }

    /// The payload as JSON text (`null` when absent).
    pub fn payload_json(&self) -> &str {
        self.payload.as_deref().map_or("null", RawValue::get)
    }

    /// Checks everything a request can be checked for before anything is published.
    /// Inline recipients are checked one by one, duplicates included.
    pub fn validate(&self) -> std::result::Result<(), FieldError> {
        let payload = self.payload_json().len();
        if payload > limits::PAYLOAD_MAX_BYTES {
            return Err(FieldError::new(
                "payload",
                format!("{payload} bytes is over the {} byte limit", limits::PAYLOAD_MAX_BYTES),
            ));
        }
        self.limits.check().map_err(|e| e.under("limits"))?;
        if self.resume.is_some() && self.job_id.is_none() {
            return Err(FieldError::new("resume", "needs job_id: a continuation belongs to a named job"));
        }
        let envelope = 256 + 2 * limits::SNS_BATCH_ENTRY_ID_MAX_CHARS;
        if payload + envelope + ONE_RECIPIENT_RESERVE_BYTES > self.limits.max_bytes {
            return Err(FieldError::new(
                "payload",
                format!(
                    "{payload} bytes leaves no room for recipients within limits.max_bytes ({}); raise limits.max_bytes",
                    self.limits.max_bytes
                ),
            ));
        }
        match &self.recipients {
            RecipientSource::Inline(list) => {
                if list.is_empty() {
                    return Err(FieldError::new("recipients.inline", "must not be empty"));
                }
                let mut seen: HashMap<&str, usize> = HashMap::with_capacity(list.len());
                for (i, r) in list.iter().enumerate() {
                    let at = format!("recipients.inline[{i}]");
                    r.check(self.channel).map_err(|e| e.under(&at))?;
                    if let Some(first) = seen.insert(r.id.as_str(), i) {
                        return Err(FieldError::new(
                            format!("{at}.id"),
                            format!("duplicate of recipients.inline[{first}].id"),
                        ));
                    }
                }
            }
            RecipientSource::Synthetic(s) => {
                if s.count == 0 || s.count > SYNTHETIC_MAX_COUNT {
                    return Err(FieldError::new(
                        "recipients.synthetic.count",
                        format!("must be 1 to {SYNTHETIC_MAX_COUNT}, got {}", s.count),
                    ));
                }
                s.recipient(s.count - 1).check(self.channel).map_err(|e| e.under("recipients.synthetic"))?;
            }
            RecipientSource::S3(o) => o.check().map_err(|e| e.under("recipients.s3"))?,
        }
        Ok(())
    }
}

/// The wire format version marker: serialises as `1`, refuses anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match u64::deserialize(d)? {
            1 => Ok(V1),
            v => Err(serde::de::Error::custom(format!("unsupported message version {v}"))),
        }
    }
}

/// One SNS/SQS message: a slice of a job's recipients with everything needed to deliver
/// to them. `attempt` starts at 1 and grows each time failed recipients are re-enqueued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientBatch {
    /// Wire format version, always `1` here.
    pub v: V1,
    /// The job this batch belongs to.
    pub job_id: JobId,
    /// Deterministic id of this batch.
    pub batch_id: BatchId,
    /// Delivery attempt of every recipient in this batch, from 1.
    pub attempt: u32,
    /// How to deliver.
    pub channel: Channel,
    /// What to deliver (the request's payload, verbatim).
    pub payload: Box<RawValue>,
    /// Who to deliver to.
    pub recipients: Vec<Recipient>,
}

impl RecipientBatch {
    /// Decodes a message body; errors name the field.
    pub fn from_json(s: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(s);
        let batch: Self = serde_path_to_error::deserialize(de).map_err(Error::from_path_error)?;
        if batch.attempt == 0 {
            return Err(FieldError::new("attempt", "must be at least 1").into());
        }
        Ok(batch)
    }

    /// Encodes the message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(unreachable_encode)
    }

    /// A batch of the same job holding `recipients` only, under `batch_id` at `attempt`.
    pub fn derive(&self, batch_id: BatchId, attempt: u32, recipients: Vec<Recipient>) -> Self {
        Self {
            v: V1,
            job_id: self.job_id.clone(),
            batch_id,
            attempt,
            channel: self.channel,
            payload: self.payload.clone(),
            recipients,
        }
    }
}

/// Serialising plain structs of strings and numbers into a `String` cannot fail; this
/// keeps that claim in one place.
fn unreachable_encode(e: serde_json::Error) -> String {
    panic!("encoding a plain struct to JSON failed: {e}")
}

/// Why a recipient ended in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadCause {
    /// The receiver refused it for good (e.g. HTTP 4xx other than 408/429).
    Permanent,
    /// It kept failing transiently until the retry policy's attempts ran out.
    Exhausted,
    /// It could not be delivered as given (e.g. too large for one message).
    Invalid,
    /// Its batch could not be published to the topic (a sender fault, or the producer's
    /// retries ran out).
    Unpublished,
}

/// One recipient that will not be delivered, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadRecipient {
    /// The recipient as it was in the batch.
    #[serde(flatten)]
    pub recipient: Recipient,
    /// Its idempotency key, to find it in the receiver's logs.
    pub idempotency_key: IdempotencyKey,
    /// The class of failure.
    pub cause: DeadCause,
    /// The last error, as the deliverer saw it.
    pub reason: String,
    /// The attempt that failed last.
    pub attempt: u32,
}

/// What a dead-letter record holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadLetter {
    /// Recipients of one batch that failed for good. Holds the payload so the record can
    /// be replayed as a new request.
    Recipients {
        /// The job.
        job_id: JobId,
        /// The batch they came in.
        batch_id: BatchId,
        /// Their channel.
        channel: Channel,
        /// The payload they were not delivered (a parsed value: records are decoded
        /// through serde's buffering of tagged enums, which raw JSON cannot pass).
        payload: serde_json::Value,
        /// Who, and why.
        recipients: Vec<DeadRecipient>,
    },
    /// Lines of a recipient object that are not a valid recipient (the job went on
    /// without them).
    Rejected {
        /// The job.
        job_id: JobId,
        /// The object, as an `s3://` URL.
        source: String,
        /// Which lines, and why.
        lines: Vec<RejectedLine>,
    },
    /// A message the worker could not decode (a poison message).
    Poison {
        /// The SQS message id.
        message_id: String,
        /// What is wrong with it.
        reason: String,
        /// The body, cut to [`POISON_BODY_MAX_BYTES`].
        body: String,
    },
}

/// One line of a recipient object that is not a valid recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedLine {
    /// Its line number, from 1 at the start of the object (the CSV header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
    /// The line, cut to [`REJECTED_LINE_MAX_BYTES`].
    pub text: String,
}

/// How much of a rejected line a dead-letter record keeps.
pub const REJECTED_LINE_MAX_BYTES: usize = 1024;

impl RejectedLine {
    /// A rejected line; `text` is cut at a character boundary.
    pub fn new(line: u64, reason: String, text: &str) -> Self {
        Self { line, reason, text: cut(text, REJECTED_LINE_MAX_BYTES).into() }
    }
}

fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Most encoded bytes of the recipients in one dead-letter record (the payload, at most
/// [`limits::PAYLOAD_MAX_BYTES`], comes on top).
pub const DEAD_LETTER_RECIPIENTS_MAX_BYTES: usize = 512 * 1024;

/// How much of a poison message's body a dead-letter record keeps.
pub const POISON_BODY_MAX_BYTES: usize = 16 * 1024;

/// One dead-letter record, versioned like the batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// Wire format version, always `1` here.
    pub v: V1,
    /// What died and why.
    #[serde(flatten)]
    pub record: DeadLetter,
}

impl DeadLetterRecord {
    /// A record of a poison message; the body is cut at a character boundary.
    pub fn poison(message_id: &str, reason: String, body: &str) -> Self {
        let body = cut(body, POISON_BODY_MAX_BYTES).into();
        Self { v: V1, record: DeadLetter::Poison { message_id: message_id.into(), reason, body } }
    }

    /// A record of rejected lines of the object at `source`.
    pub fn rejected(job_id: &JobId, source: String, lines: Vec<RejectedLine>) -> Self {
        Self { v: V1, record: DeadLetter::Rejected { job_id: job_id.clone(), source, lines } }
    }

    /// Records of `recipients` of one batch, as few as fit: each record's recipients encode to
    /// at most [`DEAD_LETTER_RECIPIENTS_MAX_BYTES`], so a record stays far inside an SQS
    /// message (1 MiB) whatever the batch size and addresses.
    pub fn recipients(batch: &RecipientBatch, recipients: Vec<DeadRecipient>) -> Vec<Self> {
        let payload: serde_json::Value = serde_json::from_str(batch.payload.get()).unwrap_or(serde_json::Value::Null);
        let mut records = Vec::new();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let flush = |chunk: &mut Vec<DeadRecipient>, records: &mut Vec<Self>| {
            if !chunk.is_empty() {
                records.push(Self {
                    v: V1,
                    record: DeadLetter::Recipients {
                        job_id: batch.job_id.clone(),
                        batch_id: batch.batch_id.clone(),
                        channel: batch.channel,
                        payload: payload.clone(),
                        recipients: std::mem::take(chunk),
                    },
                });
            }
        };
        for r in recipients {
            let size = serde_json::to_vec(&r).map_or(0, |v| v.len()) + 1;
            if bytes + size > DEAD_LETTER_RECIPIENTS_MAX_BYTES {
                flush(&mut chunk, &mut records);
                bytes = 0;
            }
            bytes += size;
            chunk.push(r);
        }
        flush(&mut chunk, &mut records);
        records
    }

    /// Encodes the record.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(unreachable_encode)
    }

    /// Decodes a record.
    pub fn from_json(s: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(s);
        serde_path_to_error::deserialize(de).map_err(Error::from_path_error)
    }
}
