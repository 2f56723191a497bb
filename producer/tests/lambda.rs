//! The producer as a Lambda function, driven by the three trigger formats.

use std::time::{Duration, SystemTime};

use fanout_common::{MemoryDeadLetters, RecipientBatch};
use fanout_producer::{lambda, MemoryPublisher, Producer, ProducerConfig};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;

fn event(fixture: &str) -> LambdaEvent<Box<RawValue>> {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut context = Context::default();
    context.request_id = "req-1".into();
    context.deadline =
        (SystemTime::now() + Duration::from_secs(60)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    LambdaEvent::new(RawValue::from_string(text).unwrap(), context)
}

fn producer() -> Producer<MemoryPublisher, MemoryDeadLetters> {
    Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default())
}

fn published_recipients(p: &Producer<MemoryPublisher, MemoryDeadLetters>) -> usize {
    p.publisher().published().iter().map(|e| RecipientBatch::from_json(&e.body).unwrap().recipients.len()).sum()
}

#[tokio::test]
async fn a_direct_invoke_runs_the_job() {
    let p = producer();
    let s = lambda::handle(&p, event("direct_invoke.json")).await.unwrap();
    assert_eq!((s.job_id.as_str(), s.recipients, s.batches), ("welcome-42", 2, 1));
    assert_eq!(published_recipients(&p), 2);
}

#[tokio::test]
async fn an_eventbridge_event_runs_its_detail() {
    let p = producer();
    let s = lambda::handle(&p, event("eventbridge_application_event.json")).await.unwrap();
    assert_eq!((s.job_id.as_str(), s.recipients), ("order-shipped-9001", 2500));
    assert_eq!(published_recipients(&p), 2500);
}

#[tokio::test]
async fn a_schedule_with_constant_input_runs_the_input() {
    let p = producer();
    let s = lambda::handle(&p, event("scheduled_constant_input.json")).await.unwrap();
    assert_eq!((s.job_id.as_str(), s.recipients), ("daily-digest", 100));
}

#[tokio::test]
async fn a_scheduled_event_without_input_is_refused_clearly() {
    let p = producer();
    let e = lambda::handle(&p, event("scheduled_event_without_input.json")).await.unwrap_err();
    let d: Diagnostic = e.into();
    assert_eq!(d.error_type, "InvalidRequest");
    assert!(d.error_message.contains("\"Scheduled Event\" event carries no FanoutRequest"), "{}", d.error_message);
    assert!(p.publisher().published().is_empty());
}

#[tokio::test]
async fn bad_events_are_errors_not_panics() {
    for (payload, want) in [
        ("[1,2,3]", "invalid request"),
        ("{\"channel\":\"fax\",\"recipients\":{\"inline\":[]}}", "channel: unknown variant `fax`"),
        (
            "{\"detail-type\":\"X\",\"source\":\"s\",\"detail\":{\"channel\":\"log\"}}",
            "in detail: missing field `recipients`",
        ),
        ("{\"channel\":\"log\",\"recipients\":{\"inline\":[]}}", "recipients.inline: must not be empty"),
    ] {
        let p = producer();
        let mut ev = event("direct_invoke.json");
        ev.payload = RawValue::from_string(payload.into()).unwrap();
        let e = lambda::handle(&p, ev).await.unwrap_err().to_string();
        assert!(e.contains(want), "{payload}: {e}");
    }
}
