//! Running a job on a deployed stack and accounting for every recipient.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sqs::types::QueueAttributeName;
use fanout_common::{BatchLimits, Channel};
use fanout_producer::Summary;

use crate::accounting::{account, loadtest_job, DeadLetterIndex};
use crate::aws::stack::StackNames;
use crate::faults::FaultPlan;
use crate::ledger::Ledger;
use crate::report::{peak_rss_bytes, Report, Requests};
use crate::sink::Sink;

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
}

/// Runs one webhook job on `stack` and reports.
pub async fn run(sdk: &aws_config::SdkConfig, stack: &StackNames, config: &AwsRunConfig) -> anyhow::Result<Report> {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let started = Instant::now();
    let ledger = Arc::new(Ledger::with_capacity(started, config.recipients));
    let sink = match config.sink_bind {
        Some(bind) => Sink::start_at(bind, ledger.clone(), config.faults).await,
        None => Sink::start(ledger.clone(), config.faults).await,
    }
    .context("starting the webhook sink")?;
    let sink_url = config.sink_url.clone().unwrap_or_else(|| sink.url());

    let mut consumer = match &config.consumer {
        None => None,
        Some(c) => Some(
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
    };

    let (job_id, request) = loadtest_job(Channel::Webhook, config.recipients, sink_url, config.batch_limits)?;
    let mut next = Some(request);
    let (mut invocations, mut batches) = (0u64, 0u64);
    while let Some(request) = next.take() {
        invocations += 1;
        let out = lambda
            .invoke()
            .function_name(&stack.producer_function)
            .payload(Blob::new(serde_json::to_vec(&request)?))
            .send()
            .await
            .context("lambda Invoke (producer)")?;
        let payload = out.payload().map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            bail!("the producer failed ({kind}): {payload}");
        }
        let summary: Summary =
            serde_json::from_str(&payload).with_context(|| format!("reading the producer's summary: {payload}"))?;
        batches += summary.batches;
        next = summary.continuation;
    }

    let settled = wait_for_drain(&sqs, &stack.queue_url, &ledger, started + config.max_wall).await?;
    let wall = started.elapsed();
    if let Some(child) = consumer.as_mut() {
        stop_consumer(child).await;
    }
    sink.stop().await;
    if !settled {
        tracing::error!("gave up after {:?}; unsettled recipients count as lost", config.max_wall);
    }

    let bodies = read_queue(&sqs, &stack.dead_letter_queue_url).await?;
    let dead = DeadLetterIndex::read(bodies.iter().map(String::as_str));
    let mut report = Report {
        target: "aws".into(),
        channel: "webhook".into(),
        job_id: job_id.to_string(),
        recipients: config.recipients,
        refused_attempts: ledger.refused_attempts(),
        batches,
        latency_ms: ledger.latency(),
        wall_seconds: wall.as_secs_f64(),
        time_scale: 1.0,
        requests: Requests { lambda_producer_invocations: invocations, ..Requests::default() },
        ..Report::default()
    };
    account(&mut report, &job_id, &ledger, &config.faults, &dead);
    report.retries = report.refused_attempts.saturating_sub(report.dead_letter_causes.permanent);
    report.recipients_per_sec = report.delivered as f64 / wall.as_secs_f64().max(1e-9);
    report.peak_rss_bytes = peak_rss_bytes();
    Ok(report)
}

/// Waits until the queue holds nothing (visible, in flight or delayed) for three polls in a
/// row with no new delivery in between; `false` if `give_up` came first.
async fn wait_for_drain(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    ledger: &Ledger,
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
        if quiet >= 3 {
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
