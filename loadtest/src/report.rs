//! The load-test report: what happened to every recipient, how fast, and what the same run
//! would cost on AWS.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ledger::Latency;

/// AWS list prices the cost model uses (us-east-1, on-demand, free tier ignored).
pub mod prices {
    /// SNS: per million publish requests; each 64 KiB chunk of a request is one request.
    pub const SNS_PUBLISH_PER_MILLION: f64 = 0.50;
    /// SQS standard: per million requests; each 64 KiB chunk of a payload is one request.
    /// SNS deliveries into SQS cost nothing on the SNS side but are SQS requests.
    pub const SQS_PER_MILLION: f64 = 0.40;
    /// S3 Standard: per thousand GET requests.
    pub const S3_GET_PER_THOUSAND: f64 = 0.000_4;
    /// Lambda: per million invocations.
    pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
    /// Lambda on arm64: per GB-second.
    pub const LAMBDA_ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
}

/// Requests per AWS service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Requests {
    /// SNS `PublishBatch` requests.
    pub sns_publish: u64,
    /// SQS `SendMessage(Batch)` requests by the worker (re-enqueues, dead letters).
    pub sqs_send: u64,
    /// SQS messages delivered by the SNS subscription.
    pub sqs_sns_deliveries: u64,
    /// SQS `ReceiveMessage` requests by the event source mapping.
    pub sqs_receive: u64,
    /// SQS `DeleteMessageBatch` requests by the event source mapping.
    pub sqs_delete: u64,
    /// SQS `ChangeMessageVisibility` requests.
    pub sqs_change_visibility: u64,
    /// Producer invocations (continuations included).
    pub lambda_producer_invocations: u64,
    /// S3 `GetObject` requests of the producer (one per invocation reading an object, two
    /// for a CSV continuation: it reads the header again).
    #[serde(default)]
    pub s3_get: u64,
    /// Worker invocations.
    pub lambda_worker_invocations: u64,
}

/// Why recipients were delivered more than once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DuplicateCauses {
    /// Messages the queue stored twice (the at-least-once model, `--duplicates`).
    pub injected_duplicate_messages: u64,
    /// Receives of a message that had been received before (visibility timeout expired,
    /// whole-batch failure, reported item failure).
    pub redelivered_messages: u64,
}

/// Why recipients ended in the dead-letter queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeadLetterCauses {
    /// Refused for good by the receiver.
    pub permanent: u64,
    /// Retries ran out.
    pub exhausted: u64,
    /// Their batch could not be published.
    pub unpublished: u64,
    /// Could not be delivered as given.
    pub invalid: u64,
    /// Their message was moved by the queue's redrive policy (`maxReceiveCount`).
    pub max_receive_count: u64,
}

/// What the run would cost on AWS, in US dollars.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cost {
    /// SNS publish chunks.
    pub sns_billed_requests: u64,
    /// SQS request chunks (sends, SNS deliveries, receives, deletes).
    pub sqs_billed_requests: u64,
    /// Lambda GB-seconds (producer and worker).
    pub lambda_gb_seconds: f64,
    /// SNS.
    pub sns_usd: f64,
    /// SQS.
    pub sqs_usd: f64,
    /// Lambda requests and compute.
    pub lambda_usd: f64,
    /// S3 reads of the recipient object.
    #[serde(default)]
    pub s3_usd: f64,
    /// All of it.
    pub total_usd: f64,
    /// Per million recipients.
    pub usd_per_million_recipients: f64,
}

/// The report of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The runtime (`embedded`, `aws`).
    pub target: String,
    /// `pipeline` (producer to receivers) or `producer` (the producer alone: recipients
    /// published, checked at the topic).
    #[serde(default)]
    pub mode: String,
    /// Where the recipients came from: `synthetic`, or the object's `s3://` URL.
    #[serde(default)]
    pub source: String,
    /// The channel.
    pub channel: String,
    /// The job.
    pub job_id: String,
    /// Recipients in the job.
    pub recipients: u64,
    /// Recipients delivered at least once.
    pub delivered: u64,
    /// Recipients not delivered, each in a dead-letter record with its reason.
    pub dead_lettered: u64,
    /// Recipients neither delivered nor dead-lettered. Must be 0.
    pub lost: u64,
    /// Deliveries beyond the first of a recipient (receivers drop them by idempotency key).
    pub duplicates: u64,
    /// Why duplicates happened.
    pub duplicate_causes: DuplicateCauses,
    /// Recipients the receiver was set to refuse for good (the fault plan).
    pub expected_permanent: u64,
    /// Why recipients were dead-lettered.
    pub dead_letter_causes: DeadLetterCauses,
    /// Poison messages dead-lettered.
    pub poison_messages: u64,
    /// Lines of the recipient object dead-lettered as not a recipient.
    #[serde(default)]
    pub rejected_lines: u64,
    /// Recipients re-enqueued for another attempt (each counts once per retry).
    pub retries: u64,
    /// Attempts the receiver refused.
    pub refused_attempts: u64,
    /// Batches the producer published.
    pub batches: u64,
    /// The producer function (`aws` target): its logs count the invocations a
    /// self-continued job took.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub producer_function: String,
    /// The producer went on by invoking itself (the `aws` target sees only the first
    /// invocation's summary then).
    #[serde(default)]
    pub producer_self_invoked: bool,
    /// Delivered recipients per second of wall time.
    pub recipients_per_sec: f64,
    /// First-delivery latency from job start.
    pub latency_ms: Latency,
    /// Requests per service.
    pub requests: Requests,
    /// The AWS cost of the same run.
    pub cost: Cost,
    /// Peak resident memory of this process.
    pub peak_rss_bytes: u64,
    /// From job start to the last recipient settled.
    pub wall_seconds: f64,
    /// Simulated seconds per real second of the engine's clock.
    pub time_scale: f64,
}

impl Report {
    /// Fills in the cost from the counts.
    pub fn price(&mut self, sns_chunks: u64, sqs_chunks: u64, gb_seconds: f64) {
        let m = 1_000_000.0;
        let invocations = self.requests.lambda_producer_invocations + self.requests.lambda_worker_invocations;
        let sns = sns_chunks as f64 / m * prices::SNS_PUBLISH_PER_MILLION;
        let sqs = sqs_chunks as f64 / m * prices::SQS_PER_MILLION;
        let lambda = invocations as f64 / m * prices::LAMBDA_REQUESTS_PER_MILLION
            + gb_seconds * prices::LAMBDA_ARM64_PER_GB_SECOND;
        let s3 = self.requests.s3_get as f64 / 1000.0 * prices::S3_GET_PER_THOUSAND;
        let total = sns + sqs + lambda + s3;
        self.cost = Cost {
            sns_billed_requests: sns_chunks,
            sqs_billed_requests: sqs_chunks,
            lambda_gb_seconds: gb_seconds,
            sns_usd: sns,
            sqs_usd: sqs,
            lambda_usd: lambda,
            s3_usd: s3,
            total_usd: total,
            usd_per_million_recipients: if self.recipients > 0 { total / self.recipients as f64 * m } else { 0.0 },
        };
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        let r = &self.requests;
        let d = &self.dead_letter_causes;
        let c = &self.cost;
        writeln!(
            f,
            "fanout load test — {} target, {} mode, {} channel, job {}",
            self.target, self.mode, self.channel, self.job_id
        )?;
        writeln!(f, "  source          {}", self.source)?;
        writeln!(f, "  recipients      {:>12}", self.recipients)?;
        writeln!(f, "  delivered       {:>12}", self.delivered)?;
        writeln!(
            f,
            "  dead-lettered   {:>12}   (permanent {}, exhausted {}, unpublished {}, invalid {}, maxReceiveCount {}; expected permanent {})",
            self.dead_lettered, d.permanent, d.exhausted, d.unpublished, d.invalid, d.max_receive_count, self.expected_permanent
        )?;
        writeln!(f, "  LOST            {:>12}", self.lost)?;
        writeln!(
            f,
            "  duplicates      {:>12}   (injected duplicate messages {}, redelivered messages {})",
            self.duplicates,
            self.duplicate_causes.injected_duplicate_messages,
            self.duplicate_causes.redelivered_messages
        )?;
        writeln!(
            f,
            "  retries         {:>12}   (refused attempts {}, poison messages {}, rejected lines {})",
            self.retries, self.refused_attempts, self.poison_messages, self.rejected_lines
        )?;
        writeln!(
            f,
            "  throughput      {:>12.0} recipients/s over {:.2} s",
            self.recipients_per_sec, self.wall_seconds
        )?;
        writeln!(f, "  latency (ms)    p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}", l.p50, l.p90, l.p99, l.max)?;
        writeln!(
            f,
            "  requests        SNS publish {}; SQS send {}, SNS deliveries {}, receive {}, delete {}, visibility {}; Lambda producer {}, worker {}; S3 GET {}",
            r.sns_publish, r.sqs_send, r.sqs_sns_deliveries, r.sqs_receive, r.sqs_delete, r.sqs_change_visibility,
            r.lambda_producer_invocations, r.lambda_worker_invocations, r.s3_get
        )?;
        writeln!(
            f,
            "  AWS cost        ${:.4} (SNS ${:.4} for {} chunks, SQS ${:.4}, Lambda ${:.4} for {:.1} GB-s, S3 ${:.6}) = ${:.4} per million recipients",
            c.total_usd, c.sns_usd, c.sns_billed_requests, c.sqs_usd, c.lambda_usd, c.lambda_gb_seconds, c.s3_usd,
            c.usd_per_million_recipients
        )?;
        write!(f, "  peak memory     {:>12.1} MiB", self.peak_rss_bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Peak resident set size of this process (`VmHWM`), where the platform tells.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
