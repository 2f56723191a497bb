//! The worker handler, driven by SQS event fixtures and scripted deliverers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use fanout_common::{
    DeadCause, DeadLetter, FailureClass, JobId, MemoryDeadLetters, Recipient, RecipientBatch, RetryPolicy,
};
use fanout_worker::{Deliverer, Delivery, MemoryRequeue, NoopDeliverer, Outcome, Worker, WorkerConfig};

fn fixture_event() -> SqsEvent {
    let path = format!("{}/tests/fixtures/sqs_event_raw_envelope_poison.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn batch(job: &str, seq: u64, attempt: u32, ids: &[&str]) -> RecipientBatch {
    let job = JobId::parse(job).unwrap();
    RecipientBatch {
        v: fanout_common::message::V1,
        batch_id: job.batch_id(seq),
        job_id: job,
        attempt,
        channel: fanout_common::Channel::Noop,
        payload: serde_json::value::RawValue::from_string("{\"n\":1}".into()).unwrap(),
        recipients: ids.iter().map(|id| Recipient::new(*id, "nowhere")).collect(),
    }
}

fn event(bodies: &[String]) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(b.clone());
            m
        })
        .collect();
    e
}

fn failed_ids(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

/// Fails recipients by their id: `t…` transient, `p…` permanent, `z…` throttled (7 s),
/// `boom` panics; everyone else is delivered. Counts deliveries.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<String>>,
    slow: Option<Duration>,
}

impl Deliverer for Scripted {
    async fn deliver(&self, d: Delivery<'_>) -> Outcome {
        if let Some(s) = self.slow {
            tokio::time::sleep(s).await;
        }
        let id = d.recipient.id.as_str().to_owned();
        self.seen.lock().unwrap().push(id.clone());
        match id.chars().next() {
            _ if id == "boom" => panic!("deliverer bug"),
            Some('t') => Outcome::Failed { class: FailureClass::Transient, reason: "http 503".into() },
            Some('p') => Outcome::Failed { class: FailureClass::Permanent, reason: "http 410".into() },
            Some('z') => Outcome::Failed {
                class: FailureClass::Throttled { retry_after: Some(Duration::from_secs(7)) },
                reason: "http 429".into(),
            },
            _ => Outcome::Delivered,
        }
    }
}

#[tokio::test]
async fn raw_envelope_and_poison_records_each_get_their_own_fate() {
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let seen = Scripted::default();
    let worker = Worker::new(seen, &q, &dl, WorkerConfig::default());
    let (resp, report) = worker.handle_with_report(fixture_event(), far()).await;
    assert!(resp.batch_item_failures.is_empty(), "poison is dead-lettered, not retried: {resp:?}");
    assert_eq!(report.delivered, 3, "two raw recipients and one from the SNS envelope");
    assert_eq!(report.poison, 1);
    let records = dl.records();
    assert_eq!(records.len(), 1);
    match &records[0].record {
        DeadLetter::Poison { message_id, reason, body } => {
            assert_eq!(message_id, "9a7b4c1e-0d1f-4a55-9e33-5b7d2f1c0e11");
            assert!(reason.contains("EOF"), "{reason}");
            assert!(body.starts_with("{\"v\":1"));
        }
        other => panic!("{other:?}"),
    }
    assert!(q.sent().is_empty());
}

#[tokio::test]
async fn partial_failure_re_enqueues_only_the_transient_ones_and_dead_letters_the_permanent() {
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let config = WorkerConfig::default();
    let worker = Worker::new(Scripted::default(), &q, &dl, config);
    let b = batch("job", 4, 2, &["ok1", "t1", "p1", "ok2", "t2", "z1"]);
    let resp = worker.handle(event(&[b.to_json()]), far()).await;
    assert!(resp.batch_item_failures.is_empty(), "the original succeeds once its retry is queued");

    let sent = q.sent();
    assert_eq!(sent.len(), 1);
    let retry = RecipientBatch::from_json(&sent[0].body).unwrap();
    assert_eq!(retry.attempt, 3);
    assert_eq!(retry.batch_id.as_str(), "job-00000004.a3");
    let mut ids: Vec<_> = retry.recipients.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["t1", "t2", "z1"]);
    assert_eq!(retry.payload.get(), "{\"n\":1}");
    assert!(sent[0].delay_seconds >= 7, "a throttle's Retry-After is honoured: {}", sent[0].delay_seconds);
    assert!(sent[0].delay_seconds <= 900);

    let records = dl.records();
    let DeadLetter::Recipients { recipients, batch_id, .. } = &records[0].record else { panic!() };
    assert_eq!(batch_id.as_str(), "job-00000004");
    assert_eq!(recipients.len(), 1);
    assert_eq!(recipients[0].recipient.id.as_str(), "p1");
    assert_eq!(recipients[0].cause, DeadCause::Permanent);
    assert_eq!(recipients[0].reason, "http 410");
}

#[tokio::test]
async fn exhausted_attempts_go_to_the_dead_letter_record() {
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let config =
        WorkerConfig { retry: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() }, ..WorkerConfig::default() };
    let worker = Worker::new(Scripted::default(), &q, &dl, config);
    let resp = worker.handle(event(&[batch("job", 0, 3, &["t1", "ok"]).to_json()]), far()).await;
    assert!(resp.batch_item_failures.is_empty());
    assert!(q.sent().is_empty());
    let DeadLetter::Recipients { recipients, .. } = &dl.records()[0].record else { panic!() };
    assert_eq!(recipients[0].cause, DeadCause::Exhausted);
    assert_eq!(recipients[0].attempt, 3);
}

#[tokio::test]
async fn a_failed_re_enqueue_brings_the_message_back_and_its_neighbours_are_untouched() {
    let q = MemoryRequeue::failing();
    let dl = MemoryDeadLetters::default();
    let worker = Worker::new(Scripted::default(), &q, &dl, WorkerConfig::default());
    let bodies = [batch("job", 0, 1, &["t1"]).to_json(), batch("job", 1, 1, &["ok"]).to_json()];
    let resp = worker.handle(event(&bodies), far()).await;
    assert_eq!(failed_ids(&resp), ["m0"]);
}

#[tokio::test]
async fn total_failure_is_every_id_not_an_error() {
    let q = MemoryRequeue::failing();
    let dl = MemoryDeadLetters::default();
    let worker = Worker::new(Scripted::default(), &q, &dl, WorkerConfig::default());
    let bodies: Vec<String> = (0..5).map(|i| batch("job", i, 1, &["t1", "t2"]).to_json()).collect();
    let resp = worker.handle(event(&bodies), far()).await;
    assert_eq!(failed_ids(&resp), ["m0", "m1", "m2", "m3", "m4"]);
}

#[tokio::test]
async fn a_panic_fails_its_own_record_only() {
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let worker = Worker::new(Scripted::default(), &q, &dl, WorkerConfig::default());
    let bodies = [
        batch("job", 0, 1, &["ok1"]).to_json(),
        batch("job", 1, 1, &["boom"]).to_json(),
        batch("job", 2, 1, &["ok2"]).to_json(),
    ];
    let (resp, report) = worker.handle_with_report(event(&bodies), far()).await;
    assert_eq!(failed_ids(&resp), ["m1"]);
    assert_eq!(report.delivered, 2);
}

#[tokio::test]
async fn ids_reported_are_only_ids_of_the_batch_and_never_empty() {
    let q = MemoryRequeue::failing();
    let dl = MemoryDeadLetters::default();
    let worker = Worker::new(Scripted::default(), &q, &dl, WorkerConfig::default());
    let mut e = event(&[batch("job", 0, 1, &["t1"]).to_json(), batch("job", 1, 1, &["t2"]).to_json()]);
    e.records[1].message_id = Some(String::new());
    let resp = worker.handle(e, far()).await;
    assert_eq!(failed_ids(&resp), ["m0"]);
}

#[tokio::test]
async fn the_deadline_stops_new_deliveries_and_reports_what_is_unfinished() {
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let slow = Scripted { slow: Some(Duration::from_millis(40)), ..Scripted::default() };
    let config =
        WorkerConfig { concurrency: 1, deadline_margin: Duration::from_millis(100), ..WorkerConfig::default() };
    let worker = Worker::new(slow, &q, &dl, config);
    let ids: Vec<String> = (0..10).map(|i| format!("ok{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let bodies: Vec<String> = (0..4).map(|i| batch("job", i, 1, &refs).to_json()).collect();
    let started = Instant::now();
    let (resp, report) = worker.handle_with_report(event(&bodies), Instant::now() + Duration::from_millis(800)).await;
    assert!(started.elapsed() < Duration::from_millis(800), "answered before the deadline");
    assert!(report.delivered > 0 && report.delivered < 40, "{report:?}");
    // Everyone is accounted for: delivered now, continued in a new batch, or in a
    // message that returns to the queue whole.
    let continued: usize = q.sent().iter().map(|o| RecipientBatch::from_json(&o.body).unwrap().recipients.len()).sum();
    assert_eq!(continued, report.continued);
    let returned = resp.batch_item_failures.len() * 10;
    assert_eq!(report.delivered + report.continued + returned, 40, "{report:?} {resp:?}");
    assert!(report.continued > 0, "unfinished recipients are continued: {report:?}");
    for o in q.sent() {
        let c = RecipientBatch::from_json(&o.body).unwrap();
        assert_eq!(c.attempt, 1, "a continuation is not a retry");
        assert!(c.batch_id.as_str().ends_with(".c"));
        assert_eq!(o.delay_seconds, 0);
    }
}

#[tokio::test]
async fn concurrency_is_bounded_across_all_records() {
    struct Gauge {
        now: AtomicUsize,
        peak: AtomicUsize,
    }
    impl Deliverer for Gauge {
        async fn deliver(&self, _: Delivery<'_>) -> Outcome {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Outcome::Delivered
        }
    }
    let gauge = std::sync::Arc::new(Gauge { now: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let config = WorkerConfig { concurrency: 7, ..WorkerConfig::default() };
    let worker = Worker::new(gauge.clone(), &q, &dl, config);
    let ids: Vec<String> = (0..30).map(|i| format!("ok{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let bodies: Vec<String> = (0..5).map(|i| batch("job", i, 1, &refs).to_json()).collect();
    let (_, report) = worker.handle_with_report(event(&bodies), far()).await;
    assert_eq!(report.delivered, 150);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn idempotency_keys_are_the_same_on_every_attempt() {
    struct Keys(Mutex<HashSet<String>>);
    impl Deliverer for Keys {
        async fn deliver(&self, d: Delivery<'_>) -> Outcome {
            self.0.lock().unwrap().insert(d.key.to_string());
            Outcome::Delivered
        }
    }
    let keys = std::sync::Arc::new(Keys(Mutex::default()));
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let worker = Worker::new(keys.clone(), &q, &dl, WorkerConfig::default());
    let bodies = [batch("job", 0, 1, &["a"]).to_json(), batch("job", 0, 4, &["a"]).to_json()];
    worker.handle(event(&bodies), far()).await;
    assert_eq!(keys.0.lock().unwrap().len(), 1);
    let _ = NoopDeliverer;
}

#[tokio::test]
async fn a_delivery_still_running_at_the_hard_deadline_is_abandoned_and_retried() {
    let q = MemoryRequeue::default();
    let dl = MemoryDeadLetters::default();
    let stuck = Scripted { slow: Some(Duration::from_secs(30)), ..Scripted::default() };
    let config = WorkerConfig { deadline_margin: Duration::from_millis(300), ..WorkerConfig::default() };
    // 900 ms: the margin stays 300 ms (a third), the hard stop is at 800 ms.
    let worker = Worker::new(stuck, &q, &dl, config);
    let started = Instant::now();
    let resp = worker
        .handle(event(&[batch("job", 0, 1, &["ok1", "ok2"]).to_json()]), Instant::now() + Duration::from_millis(900))
        .await;
    assert!(started.elapsed() < Duration::from_millis(900), "answered before the deadline: {:?}", started.elapsed());
    assert!(resp.batch_item_failures.is_empty());
    let sent = q.sent();
    let retry = RecipientBatch::from_json(&sent[0].body).unwrap();
    assert_eq!(retry.attempt, 2, "abandoned deliveries are transient failures");
    assert_eq!(retry.recipients.len(), 2);
}
