//! Consumer mode against a mocked SQS: successes deleted, failures released with backoff,
//! shutdown after the batch in hand.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchResultEntry, DeleteMessageBatchResultEntry, Message, MessageSystemAttributeName,
};
use aws_sdk_sqs::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use fanout_common::{FailureClass, MemoryDeadLetters};
use fanout_worker::consumer::{self, ConsumerConfig, ConsumerStats};
use fanout_worker::{Deliverer, Delivery, MemoryRequeue, Outcome, Worker, WorkerConfig};

struct FailT;
impl Deliverer for FailT {
    async fn deliver(&self, d: Delivery<'_>) -> Outcome {
        if d.recipient.id.as_str().starts_with('t') {
            Outcome::Failed { class: FailureClass::Transient, reason: "503".into() }
        } else {
            Outcome::Delivered
        }
    }
}

fn message(id: &str, body: &str) -> Message {
    Message::builder()
        .message_id(id)
        .receipt_handle(format!("rh-{id}"))
        .body(body)
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
        .build()
}

fn body(recipient: &str) -> String {
    format!(
        r#"{{"v":1,"job_id":"j","batch_id":"j-00000000","attempt":1,"channel":"noop","payload":null,"recipients":[{{"id":"{recipient}","address":"x"}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_are_deleted_failures_released_and_shutdown_is_clean() {
    let receive = mock!(Client::receive_message)
        .sequence()
        .output(|| {
            ReceiveMessageOutput::builder()
                .messages(message("m-ok", &body("ok")))
                .messages(message("m-poison", "{not json"))
                .messages(message("m-fail", &body("t1")))
                .build()
        })
        .output(|| ReceiveMessageOutput::builder().build())
        .repeatedly()
        .build();
    let delete = mock!(Client::delete_message_batch)
        .match_requests(|r| {
            let mut handles: Vec<&str> = r.entries().iter().map(|e| e.receipt_handle()).collect();
            handles.sort();
            handles == ["rh-m-ok", "rh-m-poison"]
        })
        .then_compute_output(|r| {
            let mut out = DeleteMessageBatchOutput::builder().set_failed(Some(vec![]));
            for e in r.entries() {
                out = out.successful(DeleteMessageBatchResultEntry::builder().id(e.id()).build().unwrap());
            }
            out.build().unwrap()
        });
    let release = mock!(Client::change_message_visibility_batch)
        .match_requests(|r| {
            let e = r.entries();
            e.len() == 1
                && e[0].receipt_handle() == "rh-m-fail"
                && e[0].visibility_timeout().is_some_and(|v| (0..=4).contains(&v))
        })
        .then_compute_output(|r| {
            let mut out = ChangeMessageVisibilityBatchOutput::builder().set_failed(Some(vec![]));
            for e in r.entries() {
                out = out.successful(ChangeMessageVisibilityBatchResultEntry::builder().id(e.id()).build().unwrap());
            }
            out.build().unwrap()
        });
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&receive, &delete, &release]);

    let dl = Arc::new(MemoryDeadLetters::default());
    // The re-enqueue fails, so the transiently failed message must go back to SQS.
    let worker = Arc::new(Worker::new(FailT, MemoryRequeue::failing(), dl.clone(), WorkerConfig::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = ConsumerConfig { max_in_flight: 1, wait: Duration::ZERO, ..ConsumerConfig::new("https://sqs/q") };
    let task = tokio::spawn({
        let (worker, client, config) = (worker.clone(), client.clone(), config.clone());
        async move { consumer::run(&worker, &client, &config, stopped).await }
    });
    while receive.num_calls() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops promptly").unwrap();
    assert_eq!(stats, ConsumerStats { received: 3, deleted: 2, released: 1 });
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(release.num_calls(), 1);
    assert_eq!(dl.records().len(), 1, "the poison message is dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_and_delete_errors_are_survived_and_nothing_is_counted_as_done() {
    let receive = mock!(Client::receive_message)
        .sequence()
        .http_status(500, None)
        .output(|| ReceiveMessageOutput::builder().messages(message("m-ok", &body("ok"))).build())
        .output(|| ReceiveMessageOutput::builder().build())
        .repeatedly()
        .build();
    let delete = mock!(Client::delete_message_batch).sequence().http_status(500, None).repeatedly().build();
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&receive, &delete], |c| c
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()));
    let worker =
        Arc::new(Worker::new(FailT, MemoryRequeue::default(), MemoryDeadLetters::default(), WorkerConfig::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = ConsumerConfig { max_in_flight: 1, wait: Duration::ZERO, ..ConsumerConfig::new("https://sqs/q") };
    let task = tokio::spawn({
        let (worker, client, config) = (worker.clone(), client.clone(), config.clone());
        async move { consumer::run(&worker, &client, &config, stopped).await }
    });
    while receive.num_calls() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops promptly").unwrap();
    assert_eq!(
        stats,
        ConsumerStats { received: 1, deleted: 0, released: 0 },
        "an undeleted message comes back by itself"
    );
    assert_eq!(delete.num_calls(), 1);
}
