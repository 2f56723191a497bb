//! SNS semantics of the embedded topic.

use std::time::Duration;

use fanout_loadtest::engine::{SnsError, Subscription, Topic};
use fanout_producer::PublishEntry;
use fanout_worker::decode::decode_body;

use crate::{fast_clock, never, queue};

fn entry(id: &str, len: usize) -> PublishEntry {
    PublishEntry { id: id.into(), body: "x".repeat(len) }
}

#[test]
fn publish_batch_limits_are_refused_with_the_aws_codes() {
    let (q, _) = queue(fast_clock(), Duration::from_secs(30), None);
    let topic = Topic::new("t", vec![Subscription { queue: q.clone(), raw: true }], 0.0);
    assert_eq!(topic.publish_batch(&[]).unwrap_err(), SnsError::EmptyBatchRequest);
    let eleven: Vec<_> = (0..11).map(|i| entry(&format!("e{i}"), 1)).collect();
    assert_eq!(topic.publish_batch(&eleven).unwrap_err(), SnsError::TooManyEntriesInBatchRequest(11));
    let big = [entry("a", 200_000), entry("b", 62_145)];
    assert_eq!(topic.publish_batch(&big).unwrap_err(), SnsError::BatchRequestTooLong(262_145));
    assert!(topic.publish_batch(&[entry("a", 200_000), entry("b", 62_144)]).is_ok(), "262,144 bytes is allowed");
    assert!(matches!(topic.publish_batch(&[entry("a", 1), entry("a", 1)]), Err(SnsError::BatchEntryIdsNotDistinct(_))));
    assert!(matches!(topic.publish_batch(&[entry("a.b", 1)]), Err(SnsError::InvalidBatchEntryId(_))));
    assert!(matches!(topic.publish_batch(&[entry(&"a".repeat(81), 1)]), Err(SnsError::InvalidBatchEntryId(_))));
    assert_eq!(q.len(), 2, "only the accepted request delivered");
}

#[tokio::test]
async fn raw_delivery_passes_the_body_and_the_envelope_wraps_it() {
    let (raw_q, _) = queue(fast_clock(), Duration::from_secs(30), None);
    let (env_q, _) = queue(fast_clock(), Duration::from_secs(30), None);
    let topic = Topic::new(
        "t",
        vec![Subscription { queue: raw_q.clone(), raw: true }, Subscription { queue: env_q.clone(), raw: false }],
        0.0,
    );
    let body = r#"{"v":1,"job_id":"j","batch_id":"j-00000000","attempt":1,"channel":"noop","payload":null,"recipients":[{"id":"a","address":"x"}]}"#;
    let out = topic.publish_batch(&[PublishEntry { id: "j-00000000".into(), body: body.into() }]).unwrap();
    assert_eq!(out.successful.len(), 1);
    let raw = raw_q.receive(1, Duration::ZERO, &never()).await.unwrap().remove(0);
    let env = env_q.receive(1, Duration::ZERO, &never()).await.unwrap().remove(0);
    assert_eq!(&*raw.body, body);
    assert!(env.body.starts_with('{') && env.body.contains("\"Type\":\"Notification\""));
    assert_eq!(raw.message_id, env.message_id, "one SNS message id for every subscription");
    assert_eq!(decode_body(&env.body).unwrap().to_json(), body);
}

#[test]
fn injected_throttling_fails_entries_without_a_sender_fault() {
    let (q, _) = queue(fast_clock(), Duration::from_secs(30), None);
    let topic = Topic::new("t", vec![Subscription { queue: q.clone(), raw: true }], 1.0);
    let out = topic.publish_batch(&[entry("a", 10), entry("b", 10)]).unwrap();
    assert_eq!(out.failed.len(), 2);
    assert!(out.failed.iter().all(|f| f.code == "Throttled" && !f.sender_fault));
    assert!(q.is_empty());
}
