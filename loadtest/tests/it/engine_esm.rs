//! The event source mapping model: batches, the response rules, whole-batch failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use fanout_loadtest::engine::{EsmConfig, EventSourceMapping, Function, Queue};
use futures::FutureExt;

use fanout_loadtest::clock::Clock;

use crate::queue;

/// 100 simulated seconds per real second: the 5 s function timeout is 50 ms, the 30 s
/// visibility timeout 300 ms — short, but far above what a trivial function needs on a
/// loaded machine.
fn clock() -> Clock {
    Clock::new(100.0)
}

type Rule = dyn Fn(usize, &SqsEvent) -> Result<SqsBatchResponse, String> + Send + Sync;

/// A function answering invocation `n` (from 0) by `rule`, recording the batches it saw.
fn function(rule: Arc<Rule>, seen: Arc<Mutex<Vec<Vec<String>>>>) -> Function {
    let n = Arc::new(AtomicUsize::new(0));
    Arc::new(move |event: SqsEvent, _deadline: Instant| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        seen.lock().unwrap().push(event.records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect());
        let out = rule(i, &event);
        async move { out }.boxed()
    })
}

fn config() -> EsmConfig {
    EsmConfig {
        batch_size: 10,
        batching_window: Duration::ZERO,
        maximum_concurrency: 2,
        function_timeout: Duration::from_secs(5),
        memory_mb: 128,
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn fail(ids: &[&str]) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    for id in ids {
        r.add_failure(*id);
    }
    r
}

/// Sends `n` messages, runs the mapping with `rule` until the queue is empty, returns
/// (whole-batch failures, redeliveries, batches seen).
async fn drive(n: usize, rule: Arc<Rule>, cfg: EsmConfig) -> (u64, u64, Vec<Vec<String>>) {
    let clock = clock();
    let (q, _) = queue(clock, Duration::from_secs(30), None);
    for i in 0..n {
        q.send(&format!("m{i}"), 0).unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let esm = EventSourceMapping::start(q.clone(), function(rule, seen.clone()), cfg, clock).unwrap();
    let queue_ref: Arc<Queue> = q.clone();
    until("the queue to drain", || queue_ref.is_empty() && esm.counters.running.load(Ordering::SeqCst) == 0).await;
    let whole = esm.counters.whole_batch_failures.load(Ordering::Relaxed);
    esm.stop().await;
    let redeliveries = q.counters.redeliveries.load(Ordering::Relaxed);
    let seen = seen.lock().unwrap().clone();
    (whole, redeliveries, seen)
}

#[tokio::test]
async fn reported_items_stay_and_the_rest_is_deleted() {
    let first_id = Arc::new(Mutex::new(None::<String>));
    let rule: Arc<Rule> = {
        let first_id = first_id.clone();
        Arc::new(move |i, e| {
            if i == 0 {
                let id = e.records[0].message_id.clone().unwrap();
                *first_id.lock().unwrap() = Some(id.clone());
                Ok(fail(&[&id]))
            } else {
                Ok(SqsBatchResponse::default())
            }
        })
    };
    let (whole, redeliveries, seen) = drive(10, rule, config()).await;
    assert_eq!(whole, 0);
    assert_eq!(redeliveries, 1, "only the reported message came back");
    let id = first_id.lock().unwrap().clone().unwrap();
    assert_eq!(seen.concat().iter().filter(|m| **m == id).count(), 2);
}

async fn whole_batch_fails_when(
    rule_first: impl Fn(&SqsEvent) -> Result<SqsBatchResponse, String> + Send + Sync + 'static,
) {
    let rule: Arc<Rule> = Arc::new(move |i, e| if i == 0 { rule_first(e) } else { Ok(SqsBatchResponse::default()) });
    let (whole, redeliveries, seen) = drive(5, rule, EsmConfig { maximum_concurrency: 2, ..config() }).await;
    assert_eq!(whole, 1);
    assert_eq!(redeliveries as usize, seen[0].len(), "every message of the failed batch came back");
}

#[tokio::test]
async fn an_item_identifier_not_in_the_batch_fails_the_whole_batch() {
    whole_batch_fails_when(|_| Ok(fail(&["not-in-this-batch"]))).await;
}

#[tokio::test]
async fn an_empty_item_identifier_fails_the_whole_batch() {
    whole_batch_fails_when(|_| Ok(fail(&[""]))).await;
}

#[tokio::test]
async fn a_handler_error_fails_the_whole_batch() {
    whole_batch_fails_when(|_| Err("boom".into())).await;
}

#[tokio::test]
async fn a_panic_or_a_timeout_fails_the_whole_batch() {
    let clock = clock();
    for mode in ["panic", "timeout"] {
        let (q, _) = queue(clock, Duration::from_secs(30), None);
        q.send("m", 0).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let f: Function = {
            let calls = calls.clone();
            Arc::new(move |_e, _d| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first && mode == "panic" {
                        panic!("handler bug");
                    }
                    if first {
                        // 200 ms real is 20 s simulated: past the 5 s timeout.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(SqsBatchResponse::default())
                }
                .boxed()
            })
        };
        let esm = EventSourceMapping::start(q.clone(), f, config(), clock).unwrap();
        until("the retry to succeed", || q.is_empty() && esm.counters.running.load(Ordering::SeqCst) == 0).await;
        assert_eq!(esm.counters.whole_batch_failures.load(Ordering::Relaxed), 1, "{mode}");
        assert!(calls.load(Ordering::SeqCst) >= 2, "{mode}");
        esm.stop().await;
    }
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_and_a_window_gathers_more_than_ten() {
    let rule: Arc<Rule> = Arc::new(|_, _| Ok(SqsBatchResponse::default()));
    let (_, _, seen) = drive(35, rule.clone(), config()).await;
    assert!(seen.iter().all(|b| b.len() <= 10));
    assert_eq!(seen.iter().map(Vec::len).sum::<usize>(), 35);
    let big = EsmConfig { batch_size: 100, batching_window: Duration::from_secs(1), ..config() };
    let (_, _, seen) = drive(35, rule, big).await;
    assert!(seen.iter().any(|b| b.len() > 10), "{:?}", seen.iter().map(Vec::len).collect::<Vec<_>>());
}

#[test]
fn settings_outside_the_aws_ranges_are_refused() {
    let bad = [
        EsmConfig { batch_size: 0, ..config() },
        EsmConfig { batch_size: 10_001, batching_window: Duration::from_secs(1), ..config() },
        EsmConfig { batch_size: 11, batching_window: Duration::ZERO, ..config() },
        EsmConfig { maximum_concurrency: 1, ..config() },
        EsmConfig { function_timeout: Duration::from_secs(901), ..config() },
        EsmConfig { batching_window: Duration::from_secs(301), ..config() },
    ];
    for cfg in bad {
        assert!(cfg.check().is_err(), "{cfg:?}");
    }
    assert!(config().check().is_ok());
}
