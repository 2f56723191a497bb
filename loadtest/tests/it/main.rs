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
use fanout_loadtest::engine::Queue;

/// 1,000 simulated seconds per real second: a 30 s visibility timeout lasts 30 ms.
pub fn fast_clock() -> Clock {
    Clock::new(1000.0)
}

/// A queue with `visibility` and, if `max_receive_count` is set, a redrive to its DLQ.
pub fn queue(clock: Clock, visibility: Duration, max_receive_count: Option<u32>) -> (Arc<Queue>, Arc<Queue>) {
    Queue::with_dlq("q", clock, visibility, max_receive_count, 0.0)
}

/// A stop signal that never fires.
pub fn never() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    rx
}
