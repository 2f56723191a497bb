//! Running a job on a deployed stack and accounting for every recipient. The producer is
//! invoked once; a job it cannot finish in one invocation goes on by its own asynchronous
//! self-invocation (or, with self-invocation off, by this driver invoking it again with the
//! continuation). A producer-only run drains the work queue itself and checks every
//! recipient off as it arrives.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use fanout_common::{BatchLimits, Channel, FanoutRequest, ObjectFormat, ObjectSource};
use fanout_producer::Summary;

use crate::accounting::{account, account_published, loadtest_job, DeadLetterIndex};
use crate::aws::stack::StackNames;
use crate::faults::FaultPlan;
use crate::ledger::Ledger;
use crate::objects::ObjectRun;
use crate::report::{peak_rss_bytes, Report, Requests};
use crate::sink::Sink;
use crate::tally::Tally;

/// The worker as a consumer process instead of the event source mapping.
#[derive(Debug, Clone)]
pub struct ConsumerProcess {
    /// The `worker` binary.
    pub binary: PathBuf,
    /// Batches in flight.
    pub max_in_flight: usize,
    /// Extra environment (the consumer also inherits this process's).
    pub env: Vec<(String, String)>,
}

/// A run on a deployed stack.
#[derive(Debug, Clone)]
pub struct AwsRunConfig {
    /// Recipients in the job.
    pub recipients: u64,
    /// Faults injected by the sink.
    pub faults: FaultPlan,
    /// How the producer batches.
    pub batch_limits: BatchLimits,
    /// Give up after this much wall time.
    pub max_wall: Duration,
    /// Run the worker as a consumer process.
    pub consumer: Option<ConsumerProcess>,
    /// Where the sink listens (default 127.0.0.1 on a free port).
    pub sink_bind: Option<std::net::SocketAddr>,
    /// The URL recipients are given, when the sink is reached through another address.
    pub sink_url: Option<String>,
    /// Read the recipients from a generated object, written locally under its `dir` and
    /// uploaded to `bucket`.
    pub object: Option<ObjectRun>,
    /// The bucket objects are uploaded to.
    pub bucket: Option<String>,
    /// The producer alone: this driver drains the work queue and checks every recipient.
    pub producer_only: bool,
}

/// Runs one job on `stack` and reports.
pub async fn run(sdk: &aws_config::SdkConfig, stack: &StackNames, config: &AwsRunConfig) -> anyhow::Result<Report> {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let started = Instant::now();
    let ledger = Arc::new(Ledger::with_capacity(started, if config.producer_only { 0 } else { config.recipients }));
    let sink = if config.producer_only {
        None
    } else {
        let sink = match config.sink_bind {
            Some(bind) => Sink::start_at(bind, ledger.clone(), config.faults).await,
            None => Sink::start(ledger.clone(), config.faults).await,
        }
        .context("starting the webhook sink")?;
        Some(sink)
    };
    let address = match &sink {
        Some(sink) => config.sink_url.clone().unwrap_or_else(|| sink.url()),
        None => "https://receiver.invalid/hook".to_owned(),
    };

    let mut consumer = match (&config.consumer, config.producer_only) {
        (Some(c), false) => Some(
            tokio::process::Command::new(&c.binary)
                .args(["consume", "--queue-url", &stack.queue_url, "--max-in-flight", &c.max_in_flight.to_string()])
                .env("FANOUT_DEAD_LETTER_QUEUE_URL", &stack.dead_letter_queue_url)
                .envs(c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                // Its logs go to stderr: stdout carries the report.
                .stdout(std::process::Stdio::from(std::io::stderr()))
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", c.binary.display()))?,
        ),
        _ => None,
    };

    let object = match &config.object {
        Some(run) => Some(upload_object(sdk, run, config, &address).await?),
        None => None,
    };
    let (job_id, request) =
        loadtest_job(Channel::Webhook, config.recipients, address, config.batch_limits, object.clone())?;
    let invoked = Instant::now();
    let produced = invoke_producer(&lambda, &stack.producer_function, request).await?;

    let tally = Tally::new(config.recipients);
    let (settled, wall) = if config.producer_only {
        let settled =
            drain_and_tally(&sqs, &stack.queue_url, &tally, config.recipients, invoked, started + config.max_wall)
                .await?;
        (settled.is_some(), settled.unwrap_or_else(|| invoked.elapsed()))
    } else {
        // While the producer goes on by itself, an empty queue may only be a pause between
        // two of its invocations: unless everyone is delivered, wait for a longer quiet.
        let quiet_polls = if produced.self_invoked { 20 } else { 3 };
        let settled =
            wait_for_drain(&sqs, &stack.queue_url, &ledger, config.recipients, quiet_polls, started + config.max_wall)
                .await?;
        (settled, started.elapsed())
    };
    if let Some(child) = consumer.as_mut() {
        stop_consumer(child).await;
    }
    if let Some(sink) = sink {
        sink.stop().await;
    }
    if !settled {
        tracing::error!("gave up after {:?}; unsettled recipients count as lost", config.max_wall);
    }

    let bodies = read_queue(&sqs, &stack.dead_letter_queue_url).await?;
    let dead = DeadLetterIndex::read(bodies.iter().map(String::as_str));
    let mut report = Report {
        target: "aws".into(),
        mode: if config.producer_only { "producer" } else { "pipeline" }.into(),
        source: object.as_ref().map_or_else(|| "synthetic".into(), ObjectSource::url),
        channel: "webhook".into(),
        job_id: job_id.to_string(),
        recipients: config.recipients,
        refused_attempts: ledger.refused_attempts(),
        batches: produced.batches,
        producer_self_invoked: produced.self_invoked,
        producer_function: stack.producer_function.clone(),
        latency_ms: ledger.latency(),
        wall_seconds: wall.as_secs_f64(),
        time_scale: 1.0,
        requests: Requests { lambda_producer_invocations: produced.invocations, ..Requests::default() },
        ..Report::default()
    };
    if config.producer_only {
        account_published(&mut report, &job_id, &tally, &dead);
        report.recipients_per_sec = config.recipients as f64 / wall.as_secs_f64().max(1e-9);
    } else {
        account(&mut report, &job_id, &ledger, &config.faults, &dead);
        report.retries = report.refused_attempts.saturating_sub(report.dead_letter_causes.permanent);
        report.recipients_per_sec = report.delivered as f64 / wall.as_secs_f64().max(1e-9);
    }
    report.peak_rss_bytes = peak_rss_bytes();
    Ok(report)
}

/// Writes the recipient object locally and uploads it (one streamed `PutObject`).
async fn upload_object(
    sdk: &aws_config::SdkConfig,
    run: &ObjectRun,
    config: &AwsRunConfig,
    address: &str,
) -> anyhow::Result<ObjectSource> {
    let bucket = config.bucket.clone().context("--bucket is required to read recipients from an object")?;
    let written = run.write(config.recipients, address)?;
    let s3 = fanout_producer::s3::client(sdk);
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&written.path)
        .await
        .with_context(|| format!("reading {}", written.path.display()))?;
    let content_type = match run.format {
        ObjectFormat::Jsonl => "application/x-ndjson",
        ObjectFormat::Csv => "text/csv",
    };
    let t = Instant::now();
    s3.put_object()
        .bucket(&bucket)
        .key(&written.source.key)
        .content_type(content_type)
        .body(body)
        .send()
        .await
        .with_context(|| format!("s3 PutObject s3://{bucket}/{}", written.source.key))?;
    tracing::info!(bytes = written.bytes, took = ?t.elapsed(), "recipient object uploaded");
    let mut source = written.source.clone();
    source.bucket = bucket;
    Ok(source)
}

/// What the driver saw of the producer's invocations.
#[derive(Debug, Default)]
struct Produced {
    invocations: u64,
    batches: u64,
    self_invoked: bool,
}

/// Invokes the producer synchronously; while it hands back a continuation it did not start
/// itself, invokes it again with that.
async fn invoke_producer(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    request: FanoutRequest,
) -> anyhow::Result<Produced> {
    let mut out = Produced::default();
    let mut next = Some(request);
    while let Some(request) = next.take() {
        out.invocations += 1;
        let resp = lambda
            .invoke()
            .function_name(function)
            .payload(Blob::new(serde_json::to_vec(&request)?))
            .send()
            .await
            .context("lambda Invoke (producer)")?;
        let payload = resp.payload().map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()).unwrap_or_default();
        if let Some(kind) = resp.function_error() {
            bail!("the producer failed ({kind}): {payload}");
        }
        let summary: Summary =
            serde_json::from_str(&payload).with_context(|| format!("reading the producer's summary: {payload}"))?;
        out.batches += summary.batches;
        out.self_invoked |= summary.continued;
        next = summary.continuation.filter(|_| !summary.continued);
    }
    Ok(out)
}

/// Receives and deletes every message of the work queue, checking its recipients off, until
/// all `count` were seen or nothing new came for ten seconds; the time of the last new
/// recipient since `started`, or `None` if `give_up` came first.
async fn drain_and_tally(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    tally: &Tally,
    count: u64,
    started: Instant,
    give_up: Instant,
) -> anyhow::Result<Option<Duration>> {
    let mut last_new = Instant::now();
    while Instant::now() < give_up {
        if tally.unique() >= count || last_new.elapsed() > Duration::from_secs(10) {
            return Ok(Some(last_new - started));
        }
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .context("sqs ReceiveMessage (work queue)")?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let before = tally.unique();
        let mut delete = sqs.delete_message_batch().queue_url(queue_url);
        for (i, m) in messages.iter().enumerate() {
            tally.mark_body(m.body().unwrap_or_default());
            delete = delete.entries(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()?,
            );
        }
        delete.send().await.context("sqs DeleteMessageBatch (work queue)")?;
        if tally.unique() > before {
            last_new = Instant::now();
        }
    }
    Ok(None)
}

/// Waits until the queue holds nothing (visible, in flight or delayed) for `quiet_polls`
/// polls in a row with no new delivery in between (three once all `recipients` are
/// delivered); `false` if `give_up` came first.
async fn wait_for_drain(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    ledger: &Ledger,
    recipients: u64,
    quiet_polls: u32,
    give_up: Instant,
) -> anyhow::Result<bool> {
    let mut quiet = 0;
    let mut last = (u64::MAX, u64::MAX);
    while Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let out = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .context("sqs GetQueueAttributes")?;
        let depth: u64 = out.attributes().map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum()).unwrap_or(0);
        let now = (ledger.total(), ledger.refused_attempts());
        quiet = if depth == 0 && now == last { quiet + 1 } else { 0 };
        last = now;
        if quiet >= 3 && (quiet >= quiet_polls || ledger.unique() >= recipients) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every message body on a queue, without deleting (records stay for the operator).
async fn read_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(120)
            .send()
            .await
            .context("sqs ReceiveMessage (dead letters)")?;
        let mut fresh = 0;
        for m in out.messages.unwrap_or_default() {
            if seen.insert(m.message_id.clone().unwrap_or_default()) {
                fresh += 1;
                bodies.extend(m.body);
            }
        }
        empty = if fresh == 0 { empty + 1 } else { 0 };
    }
    Ok(bodies)
}

/// SIGTERM, then up to 30 s for the consumer to finish the batches in hand.
async fn stop_consumer(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
        let _ = child.start_kill();
    }
}
