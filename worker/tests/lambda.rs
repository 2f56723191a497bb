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
async fn a_past_deadline_reports_every_message() {
    let path = format!("{}/tests/fixtures/sqs_event_raw_envelope_poison.json", env!("CARGO_MANIFEST_DIR"));
    let mut payload: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    payload.records.truncate(2);
    let context = Context::default(); // deadline 0: long past
    let worker =
        Worker::new(NoopDeliverer, MemoryRequeue::default(), MemoryDeadLetters::default(), WorkerConfig::default());
    let resp = lambda::handle(&worker, LambdaEvent::new(payload, context)).await.unwrap();
    let ids: Vec<_> = resp.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(ids, ["059f36b4-87a3-44ab-83d2-661975830a7d", "2e1424d4-f796-459a-8184-9c92662be6da"]);
}
