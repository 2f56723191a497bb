//! A Lambda SQS event source mapping in memory: pollers receive from the queue, gather a
//! batch, invoke the function and apply its `SqsBatchResponse` by the AWS rules.
//!
//! Kept: batch size 1–10,000 (above 10 only with a batching window of at least 1 s), batching
//! window 0–300 s, the 6 MB invoke payload (a batch stops growing before it), maximum
//! concurrency 2–1,000 (one poller per slot), the function timeout (a late invocation fails
//! its whole batch), and the response rules: with `ReportBatchItemFailures`, the listed
//! messages stay on the queue and the rest are deleted; an empty or unknown
//! `itemIdentifier`, a handler error, a panic or a timeout fails the whole batch (nothing is
//! deleted; the messages return after their visibility timeout).
//!
//! Differences from AWS: the number of pollers is fixed at the maximum concurrency (AWS
//! scales pollers up from five with the backlog); invocations run in this process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use fanout_common::limits::{
    ESM_BATCH_SIZE_WITHOUT_WINDOW, ESM_MAX_BATCHING_WINDOW_SECONDS, ESM_MAX_BATCH_SIZE, ESM_MAX_MAXIMUM_CONCURRENCY,
    ESM_MIN_MAXIMUM_CONCURRENCY, LAMBDA_MAX_TIMEOUT_SECONDS, LAMBDA_SYNC_PAYLOAD_MAX_BYTES, SQS_BATCH_MAX_ENTRIES,
};
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::engine::queue::{Queue, Received};

/// The function an event source mapping invokes: an SQS event and the deadline (real
/// time) in, a response or a handler error out.
pub type Function =
    Arc<dyn Fn(SqsEvent, Instant) -> BoxFuture<'static, Result<SqsBatchResponse, String>> + Send + Sync>;

/// Settings of the mapping and of the function's timeout and memory.
#[derive(Debug, Clone, Copy)]
pub struct EsmConfig {
    /// Most messages per invocation.
    pub batch_size: usize,
    /// How long to gather a batch (simulated).
    pub batching_window: Duration,
    /// Invocations at once.
    pub maximum_concurrency: usize,
    /// The function's timeout (simulated).
    pub function_timeout: Duration,
    /// The function's memory, for GB-seconds.
    pub memory_mb: u32,
}

impl Default for EsmConfig {
    fn default() -> Self {
        Self {
            batch_size: 10,
            batching_window: Duration::ZERO,
            maximum_concurrency: 8,
            function_timeout: Duration::from_secs(30),
            memory_mb: 1024,
        }
    }
}

impl EsmConfig {
    /// Checks the settings as `CreateEventSourceMapping` and `CreateFunction` would.
    pub fn check(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.batch_size > ESM_MAX_BATCH_SIZE {
            return Err(format!("BatchSize {} is not 1 to {ESM_MAX_BATCH_SIZE}", self.batch_size));
        }
        if self.batching_window > Duration::from_secs(u64::from(ESM_MAX_BATCHING_WINDOW_SECONDS)) {
            return Err("MaximumBatchingWindowInSeconds is over 300".into());
        }
        if self.batch_size > ESM_BATCH_SIZE_WITHOUT_WINDOW && self.batching_window < Duration::from_secs(1) {
            return Err(format!("BatchSize {} needs MaximumBatchingWindowInSeconds of at least 1", self.batch_size));
        }
        if !(ESM_MIN_MAXIMUM_CONCURRENCY..=ESM_MAX_MAXIMUM_CONCURRENCY).contains(&self.maximum_concurrency) {
            return Err(format!("MaximumConcurrency {} is not 2 to 1000", self.maximum_concurrency));
        }
        if self.function_timeout.is_zero()
            || self.function_timeout > Duration::from_secs(u64::from(LAMBDA_MAX_TIMEOUT_SECONDS))
        {
            return Err("function Timeout is not 1 to 900 seconds".into());
        }
        Ok(())
    }
}

/// Invocation counters, for the report and the cost model.
#[derive(Debug, Default)]
pub struct EsmCounters {
    /// Function invocations.
    pub invocations: AtomicU64,
    /// Messages handed to invocations.
    pub messages: AtomicU64,
    /// Invocations whose whole batch failed (error, panic, timeout, bad response).
    pub whole_batch_failures: AtomicU64,
    /// Messages reported in `batchItemFailures` of valid responses.
    pub item_failures: AtomicU64,
    /// Sum of invocation durations, in microseconds (billed per millisecond).
    pub billed_micros: AtomicU64,
    /// Invocations running now.
    pub running: AtomicUsize,
}

/// A running mapping.
pub struct EventSourceMapping {
    stop: watch::Sender<bool>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    /// Its counters.
    pub counters: Arc<EsmCounters>,
}

/// Approximate bytes a record adds to the invoke payload: the body escaped as a JSON string
/// plus the record's attributes.
fn record_bytes(body: &str) -> usize {
    let escapes = body.bytes().filter(|b| *b == b'"' || *b == b'\\').count();
    body.len() + escapes + 700
}

impl EventSourceMapping {
    /// Starts `config.maximum_concurrency` pollers on `queue` invoking `function`.
    pub fn start(queue: Arc<Queue>, function: Function, config: EsmConfig, clock: Clock) -> Result<Self, String> {
        config.check()?;
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(EsmCounters::default());
        let pollers = (0..config.maximum_concurrency)
            .map(|_| {
                let poller = Poller {
                    queue: queue.clone(),
                    function: function.clone(),
                    config,
                    clock,
                    stop: stopped.clone(),
                    counters: counters.clone(),
                };
                tokio::spawn(poller.run())
            })
            .collect();
        Ok(Self { stop, pollers, counters })
    }

    /// Stops polling and waits for running invocations to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for p in self.pollers {
            let _ = p.await;
        }
    }
}

struct Poller {
    queue: Arc<Queue>,
    function: Function,
    config: EsmConfig,
    clock: Clock,
    stop: watch::Receiver<bool>,
    counters: Arc<EsmCounters>,
}

impl Poller {
    async fn run(self) {
        while !*self.stop.borrow() {
            let batch = self.gather().await;
            if batch.is_empty() {
                continue;
            }
            self.invoke(batch).await;
        }
    }

    /// Long-polls for a first message, then fills the batch until it is full, the payload
    /// limit is near, or the batching window closes.
    async fn gather(&self) -> Vec<Received> {
        let first = self.receive(self.config.batch_size.min(SQS_BATCH_MAX_ENTRIES), Duration::from_secs(20)).await;
        if first.is_empty() {
            return first;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut held = Vec::new();
        let window_ends = self.clock.now() + self.config.batching_window;
        let mut incoming = first;
        loop {
            for m in incoming {
                let b = record_bytes(&m.body);
                if batch.len() < self.config.batch_size && bytes + b <= LAMBDA_SYNC_PAYLOAD_MAX_BYTES {
                    bytes += b;
                    batch.push(m);
                } else {
                    held.push(m);
                }
            }
            let room = self.config.batch_size - batch.len();
            let left = window_ends.saturating_sub(self.clock.now());
            if room == 0 || !held.is_empty() || left.is_zero() || *self.stop.borrow() {
                break;
            }
            incoming = self.receive(room.min(SQS_BATCH_MAX_ENTRIES), left.min(Duration::from_secs(20))).await;
        }
        // Messages that did not fit go back at once for the next invocation.
        for m in held {
            let _ = self.queue.change_visibility(&m.receipt_handle, Duration::ZERO);
        }
        batch
    }

    async fn receive(&self, max: usize, wait: Duration) -> Vec<Received> {
        self.queue.receive(max, wait, &self.stop).await.unwrap_or_default()
    }

    async fn invoke(&self, batch: Vec<Received>) {
        let mut event = SqsEvent::default();
        event.records = batch.iter().map(|m| to_record(m, self.queue.name())).collect();
        let timeout = self.clock.real(self.config.function_timeout);
        let started = Instant::now();
        let deadline = started + timeout;
        self.counters.invocations.fetch_add(1, Ordering::Relaxed);
        self.counters.messages.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.counters.running.fetch_add(1, Ordering::SeqCst);
        let mut task = tokio::spawn((self.function)(event, deadline));
        let result = match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(handler_error))) => Err(format!("handler error: {handler_error}")),
            Ok(Err(join)) => Err(format!("runtime error: {join}")),
            Err(_) => {
                // Lambda stops a function at its timeout: nothing it started goes on.
                task.abort();
                Err("Task timed out".to_owned())
            }
        };
        let micros = started.elapsed().as_micros() as u64;
        self.counters.billed_micros.fetch_add(micros.div_ceil(1000) * 1000, Ordering::Relaxed);
        match result.and_then(|r| failed_ids(&batch, &r)) {
            Ok(failed) => {
                self.counters.item_failures.fetch_add(failed.len() as u64, Ordering::Relaxed);
                let done: Vec<String> = batch
                    .iter()
                    .filter(|m| !failed.contains(&*m.message_id))
                    .map(|m| m.receipt_handle.clone())
                    .collect();
                for chunk in done.chunks(SQS_BATCH_MAX_ENTRIES) {
                    let _ = self.queue.delete_batch(chunk);
                }
            }
            Err(why) => {
                tracing::warn!(%why, messages = batch.len(), "whole batch failed; messages return after the visibility timeout");
                self.counters.whole_batch_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counters.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The message ids a response reports, or why the response fails the whole batch.
fn failed_ids(batch: &[Received], resp: &SqsBatchResponse) -> Result<HashSet<String>, String> {
    let in_batch: HashSet<&str> = batch.iter().map(|m| &*m.message_id).collect();
    let mut failed = HashSet::new();
    for f in &resp.batch_item_failures {
        if f.item_identifier.is_empty() {
            return Err("batchItemFailures holds an empty itemIdentifier".into());
        }
        if !in_batch.contains(f.item_identifier.as_str()) {
            return Err(format!("batchItemFailures names {:?}, which is not in the batch", f.item_identifier));
        }
        failed.insert(f.item_identifier.clone());
    }
    Ok(failed)
}

fn to_record(m: &Received, queue: &str) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = Some(m.message_id.to_string());
    r.receipt_handle = Some(m.receipt_handle.clone());
    r.body = Some(m.body.to_string());
    r.attributes.insert("ApproximateReceiveCount".into(), m.receive_count.to_string());
    r.attributes.insert("SentTimestamp".into(), m.sent_at_ms.to_string());
    r.event_source = Some("aws:sqs".into());
    r.event_source_arn = Some(format!("arn:aws:sqs:us-east-1:000000000000:{queue}"));
    r.aws_region = Some("us-east-1".into());
    r
}
