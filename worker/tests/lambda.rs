//! The worker as a Lambda function: the runtime's JSON event in, the partial batch
//! response out.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::SqsEvent;
use fanout_common::MemoryDeadLetters;
use fanout_worker::{lambda, MemoryRequeue, NoopDeliverer, Worker, WorkerConfig};
use lambda_runtime::{Context, LambdaEvent};

#[tokio::test]
async fn the_fixture_event_gets_an_empty_partial_batch_response() {
    let path = format!("{}/tests/fixtures/sqs_event_raw_envelope_poison.json", env!("CARGO_MANIFEST_DIR"));
    let payload: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut context = Context::default();
    context.deadline =
        (SystemTime::now() + Duration::from_secs(30)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let dl = MemoryDeadLetters::default();
    let worker = Worker::new(NoopDeliverer, MemoryRequeue::default(), &dl, WorkerConfig::default());
    let resp = lambda::handle(&worker, LambdaEvent::new(payload, context)).await.unwrap();
    assert_eq!(serde_json::to_string(&resp).unwrap(), r#"{"batchItemFailures":[]}"#);
    assert_eq!(dl.records().len(), 1);
}

#[tokio::test]
async fn a_deadline_in_the_past_is_not_believed() {
    // `cargo lambda watch` sends the constant deadline 600000 ms (1970): Lambda never starts an
    // invocation past its deadline, so the longest Lambda timeout is assumed instead.
    let path = format!("{}/tests/fixtures/sqs_event_raw_envelope_poison.json", env!("CARGO_MANIFEST_DIR"));
    let payload: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut context = Context::default();
    context.deadline = 600_000;
    let worker =
        Worker::new(NoopDeliverer, MemoryRequeue::default(), MemoryDeadLetters::default(), WorkerConfig::default());
    let resp = lambda::handle(&worker, LambdaEvent::new(payload, context)).await.unwrap();
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
}

#[tokio::test]
async fn each_invocation_reports_its_metrics_as_one_emf_line() {
    let path = format!("{}/tests/fixtures/sqs_event_raw_envelope_poison.json", env!("CARGO_MANIFEST_DIR"));
    let payload: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let worker =
        Worker::new(NoopDeliverer, MemoryRequeue::default(), MemoryDeadLetters::default(), WorkerConfig::default());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (_, report) = worker.handle_with_report(payload, deadline).await;
    let line = lambda::metrics_line(&report, Duration::from_millis(12));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "fanout");
    assert_eq!(
        (v["Delivered"].as_f64(), v["Poison"].as_f64(), v["BatchDuration"].as_f64()),
        (Some(3.0), Some(1.0), Some(12.0))
    );
}
