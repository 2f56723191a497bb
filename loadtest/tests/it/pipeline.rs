//! Whole runs on the embedded engine: every recipient delivered or dead-lettered.

use std::path::PathBuf;
use std::time::Duration;

use fanout_common::{BatchLimits, Channel, ObjectFormat, RetryPolicy};
use fanout_loadtest::engine::EsmConfig;
use fanout_loadtest::faults::FaultPlan;
use fanout_loadtest::objects::ObjectRun;
use fanout_loadtest::{run, RunConfig};

fn config(recipients: u64, channel: Channel) -> RunConfig {
    RunConfig {
        recipients,
        channel,
        // Retry delays (seconds to minutes) pass 200 times faster.
        time_scale: 200.0,
        // 300 s simulated is 1.5 s real per invocation: room for a loaded machine.
        esm: EsmConfig { function_timeout: Duration::from_secs(300), ..EsmConfig::default() },
        max_wall: Duration::from_secs(120),
        ..RunConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_of_every_kind_lose_no_one() {
    let mut cfg = config(50_000, Channel::Noop);
    cfg.faults = FaultPlan {
        transient: 0.05,
        permanent: 0.01,
        throttle: 0.02,
        retry_after: Duration::from_secs(1),
        seed: 9,
        ..FaultPlan::default()
    };
    // High enough that a run of ~100 messages always has duplicates (0.8^100 ≈ 2e-10).
    cfg.duplicates = 0.2;
    cfg.publish_throttle = 0.05;
    let r = run(cfg).await.unwrap();
    assert_eq!(r.lost, 0, "{r}");
    assert_eq!(r.delivered + r.dead_lettered, r.recipients);
    assert!(r.expected_permanent > 300, "{r}");
    assert_eq!(r.dead_letter_causes.permanent, r.expected_permanent, "{r}");
    assert_eq!(r.dead_lettered, r.expected_permanent);
    assert!(r.retries > 2_000, "{r}");
    assert!(r.duplicate_causes.injected_duplicate_messages > 0);
    assert!(r.duplicates > 0, "injected duplicates show up as repeated deliveries: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_through_the_sink_with_faults_lose_no_one() {
    let mut cfg = config(10_000, Channel::Webhook);
    // HTTP takes real time: a slower clock keeps the retry schedule's waits short and the
    // timeouts (300 s simulated, 15 s real) far from any delivery.
    cfg.time_scale = 20.0;
    cfg.faults = FaultPlan {
        transient: 0.05,
        permanent: 0.01,
        throttle: 0.02,
        retry_after: Duration::from_secs(2),
        seed: 4,
        ..FaultPlan::default()
    };
    let r = run(cfg).await.unwrap();
    assert_eq!(r.lost, 0, "{r}");
    assert_eq!(r.dead_lettered, r.expected_permanent, "{r}");
    assert_eq!(r.delivered + r.dead_lettered, 10_000);
    assert_eq!(r.duplicates, 0, "no duplicates injected, none delivered: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sns_envelope_and_a_batching_window_change_nothing_for_recipients() {
    let mut cfg = config(20_000, Channel::Noop);
    cfg.raw_delivery = false;
    cfg.esm = EsmConfig { batch_size: 50, batching_window: Duration::from_secs(1), ..cfg.esm };
    let r = run(cfg).await.unwrap();
    assert_eq!((r.lost, r.delivered, r.duplicates), (0, 20_000, 0), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_are_dead_lettered_not_lost() {
    let mut cfg = config(5_000, Channel::Noop);
    cfg.faults = FaultPlan { transient: 0.5, seed: 2, ..FaultPlan::default() };
    cfg.retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    let r = run(cfg).await.unwrap();
    assert_eq!(r.lost, 0, "{r}");
    assert!(r.dead_letter_causes.exhausted > 500, "about a quarter fail twice: {r}");
    assert_eq!(r.delivered + r.dead_lettered, 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_counts_requests_and_prices_them() {
    let r = run(config(30_000, Channel::Noop)).await.unwrap();
    assert_eq!(r.lost, 0);
    assert!(r.batches >= 15, "30k recipients of ~40 bytes need ~20 batches of 64 KiB: {r}");
    assert_eq!(r.requests.sqs_sns_deliveries, r.batches);
    assert!(r.requests.sns_publish >= r.batches.div_ceil(4), "at most 4 full batches per PublishBatch");
    assert!(r.requests.lambda_worker_invocations >= r.batches.div_ceil(10));
    assert!(r.cost.total_usd > 0.0 && r.cost.sns_billed_requests >= r.batches);
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "recipients",
        "delivered",
        "dead_lettered",
        "lost",
        "duplicates",
        "retries",
        "recipients_per_sec",
        "latency_ms",
        "requests",
        "peak_rss_bytes",
        "wall_seconds",
    ] {
        assert!(json.get(key).is_some(), "report key {key}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(json["latency_ms"].get(key).is_some());
    }
}

fn object(format: ObjectFormat, malformed: u64) -> Option<ObjectRun> {
    Some(ObjectRun { format, malformed, dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loadtest-objects") })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_job_split_over_many_producer_invocations_delivers_everyone_exactly_once() {
    let mut cfg = config(30_000, Channel::Noop);
    cfg.object = object(ObjectFormat::Jsonl, 25);
    cfg.batch_limits = BatchLimits { max_recipients: 100, ..BatchLimits::default() };
    // 6 s simulated is 30 ms real: the producer stops after a few batches each time.
    cfg.producer_timeout = Duration::from_secs(6);
    let r = run(cfg).await.unwrap();
    assert_eq!((r.delivered, r.lost, r.duplicates, r.dead_lettered), (30_000, 0, 0, 0), "{r}");
    assert_eq!(r.rejected_lines, 25, "{r}");
    assert!(r.requests.lambda_producer_invocations > 3, "{r}");
    assert_eq!(r.requests.s3_get, r.requests.lambda_producer_invocations);
    assert!(r.source.starts_with("s3://fanout-loadtest/loadtest/") && r.source.ends_with(".jsonl"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_alone_publishes_every_recipient_of_a_csv_object_once() {
    let mut cfg = config(20_000, Channel::Noop);
    cfg.object = object(ObjectFormat::Csv, 10);
    cfg.producer_only = true;
    cfg.batch_limits = BatchLimits { max_recipients: 100, ..BatchLimits::default() };
    cfg.producer_timeout = Duration::from_secs(6);
    let r = run(cfg).await.unwrap();
    assert_eq!(r.mode, "producer");
    assert_eq!((r.delivered, r.lost, r.duplicates, r.rejected_lines), (20_000, 0, 0, 10), "{r}");
    // 200 full batches, and a short one wherever an invocation's time ran out on a
    // rejected line.
    assert!(r.batches >= 200, "{r}");
    let n = r.requests.lambda_producer_invocations;
    assert!(n > 1, "{r}");
    assert_eq!(r.requests.s3_get, 2 * n - 1, "a CSV continuation reads its header again");
    assert!(r.cost.sns_billed_requests >= r.requests.sns_publish && r.cost.total_usd > 0.0, "{r}");
}
