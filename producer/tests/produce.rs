//! The producer handler, driven with in-memory edges.

use std::collections::HashSet;
use std::time::Instant;

use fanout_common::limits::{SNS_PUBLISH_BATCH_MAX_BYTES, SNS_PUBLISH_BATCH_MAX_ENTRIES};
use fanout_common::{DeadCause, DeadLetter, FanoutRequest, MemoryDeadLetters, RecipientBatch};
use fanout_producer::{EntryFailure, MemoryPublisher, Producer, ProducerConfig};

fn synthetic(n: u64, job: &str) -> FanoutRequest {
    FanoutRequest::from_json(&format!(
        r#"{{"job_id":"{job}","channel":"webhook","payload":{{"msg":"hi"}},
            "recipients":{{"synthetic":{{"count":{n},"address":"https://hooks.example.com/in"}}}}}}"#
    ))
    .unwrap()
}

fn published_ids(p: &MemoryPublisher) -> Vec<String> {
    let mut ids: Vec<String> = p
        .published()
        .iter()
        .flat_map(|e| RecipientBatch::from_json(&e.body).unwrap().recipients)
        .map(|r| r.id.0)
        .collect();
    ids.sort();
    ids
}

fn expected_ids(n: u64) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    v.sort();
    v
}

#[tokio::test]
async fn requests_stay_within_publish_batch_limits_and_publish_everyone_once() {
    let producer = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default());
    let summary = producer.handle(synthetic(50_000, "limits"), None).await.unwrap();
    let p = producer.publisher();
    assert_eq!(summary.recipients, 50_000);
    assert_eq!(summary.batches as usize, p.published().len());
    assert!(p.requests().iter().all(|&n| (1..=SNS_PUBLISH_BATCH_MAX_ENTRIES).contains(&n)));
    assert_eq!(summary.publish_requests as usize, p.requests().len());
    // Every request's aggregate size is within 256 KiB: rebuild the groups from the order.
    let sizes: Vec<usize> = p.published().iter().map(|e| e.body.len()).collect();
    let mut at = 0;
    for n in p.requests() {
        let total: usize = sizes[at..at + n].iter().sum();
        assert!(total <= SNS_PUBLISH_BATCH_MAX_BYTES, "request of {total} bytes");
        at += n;
    }
    assert!(sizes.iter().all(|&s| s <= 65536));
    assert_eq!(published_ids(p), expected_ids(50_000));
}

#[tokio::test]
async fn batch_ids_are_the_same_on_a_rerun_of_the_same_job() {
    let run = || async {
        let producer =
            Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default());
        producer.handle(synthetic(5_000, "rerun"), None).await.unwrap();
        let mut ids: Vec<String> = producer.publisher().published().into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    };
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    assert_eq!(a[0], "rerun-00000000");
}

#[tokio::test(start_paused = true)]
async fn failed_entries_are_retried_and_sender_faults_dead_lettered() {
    // Every entry fails on the first request it is in (throttled); the entry of batch 3
    // is a sender fault on every request.
    let publisher = MemoryPublisher::failing(|e, request| {
        if e.id.ends_with("-00000003") {
            Some(EntryFailure {
                id: e.id.clone(),
                code: "InvalidParameter".into(),
                message: "bad".into(),
                sender_fault: true,
            })
        } else if request == 1 {
            Some(EntryFailure {
                id: e.id.clone(),
                code: "Throttled".into(),
                message: "slow down".into(),
                sender_fault: false,
            })
        } else {
            None
        }
    });
    let dl = MemoryDeadLetters::default();
    let config = ProducerConfig { publish_concurrency: 1, ..ProducerConfig::default() };
    let producer = Producer::new(publisher, &dl, config);
    let summary = producer.handle(synthetic(20_000, "retry"), None).await.unwrap();
    assert!(summary.retried_entries >= 1, "{summary:?}");
    assert_eq!(summary.failed_batches, 1);
    let records = dl.records();
    assert_eq!(records.len(), 1);
    let DeadLetter::Recipients { recipients, batch_id, .. } = &records[0].record else { panic!() };
    assert_eq!(batch_id.as_str(), "retry-00000003");
    assert!(recipients.iter().all(|r| r.cause == DeadCause::Unpublished && r.reason.starts_with("InvalidParameter")));
    assert_eq!(summary.dead_lettered_recipients, recipients.len() as u64);
    // Published + dead-lettered = everyone, once.
    let mut all = published_ids(producer.publisher());
    all.extend(recipients.iter().map(|r| r.recipient.id.0.clone()));
    all.sort();
    assert_eq!(all, expected_ids(20_000));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_attempts_run_out() {
    let publisher = MemoryPublisher::failing(|e, _| {
        Some(EntryFailure {
            id: e.id.clone(),
            code: "InternalError".into(),
            message: "boom".into(),
            sender_fault: false,
        })
    });
    let dl = MemoryDeadLetters::default();
    let producer = Producer::new(publisher, &dl, ProducerConfig::default());
    let summary = producer.handle(synthetic(10, "exhaust"), None).await.unwrap();
    assert_eq!(summary.publish_requests, 5, "max_attempts of the producer's policy");
    assert_eq!(summary.dead_lettered_recipients, 10);
}

#[tokio::test]
async fn bad_requests_name_the_field_and_publish_nothing() {
    let producer = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default());
    let req = FanoutRequest::from_json(
        r#"{"channel":"webhook","recipients":{"inline":[{"id":"a","address":"https://x.example/"},{"id":"b","address":"mailto:b@example.com"}]}}"#,
    )
    .unwrap();
    let e = producer.handle(req, None).await.unwrap_err().to_string();
    assert!(e.starts_with("invalid request: recipients.inline[1].address: scheme \"mailto\""), "{e}");
    assert!(producer.publisher().published().is_empty());
}

#[tokio::test]
async fn a_job_past_its_deadline_continues_from_a_cursor_with_the_same_batch_ids() {
    let whole = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default());
    whole.handle(synthetic(30_000, "cont"), None).await.unwrap();
    let mut whole_ids: Vec<(String, String)> =
        whole.publisher().published().into_iter().map(|e| (e.id, e.body)).collect();
    whole_ids.sort();

    // A deadline already past: each invocation publishes one batch and hands back the rest.
    let split = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default());
    let mut req = synthetic(30_000, "cont");
    let mut invocations = 0;
    loop {
        invocations += 1;
        let s = split.handle(req, Some(Instant::now())).await.unwrap();
        match s.continuation {
            Some(next) => req = next,
            None => break,
        }
        assert!(invocations < 1_000);
    }
    assert!(invocations > 5, "the job was split ({invocations} invocations)");
    let mut split_ids: Vec<(String, String)> =
        split.publisher().published().into_iter().map(|e| (e.id, e.body)).collect();
    split_ids.sort();
    assert_eq!(split_ids.len(), whole_ids.len());
    assert!(split_ids == whole_ids, "same batches, same ids, same bodies");
    let unique: HashSet<_> = split_ids.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), split_ids.len());
}

#[tokio::test]
async fn a_job_past_its_invocation_limit_is_refused_before_publishing() {
    let config = ProducerConfig { max_invocations: 3, ..ProducerConfig::default() };
    let producer = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), config);
    let mut request = synthetic(100, "runaway");
    request.resume = Some(fanout_common::Cursor { offset: 10, next_seq: 1, invocation: 3, ..Default::default() });
    let e = producer.handle(request.clone(), None).await.unwrap_err();
    assert!(e.to_string().contains("has taken 3 invocations, the most allowed (FANOUT_MAX_INVOCATIONS)"), "{e}");
    assert!(producer.publisher().published().is_empty());
    request.resume.as_mut().unwrap().invocation = 2;
    let s = producer.handle(request, None).await.unwrap();
    assert_eq!(s.recipients, 90);
}
