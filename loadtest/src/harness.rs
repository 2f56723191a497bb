//! One load-test run on the embedded engine: wire producer, topic, queue and DLQ, event
//! source mapping, worker and receiver; invoke the producer like a load-test trigger; wait
//! until every message is settled; then account for every recipient.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fanout_common::{BatchLimits, Channel, RetryPolicy};
use fanout_producer::{Producer, ProducerConfig};
use fanout_worker::{Channels, Deliverer, WebhookDeliverer, Worker, WorkerConfig};
use futures::FutureExt;

use crate::accounting::{account, loadtest_job, DeadLetterIndex};
use crate::clock::Clock;
use crate::engine::{DeadLetterQueue, EsmConfig, EventSourceMapping, Function, Queue, Subscription, Topic};
use crate::faults::FaultPlan;
use crate::ledger::Ledger;
use crate::report::{peak_rss_bytes, DuplicateCauses, Report, Requests};
use crate::sink::{InProcessSink, Sink};

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
    /// The producer's timeout (simulated).
    pub producer_timeout: Duration,
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

    let (job_id, request) = loadtest_job(config.channel, config.recipients, address, config.batch_limits)?;
    let producer_timeout = clock.real(config.producer_timeout);
    let producer = tokio::spawn({
        let producer = Producer::new(
            topic.clone(),
            DeadLetterQueue(dlq.clone()),
            ProducerConfig { deadline_margin: clock.real(Duration::from_secs(5)), ..ProducerConfig::default() },
        );
        async move {
            let (mut invocations, mut batches, mut busy) = (0u64, 0u64, Duration::ZERO);
            let mut next = Some(request);
            while let Some(req) = next.take() {
                invocations += 1;
                let t = Instant::now();
                let summary = producer.handle(req, Some(t + producer_timeout)).await?;
                busy += t.elapsed();
                batches += summary.batches;
                next = summary.continuation;
            }
            anyhow::Ok((invocations, batches, busy))
        }
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
    let (producer_invocations, batches, producer_busy) = produced.unwrap_or_default();

    let dead = DeadLetterIndex::read(dlq.drain().iter().map(|b| &**b));
    let plan = config.faults;
    let mut report = Report {
        target: "embedded".into(),
        channel: config.channel.to_string(),
        job_id: job_id.to_string(),
        recipients: config.recipients,
        retries: totals.retried.load(Ordering::Relaxed),
        refused_attempts: ledger.refused_attempts(),
        batches,
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
        lambda_producer_invocations: producer_invocations,
        lambda_worker_invocations: load(&e.invocations),
    };
    let gb = f64::from(config.esm.memory_mb) / 1024.0;
    let gb_seconds = (load(&e.billed_micros) as f64 / 1e6 + producer_busy.as_secs_f64()) * gb;
    report.price(load(&topic.counters.billed_chunks), load(&q.billed_chunks) + load(&d.billed_chunks), gb_seconds);
    report.peak_rss_bytes = peak_rss_bytes();
    Ok(report)
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
    config.retry.check().map_err(|e| anyhow::anyhow!("retry policy: {e}"))?;
    Ok(())
}
