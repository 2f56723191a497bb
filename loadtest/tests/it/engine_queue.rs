//! SQS semantics of the embedded queue.

use std::time::Duration;

use fanout_loadtest::engine::SqsError;

use crate::{fast_clock, never, queue};

#[tokio::test]
async fn a_received_message_is_hidden_then_redelivered_after_the_visibility_timeout() {
    // 300 s of visibility is 0.3 s of real time: long enough that "still hidden" holds on a
    // loaded machine, short enough to wait out.
    let (q, _) = queue(fast_clock(), Duration::from_secs(300), None);
    q.send("hello", 0).unwrap();
    let first = q.receive(10, Duration::ZERO, &never()).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(q.receive(10, Duration::ZERO, &never()).await.unwrap().is_empty(), "in flight: invisible");
    let mut again = Vec::new();
    for _ in 0..100 {
        again = q.receive(10, Duration::from_secs(20), &never()).await.unwrap();
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
    assert_eq!(q.counters.redeliveries.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn delete_needs_the_latest_receipt_handle() {
    let (q, _) = queue(fast_clock(), Duration::from_secs(1), None);
    q.send("m", 0).unwrap();
    let old = q.receive(1, Duration::ZERO, &never()).await.unwrap().remove(0);
    let new = q.receive(1, Duration::from_secs(5), &never()).await.unwrap().remove(0);
    q.delete_batch(std::slice::from_ref(&old.receipt_handle)).unwrap();
    assert_eq!(q.len(), 1, "a stale handle succeeds but deletes nothing");
    q.delete_batch(&[new.receipt_handle]).unwrap();
    assert!(q.is_empty());
    assert!(matches!(q.delete_batch(&["garbage".into()]), Err(SqsError::ReceiptHandleIsInvalid(_))));
}

#[tokio::test]
async fn after_max_receive_count_the_message_moves_to_the_dlq() {
    let (q, dlq) = queue(fast_clock(), Duration::from_secs(1), Some(3));
    let id = q.send("doomed", 0).unwrap();
    for n in 1..=3 {
        let got = q.receive(1, Duration::from_secs(5), &never()).await.unwrap();
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
    }
    // The fourth receive attempt moves it instead of delivering it.
    let got = q.receive(1, Duration::from_secs(5), &never()).await.unwrap();
    assert!(got.is_empty());
    assert!(q.is_empty());
    let moved = dlq.receive(1, Duration::ZERO, &never()).await.unwrap();
    assert_eq!(&*moved[0].body, "doomed");
    assert_eq!(&*moved[0].message_id, id.as_str(), "the message keeps its id");
}

#[tokio::test]
async fn delay_seconds_hide_a_new_message() {
    let (q, _) = queue(fast_clock(), Duration::from_secs(30), None);
    // 900 s, the longest delay: 0.9 s of real time at the test clock's speed.
    q.send("later", 900).unwrap();
    assert!(q.receive(1, Duration::ZERO, &never()).await.unwrap().is_empty());
    let got = q.receive(1, Duration::from_secs(20), &never()).await.unwrap();
    assert!(got.is_empty(), "20 s of a 900 s delay");
    let mut got = Vec::new();
    for _ in 0..100 {
        got = q.receive(1, Duration::from_secs(20), &never()).await.unwrap();
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1);
    assert!(matches!(q.send("x", 901), Err(SqsError::InvalidParameterValue(_))));
}

#[tokio::test]
async fn send_and_receive_limits_are_aws_limits() {
    let (q, _) = queue(fast_clock(), Duration::from_secs(30), None);
    let entry = |id: &str, len: usize| (id.to_owned(), "x".repeat(len), 0);
    assert_eq!(q.send_batch(&[]), Err(SqsError::EmptyBatchRequest));
    let eleven: Vec<_> = (0..11).map(|i| entry(&i.to_string(), 1)).collect();
    assert_eq!(q.send_batch(&eleven), Err(SqsError::TooManyEntriesInBatchRequest(11)));
    assert_eq!(
        q.send_batch(&[entry("a", 600_000), entry("b", 600_000)]),
        Err(SqsError::BatchRequestTooLong(1_200_000))
    );
    assert!(matches!(q.send_batch(&[entry("a", 1), entry("a", 1)]), Err(SqsError::BatchEntryIdsNotDistinct(_))));
    let per_entry = q.send_batch(&[entry("a", 1), ("b".into(), "y".into(), 5000)]).unwrap();
    assert!(per_entry[0].is_ok());
    assert!(matches!(per_entry[1], Err(SqsError::InvalidParameterValue(_))));
    assert!(matches!(q.send(&"z".repeat(1024 * 1024 + 1), 0), Err(SqsError::InvalidParameterValue(_))));
    assert!(q.receive(11, Duration::ZERO, &never()).await.is_err());
    assert!(q.receive(1, Duration::from_secs(21), &never()).await.is_err());
    assert_eq!(q.len(), 1);
}

#[tokio::test]
async fn change_visibility_to_zero_makes_a_message_visible_again() {
    let (q, _) = queue(fast_clock(), Duration::from_secs(3600), None);
    q.send("m", 0).unwrap();
    let m = q.receive(1, Duration::ZERO, &never()).await.unwrap().remove(0);
    q.change_visibility(&m.receipt_handle, Duration::ZERO).unwrap();
    let again = q.receive(1, Duration::ZERO, &never()).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(q.change_visibility(&m.receipt_handle, Duration::ZERO).is_err(), "the old handle is stale now");
}

#[tokio::test]
async fn the_at_least_once_model_stores_some_messages_twice_under_one_id() {
    let clock = fast_clock();
    let q = fanout_loadtest::engine::Queue::new(
        fanout_loadtest::engine::QueueConfig {
            name: "dup".into(),
            visibility_timeout: Duration::from_secs(30),
            redrive: None,
            duplicate_rate: 1.0,
        },
        clock,
    );
    q.send("m", 0).unwrap();
    let got = q.receive(10, Duration::ZERO, &never()).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message_id, got[1].message_id);
}
