//! The producer as a Lambda function, driven by the three trigger formats.

use std::time::{Duration, SystemTime};

use fanout_common::{FanoutRequest, MemoryDeadLetters, RecipientBatch};
use fanout_producer::{lambda, MemoryContinuer, MemoryPublisher, Producer, ProducerConfig};
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

const NO_CONTINUER: Option<&MemoryContinuer> = None;

fn producer() -> Producer<MemoryPublisher, MemoryDeadLetters> {
    Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), ProducerConfig::default())
}

fn published_recipients(p: &Producer<MemoryPublisher, MemoryDeadLetters>) -> usize {
    p.publisher().published().iter().map(|e| RecipientBatch::from_json(&e.body).unwrap().recipients.len()).sum()
}

#[tokio::test]
async fn a_direct_invoke_runs_the_job() {
    let p = producer();
    let s = lambda::handle(&p, NO_CONTINUER, event("direct_invoke.json")).await.unwrap();
    assert_eq!((s.job_id.as_str(), s.recipients, s.batches), ("welcome-42", 2, 1));
    assert_eq!(published_recipients(&p), 2);
}

#[tokio::test]
async fn an_eventbridge_event_runs_its_detail() {
    let p = producer();
    let s = lambda::handle(&p, NO_CONTINUER, event("eventbridge_application_event.json")).await.unwrap();
    assert_eq!((s.job_id.as_str(), s.recipients), ("order-shipped-9001", 2500));
    assert_eq!(published_recipients(&p), 2500);
}

#[tokio::test]
async fn a_schedule_with_constant_input_runs_the_input() {
    let p = producer();
    let s = lambda::handle(&p, NO_CONTINUER, event("scheduled_constant_input.json")).await.unwrap();
    assert_eq!((s.job_id.as_str(), s.recipients), ("daily-digest", 100));
}

#[tokio::test]
async fn a_scheduled_event_without_input_is_refused_clearly() {
    let p = producer();
    let e = lambda::handle(&p, NO_CONTINUER, event("scheduled_event_without_input.json")).await.unwrap_err();
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
        let e = lambda::handle(&p, NO_CONTINUER, ev).await.unwrap_err().to_string();
        assert!(e.contains(want), "{payload}: {e}");
    }
}

#[tokio::test]
async fn a_job_stopped_by_its_deadline_continues_by_invoking_the_same_function() {
    let config = ProducerConfig { max_invocation: Some(Duration::from_millis(1)), ..ProducerConfig::default() };
    let p = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), config);
    let continuer = MemoryContinuer::default();
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:fanout-producer:live";
    let mut payload = r#"{"job_id":"cont","channel":"noop","limits":{"max_recipients":10},
        "recipients":{"synthetic":{"count":2000,"address":"x"}}}"#
        .to_owned();
    let mut invocations = 0;
    loop {
        invocations += 1;
        let mut ev = event("direct_invoke.json");
        ev.payload = RawValue::from_string(payload).unwrap();
        ev.context.invoked_function_arn = arn.into();
        let s = lambda::handle(&p, Some(&continuer), ev).await.unwrap();
        let started = continuer.take();
        assert_eq!(s.continued, !started.is_empty());
        let Some((function, next)) = started.into_iter().next() else { break };
        assert_eq!(function, arn);
        let expected: Option<&FanoutRequest> = s.continuation.as_ref();
        assert_eq!(serde_json::to_value(expected).unwrap(), serde_json::to_value(&next).unwrap());
        payload = serde_json::to_string(&next).unwrap();
    }
    assert!(invocations > 2, "{invocations} invocations");
    let mut ids: Vec<String> = p
        .publisher()
        .published()
        .iter()
        .flat_map(|e| RecipientBatch::from_json(&e.body).unwrap().recipients.into_iter().map(|r| r.id.0))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000);
    assert_eq!(published_recipients(&p), 2000, "no recipient published twice");
}

#[tokio::test]
async fn a_continuation_too_large_for_an_asynchronous_invoke_is_an_error_naming_the_limit() {
    let config = ProducerConfig { max_invocation: Some(Duration::from_millis(1)), ..ProducerConfig::default() };
    let p = Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), config);
    let recipients: Vec<_> = (0..40_000)
        .map(|n| serde_json::json!({"id": format!("recipient-{n:06}"), "address": "somewhere-rather-long"}))
        .collect();
    let payload = serde_json::json!({"job_id": "big", "channel": "noop", "limits": {"max_recipients": 10},
        "recipients": {"inline": recipients}});
    let mut ev = event("direct_invoke.json");
    ev.payload = RawValue::from_string(payload.to_string()).unwrap();
    ev.context.invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:p".into();
    let continuer = MemoryContinuer::default();
    let e = lambda::handle(&p, Some(&continuer), ev).await.unwrap_err();
    assert!(e.to_string().contains("over the 1048576 byte limit of an asynchronous invoke"), "{e}");
    assert!(continuer.take().is_empty());
}
