//! Integration tests of the load-test crate: the engine's AWS semantics, the webhook
//! deliverer against the sink, and whole runs with injected faults. One binary, shared
//! helpers.

mod engine_esm;
mod engine_queue;
mod engine_topic;
mod pipeline;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use fanout_loadtest::clock::Clock;
use fanout_loadtest::engine::{Queue, QueueConfig, Redrive};

/// 1,000 simulated seconds per real second: a 30 s visibility timeout lasts 30 ms.
pub fn fast_clock() -> Clock {
    Clock::new(1000.0)
}

/// A queue with `visibility` and, if `max_receive_count` is set, a DLQ.
pub fn queue(clock: Clock, visibility: Duration, max_receive_count: Option<u32>) -> (Arc<Queue>, Arc<Queue>) {
    let dlq = Queue::new(
        QueueConfig { name: "dlq".into(), visibility_timeout: visibility, redrive: None, duplicate_rate: 0.0 },
        clock,
    );
    let q = Queue::new(
        QueueConfig {
            name: "q".into(),
            visibility_timeout: visibility,
            redrive: max_receive_count.map(|n| Redrive { dlq: dlq.clone(), max_receive_count: n }),
            duplicate_rate: 0.0,
        },
        clock,
    );
    (q, dlq)
}

/// A stop signal that never fires.
pub fn never() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    rx
}
