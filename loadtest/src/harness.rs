//! One load-test run on the embedded engine: wire producer, topic, queue and DLQ, event
//! source mapping, worker and receiver; invoke the producer like a load-test trigger (and
//! again with each continuation, as its self-invocation does on Lambda); wait until every
//! message is settled; then account for every recipient. A producer-only run stops at the
//! topic and checks what was published.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fanout_common::{BatchLimits, Channel, DeadLetters, FanoutRequest, JobId, ObjectFormat, RetryPolicy};
use fanout_producer::{FileObjects, Objects, Producer, ProducerConfig, Publisher};
use fanout_worker::{Channels, Deliverer, WebhookDeliverer, Worker, WorkerConfig};
use futures::FutureExt;

use crate::accounting::{account, account_published, loadtest_job, DeadLetterIndex};
use crate::clock::Clock;
use crate::engine::{DeadLetterQueue, EsmConfig, EventSourceMapping, Function, Queue, Subscription, Topic};
use crate::faults::FaultPlan;
use crate::ledger::Ledger;
use crate::objects::{ObjectRun, WrittenObject};
use crate::report::{peak_rss_bytes, DuplicateCauses, Report, Requests};
use crate::sink::{InProcessSink, Sink};
use crate::tally::Tap;

/// Everything a run can be told.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Recipients in the job.
    pub recipients: u64,
    /// The channel.
    pub channel: Channel,
    /// Receiver faults.
    pub faults: FaultPlan,
    /// Share of messages the queue stores twice.
    pub duplicates: f64,
    /// Share of `PublishBatch` entries failed with `Throttled`.
    pub publish_throttle: f64,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// The event source mapping and worker function settings.
    pub esm: EsmConfig,
    /// Deliveries in flight per worker invocation.
    pub worker_concurrency: usize,
    /// The worker's retry policy.
    pub retry: RetryPolicy,
    /// Receives before the queue moves a message to the DLQ.
    pub max_receive_count: u32,
    /// Raw message delivery on the subscription.
    pub raw_delivery: bool,
    /// How the producer batches.
    pub batch_limits: BatchLimits,
    /// The producer's timeout (simulated); a job that does not fit goes on in more
    /// invocations.
    pub producer_timeout: Duration,
    /// Read the recipients from a generated object instead of generating them in the
    /// request.
    pub object: Option<ObjectRun>,
    /// Run the producer alone: what reaches the topic is checked, nothing is delivered.
    pub producer_only: bool,
    /// Give up after this much wall time; whatever is unsettled then is lost.
    pub max_wall: Duration,
    /// Show a progress bar on stderr (drawn only when stderr is a terminal).
    pub progress: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            recipients: 10_000,
            channel: Channel::Noop,
            faults: FaultPlan { retry_after: Duration::from_secs(1), ..FaultPlan::default() },
            duplicates: 0.0,
            publish_throttle: 0.0,
            time_scale: 1.0,
            esm: EsmConfig::default(),
            worker_concurrency: 64,
            retry: RetryPolicy::default(),
            max_receive_count: 5,
            raw_delivery: true,
            batch_limits: BatchLimits::default(),
            producer_timeout: Duration::from_secs(900),
            object: None,
            producer_only: false,
            max_wall: Duration::from_secs(1800),
            progress: false,
        }
    }
}

/// The worker's running totals, summed over invocations.
#[derive(Default)]
struct WorkerTotals {
    retried: AtomicU64,
}

/// Runs the job and reports.
pub async fn run(config: RunConfig) -> anyhow::Result<Report> {
    if config.producer_only {
        return run_producer_only(&config).await;
    }
    let started = Instant::now();
    let ledger = Arc::new(Ledger::with_capacity(started, config.recipients));
    let webhook = WebhookDeliverer::new(Duration::from_secs(10)).context("building the HTTP client")?;
    match config.channel {
        Channel::Webhook => {
            let sink = Sink::start(ledger.clone(), config.faults).await.context("starting the webhook sink")?;
            let url = sink.url();
            let report = run_with(&config, Channels::new(webhook), url, ledger, started).await;
            sink.stop().await;
            report
        }
        Channel::Log | Channel::Noop => {
            let deliverer = InProcessSink::new(Channels::new(webhook), ledger.clone(), config.faults);
            run_with(&config, deliverer, "in-process".into(), ledger, started).await
        }
    }
}

async fn run_with<D: Deliverer + 'static>(
    config: &RunConfig,
    deliverer: D,
    address: String,
    ledger: Arc<Ledger>,
    started: Instant,
) -> anyhow::Result<Report> {
    let clock = Clock::new(config.time_scale);
    let visibility = config.esm.function_timeout * 6;
    let (queue, dlq) =
        Queue::with_dlq("fanout-queue", clock, visibility, Some(config.max_receive_count), config.duplicates);
    let topic = Arc::new(Topic::new(
        "fanout-topic",
        vec![Subscription { queue: queue.clone(), raw: config.raw_delivery }],
        config.publish_throttle,
    ));

    let worker_config = WorkerConfig {
        concurrency: config.worker_concurrency,
        // Three simulated seconds, but never less than a quarter second of real time:
        // delivering takes real time whatever the clock's speed.
        deadline_margin: clock.real(Duration::from_secs(3)).max(Duration::from_millis(250)),
        retry: config.retry,
    };
    let worker = Arc::new(Worker::new(deliverer, queue.clone(), DeadLetterQueue(dlq.clone()), worker_config));
    let totals = Arc::new(WorkerTotals::default());
    let function: Function = {
        let (worker, totals) = (worker.clone(), totals.clone());
        Arc::new(move |event, deadline| {
            let (worker, totals) = (worker.clone(), totals.clone());
            async move {
                let (resp, report) = worker.handle_with_report(event, deadline).await;
                totals.retried.fetch_add(report.retried as u64, Ordering::Relaxed);
                Ok(resp)
            }
            .boxed()
        })
    };
    let esm = EventSourceMapping::start(queue.clone(), function, config.esm, clock).map_err(anyhow::Error::msg)?;

    let (job_id, request, object) = prepare_job(config, address)?;
    let producer_timeout = clock.real(config.producer_timeout);
    let producer = tokio::spawn({
        let producer = build_producer(config, topic.clone(), dlq.clone(), clock);
        async move { drive_producer(&producer, request, producer_timeout).await }
    });

    let bar = progress_bar(config);
    let mut producer = Some(producer);
    let mut produced = None;
    let settled = loop {
        if let Some(p) = producer.as_mut().filter(|p| p.is_finished()) {
            produced = Some(p.await.context("producer task")??);
            producer = None;
        }
        bar.set_position(ledger.unique());
        bar.set_message(format!("queued {}, dead letters {}", queue.len(), dlq.len()));
        if produced.is_some() && queue.is_empty() && esm.counters.running.load(Ordering::SeqCst) == 0 {
            break true;
        }
        if started.elapsed() > config.max_wall {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let wall = started.elapsed();
    bar.finish_and_clear();
    let esm_counters = esm.counters.clone();
    esm.stop().await;
    if !settled {
        tracing::error!(
            queued = queue.len(),
            "gave up after {:?}; unsettled recipients count as lost",
            config.max_wall
        );
    }
    let produced = produced.unwrap_or_default();

    let dead = DeadLetterIndex::read(dlq.drain().iter().map(|b| &**b));
    let plan = config.faults;
    let mut report = Report {
        target: "embedded".into(),
        mode: "pipeline".into(),
        source: object.as_ref().map_or_else(|| "synthetic".into(), |o| o.source.url()),
        channel: config.channel.to_string(),
        job_id: job_id.to_string(),
        recipients: config.recipients,
        retries: totals.retried.load(Ordering::Relaxed),
        refused_attempts: ledger.refused_attempts(),
        batches: produced.batches,
        latency_ms: ledger.latency(),
        wall_seconds: wall.as_secs_f64(),
        time_scale: clock.speed(),
        ..Report::default()
    };
    account(&mut report, &job_id, &ledger, &plan, &dead);
    report.recipients_per_sec = report.delivered as f64 / wall.as_secs_f64().max(1e-9);
    report.duplicate_causes = DuplicateCauses {
        injected_duplicate_messages: queue.counters.duplicates_injected.load(Ordering::Relaxed),
        redelivered_messages: queue.counters.redeliveries.load(Ordering::Relaxed),
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (q, d, e) = (&queue.counters, &dlq.counters, &esm_counters);
    report.requests = Requests {
        sns_publish: load(&topic.counters.publish_requests),
        sqs_send: load(&q.send_requests) + load(&d.send_requests),
        sqs_sns_deliveries: load(&q.sns_deliveries),
        sqs_receive: load(&q.receive_requests),
        sqs_delete: load(&q.delete_requests),
        sqs_change_visibility: load(&q.visibility_changes),
        lambda_producer_invocations: produced.invocations,
        lambda_worker_invocations: load(&e.invocations),
        s3_get: produced.s3_gets(config),
    };
    let gb = f64::from(config.esm.memory_mb) / 1024.0;
    let gb_seconds = (load(&e.billed_micros) as f64 / 1e6 + produced.busy.as_secs_f64()) * gb;
    report.price(load(&topic.counters.billed_chunks), load(&q.billed_chunks) + load(&d.billed_chunks), gb_seconds);
    report.peak_rss_bytes = peak_rss_bytes();
    Ok(report)
}

/// The producer alone: the job is published to a topic without subscribers and every
/// accepted entry is checked off, recipient by recipient.
async fn run_producer_only(config: &RunConfig) -> anyhow::Result<Report> {
    let clock = Clock::new(config.time_scale);
    let (_, dlq) =
        Queue::with_dlq("fanout-queue", clock, Duration::from_secs(180), Some(config.max_receive_count), 0.0);
    let topic = Arc::new(Topic::new("fanout-topic", Vec::new(), config.publish_throttle));
    let address = match config.channel {
        Channel::Webhook => "https://receiver.invalid/hook".to_owned(),
        Channel::Log | Channel::Noop => "in-process".to_owned(),
    };
    let (job_id, request, object) = prepare_job(config, address)?;
    let producer = build_producer(config, Tap::new(topic.clone(), config.recipients), dlq.clone(), clock);
    let started = Instant::now();
    let produced = drive_producer(&producer, request, clock.real(config.producer_timeout)).await?;
    let wall = started.elapsed();

    let dead = DeadLetterIndex::read(dlq.drain().iter().map(|b| &**b));
    let mut report = Report {
        target: "embedded".into(),
        mode: "producer".into(),
        source: object.as_ref().map_or_else(|| "synthetic".into(), |o| o.source.url()),
        channel: config.channel.to_string(),
        job_id: job_id.to_string(),
        recipients: config.recipients,
        batches: produced.batches,
        wall_seconds: wall.as_secs_f64(),
        time_scale: clock.speed(),
        ..Report::default()
    };
    account_published(&mut report, &job_id, &producer.publisher().tally, &dead);
    report.recipients_per_sec = config.recipients as f64 / wall.as_secs_f64().max(1e-9);
    report.requests = Requests {
        sns_publish: topic.counters.publish_requests.load(Ordering::Relaxed),
        lambda_producer_invocations: produced.invocations,
        s3_get: produced.s3_gets(config),
        ..Requests::default()
    };
    let gb_seconds = produced.busy.as_secs_f64() * f64::from(config.esm.memory_mb) / 1024.0;
    report.price(
        topic.counters.billed_chunks.load(Ordering::Relaxed),
        dlq.counters.billed_chunks.load(Ordering::Relaxed),
        gb_seconds,
    );
    report.peak_rss_bytes = peak_rss_bytes();
    Ok(report)
}

/// The job's request; when the recipients come from an object, the object is written
/// first (and removed when the returned guard is dropped).
fn prepare_job(config: &RunConfig, address: String) -> anyhow::Result<(JobId, FanoutRequest, Option<WrittenObject>)> {
    let object = match &config.object {
        Some(o) => {
            let written = o.write(config.recipients, &address)?;
            tracing::info!(path = %written.path.display(), bytes = written.bytes, took = ?written.write_time, "recipient object written");
            Some(written)
        }
        None => None,
    };
    let source = object.as_ref().map(|o| o.source.clone());
    let (job_id, request) = loadtest_job(config.channel, config.recipients, address, config.batch_limits, source)?;
    Ok((job_id, request, object))
}

fn build_producer<P: Publisher>(
    config: &RunConfig,
    publisher: P,
    dlq: Arc<Queue>,
    clock: Clock,
) -> Producer<P, DeadLetterQueue, FileObjects> {
    let dir = config.object.as_ref().map_or_else(std::env::temp_dir, |o| o.dir.clone());
    let producer_config =
        ProducerConfig { deadline_margin: clock.real(Duration::from_secs(5)), ..ProducerConfig::default() };
    Producer::new(publisher, DeadLetterQueue(dlq), producer_config).with_objects(FileObjects::new(dir))
}

/// What the producer's invocations did, summed.
#[derive(Debug, Default)]
struct Produced {
    invocations: u64,
    batches: u64,
    busy: Duration,
}

impl Produced {
    /// `GetObject` requests: one per invocation, and one more per CSV continuation (its
    /// header); 0 when no invocation finished (a run given up before the producer did).
    fn s3_gets(&self, config: &RunConfig) -> u64 {
        match &config.object {
            None => 0,
            Some(o) if o.format == ObjectFormat::Csv => (2 * self.invocations).saturating_sub(1),
            Some(_) => self.invocations,
        }
    }
}

/// Invokes the producer with the job, then with each continuation it hands back (what the
/// function's asynchronous self-invocation does on Lambda), each invocation with `timeout`.
async fn drive_producer<P: Publisher, D: DeadLetters, O: Objects>(
    producer: &Producer<P, D, O>,
    request: FanoutRequest,
    timeout: Duration,
) -> anyhow::Result<Produced> {
    let mut out = Produced::default();
    let mut next = Some(request);
    while let Some(req) = next.take() {
        out.invocations += 1;
        let t = Instant::now();
        let summary = producer.handle(req, Some(t + timeout)).await?;
        out.busy += t.elapsed();
        out.batches += summary.batches;
        next = summary.continuation;
    }
    Ok(out)
}

fn progress_bar(config: &RunConfig) -> indicatif::ProgressBar {
    if !config.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(config.recipients);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} delivered ({per_sec}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Checks a configuration before anything starts; errors name the flag's setting.
pub fn check(config: &RunConfig) -> anyhow::Result<()> {
    config.esm.check().map_err(anyhow::Error::msg)?;
    for (name, p) in [
        ("fail-transient", config.faults.transient),
        ("fail-permanent", config.faults.permanent),
        ("throttle", config.faults.throttle),
        ("duplicates", config.duplicates),
        ("publish-throttle", config.publish_throttle),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("--{name}: {p} is not a probability between 0 and 1");
        }
    }
    if config.faults.transient + config.faults.throttle > 1.0 {
        bail!("--fail-transient plus --throttle exceed 1");
    }
    if config.recipients == 0 {
        bail!("--recipients: must be at least 1");
    }
    if config.producer_timeout.is_zero() {
        bail!("--producer-invocation-ms: must be at least 1");
    }
    config.retry.check().map_err(|e| anyhow::anyhow!("retry policy: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_gets_count_csv_headers_and_survive_a_run_given_up() {
        let object = |format| Some(ObjectRun { format, malformed: 0, dir: std::env::temp_dir() });
        let csv = RunConfig { object: object(ObjectFormat::Csv), ..RunConfig::default() };
        let jsonl = RunConfig { object: object(ObjectFormat::Jsonl), ..RunConfig::default() };
        let ran = |invocations| Produced { invocations, ..Produced::default() };
        assert_eq!(ran(3).s3_gets(&csv), 5);
        assert_eq!(ran(3).s3_gets(&jsonl), 3);
        assert_eq!(ran(3).s3_gets(&RunConfig::default()), 0);
        assert_eq!(ran(0).s3_gets(&csv), 0, "a producer that never finished read nothing we know of");
    }
}
