//! An SQS standard queue in memory, keeping the semantics the pipeline relies on:
//!
//! - `SendMessage` / `SendMessageBatch` limits (10 entries, 1 MiB per message and per
//!   request, `DelaySeconds` 0–900, distinct entry ids) and their error codes;
//! - `DelaySeconds`: a message is invisible until its delay passes;
//! - `ReceiveMessage` (at most 10, long polling up to 20 s): each receive increments the
//!   message's receive count, hides it for the visibility timeout and hands out a fresh
//!   receipt handle;
//! - `DeleteMessage` needs the latest receipt handle; an older one succeeds but deletes
//!   nothing (AWS: "the request succeeds, but the message might not be deleted");
//! - `ChangeMessageVisibility`;
//! - a redrive policy: a message received `maxReceiveCount` times is moved to the
//!   dead-letter queue on the next receive attempt, keeping its message id and body;
//! - at-least-once delivery: with `duplicate_rate` > 0 a sent message is stored twice under
//!   the same message id, as a standard queue may deliver a message more than once.
//!
//! Differences from AWS, on purpose: delivery order is by visibility time (AWS is
//! best-effort FIFO); `ApproximateNumberOfMessages` is exact; there is no 120,000 in-flight
//! limit or retention period; short polls see every visible message (AWS samples servers).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout_common::limits::{
    BILLING_CHUNK_BYTES, SQS_BATCH_MAX_ENTRIES, SQS_MAX_DELAY_SECONDS, SQS_MAX_MESSAGE_BYTES, SQS_MAX_RECEIVE_COUNT,
    SQS_MAX_VISIBILITY_TIMEOUT_SECONDS, SQS_MAX_WAIT_SECONDS, SQS_SEND_BATCH_MAX_BYTES,
};
use fanout_common::{DeadLetterRecord, DeadLetters, EdgeError};
use fanout_worker::{Outgoing, Requeue};
use tokio::sync::Notify;

use crate::clock::Clock;

/// An SQS API error, named by its AWS error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsError {
    /// No entries.
    #[error("EmptyBatchRequest: the batch request contains no entries")]
    EmptyBatchRequest,
    /// More than 10 entries.
    #[error("TooManyEntriesInBatchRequest: {0} entries, at most 10")]
    TooManyEntriesInBatchRequest(usize),
    /// The request's messages add up to more than 1 MiB.
    #[error("BatchRequestTooLong: {0} bytes in all, at most 1048576")]
    BatchRequestTooLong(usize),
    /// Two entries share an id.
    #[error("BatchEntryIdsNotDistinct: {0}")]
    BatchEntryIdsNotDistinct(String),
    /// A parameter is out of range.
    #[error("InvalidParameterValue: {0}")]
    InvalidParameterValue(String),
    /// A receipt handle that was never issued.
    #[error("ReceiptHandleIsInvalid: {0}")]
    ReceiptHandleIsInvalid(String),
}

/// A redrive policy: where messages go after `max_receive_count` receives.
#[derive(Clone)]
pub struct Redrive {
    /// The dead-letter queue.
    pub dlq: Arc<Queue>,
    /// Receives before a message is moved (1 to 1,000).
    pub max_receive_count: u32,
}

/// A queue's settings.
#[derive(Clone)]
pub struct QueueConfig {
    /// The queue's name.
    pub name: String,
    /// How long a received message stays hidden (simulated time).
    pub visibility_timeout: Duration,
    /// The redrive policy, if any.
    pub redrive: Option<Redrive>,
    /// Probability that a sent message is stored twice (at-least-once delivery).
    pub duplicate_rate: f64,
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message id (shared by a message and its duplicate).
    pub message_id: Arc<str>,
    /// The handle of this receive.
    pub receipt_handle: String,
    /// The body.
    pub body: Arc<str>,
    /// How often the message has been received, this time included.
    pub receive_count: u32,
    /// When it was sent (simulated ms since engine start).
    pub sent_at_ms: u64,
}

/// Request and message counters, for the report and the cost model.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// `SendMessage` + `SendMessageBatch` requests (SNS deliveries not included).
    pub send_requests: AtomicU64,
    /// Messages delivered by an SNS subscription.
    pub sns_deliveries: AtomicU64,
    /// Messages stored (all sources).
    pub messages_sent: AtomicU64,
    /// `ReceiveMessage` requests.
    pub receive_requests: AtomicU64,
    /// Of those, requests that returned nothing.
    pub empty_receives: AtomicU64,
    /// Messages handed out by receives.
    pub messages_received: AtomicU64,
    /// Receives of a message that had been received before.
    pub redeliveries: AtomicU64,
    /// `DeleteMessage` / `DeleteMessageBatch` requests.
    pub delete_requests: AtomicU64,
    /// Messages deleted.
    pub messages_deleted: AtomicU64,
    /// `ChangeMessageVisibility` calls.
    pub visibility_changes: AtomicU64,
    /// Messages moved to the dead-letter queue by the redrive policy.
    pub moved_to_dlq: AtomicU64,
    /// Extra copies stored by the at-least-once model.
    pub duplicates_injected: AtomicU64,
    /// 64 KiB chunks of all requests' payloads (each is billed as one request).
    pub billed_chunks: AtomicU64,
}

struct Message {
    message_id: Arc<str>,
    body: Arc<str>,
    sent_at: Duration,
    receive_count: u32,
    receipt: u32,
    schedule: u32,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    messages: HashMap<u64, Message>,
    /// (visible at, seq, schedule version): stale entries are skipped.
    due: BinaryHeap<Reverse<(Duration, u64, u32)>>,
}

/// One queue.
pub struct Queue {
    config: QueueConfig,
    clock: Clock,
    state: Mutex<State>,
    arrived: Notify,
    /// Counters of this queue.
    pub counters: QueueCounters,
}

fn chunks(bytes: usize) -> u64 {
    (bytes.div_ceil(BILLING_CHUNK_BYTES)).max(1) as u64
}

impl Queue {
    /// A queue with `config`; panics on a configuration AWS would refuse (a bug in the
    /// harness, not an input).
    pub fn new(config: QueueConfig, clock: Clock) -> Arc<Self> {
        Self::check_config(&config).unwrap_or_else(|e| panic!("queue {}: {e}", config.name));
        Arc::new(Self {
            config,
            clock,
            state: Mutex::default(),
            arrived: Notify::new(),
            counters: QueueCounters::default(),
        })
    }

    /// A work queue named `name` and its dead-letter queue `<name>-dlq`: both with
    /// `visibility`; the work queue redrives after `max_receive_count` receives (none when
    /// `None`) and stores a share `duplicate_rate` of messages twice.
    pub fn with_dlq(
        name: &str,
        clock: Clock,
        visibility: Duration,
        max_receive_count: Option<u32>,
        duplicate_rate: f64,
    ) -> (Arc<Self>, Arc<Self>) {
        let dlq = Self::new(
            QueueConfig {
                name: format!("{name}-dlq"),
                visibility_timeout: visibility,
                redrive: None,
                duplicate_rate: 0.0,
            },
            clock,
        );
        let queue = Self::new(
            QueueConfig {
                name: name.to_owned(),
                visibility_timeout: visibility,
                redrive: max_receive_count.map(|n| Redrive { dlq: dlq.clone(), max_receive_count: n }),
                duplicate_rate,
            },
            clock,
        );
        (queue, dlq)
    }

    /// Checks a configuration against the AWS ranges.
    pub fn check_config(config: &QueueConfig) -> Result<(), SqsError> {
        if config.visibility_timeout > Duration::from_secs(u64::from(SQS_MAX_VISIBILITY_TIMEOUT_SECONDS)) {
            return Err(SqsError::InvalidParameterValue("VisibilityTimeout over 43200 seconds".into()));
        }
        if let Some(r) = &config.redrive {
            if r.max_receive_count == 0 || r.max_receive_count > SQS_MAX_RECEIVE_COUNT {
                return Err(SqsError::InvalidParameterValue("maxReceiveCount must be 1 to 1000".into()));
            }
        }
        Ok(())
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_message(body: &str, delay_seconds: u32) -> Result<(), SqsError> {
        if body.is_empty() {
            return Err(SqsError::InvalidParameterValue("message body must not be empty".into()));
        }
        if body.len() > SQS_MAX_MESSAGE_BYTES {
            return Err(SqsError::InvalidParameterValue(format!(
                "message of {} bytes is over the {SQS_MAX_MESSAGE_BYTES} byte limit",
                body.len()
            )));
        }
        if delay_seconds > SQS_MAX_DELAY_SECONDS {
            return Err(SqsError::InvalidParameterValue(format!(
                "DelaySeconds {delay_seconds} is over {SQS_MAX_DELAY_SECONDS}"
            )));
        }
        Ok(())
    }

    /// Stores a message (no checks, no request counted): the common path of every send.
    fn store(&self, message_id: Arc<str>, body: Arc<str>, delay: Duration) {
        let now = self.clock.now();
        let copies = if self.config.duplicate_rate > 0.0 && fastrand::f64() < self.config.duplicate_rate {
            self.counters.duplicates_injected.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        {
            let mut st = self.lock();
            for _ in 0..copies {
                let seq = st.next_seq;
                st.next_seq += 1;
                st.messages.insert(
                    seq,
                    Message {
                        message_id: message_id.clone(),
                        body: body.clone(),
                        sent_at: now,
                        receive_count: 0,
                        receipt: 0,
                        schedule: 0,
                    },
                );
                st.due.push(Reverse((now + delay, seq, 0)));
            }
        }
        self.counters.messages_sent.fetch_add(copies, Ordering::Relaxed);
        self.arrived.notify_waiters();
    }

    /// `SendMessage`.
    pub fn send(&self, body: &str, delay_seconds: u32) -> Result<String, SqsError> {
        Self::check_message(body, delay_seconds)?;
        self.counters.send_requests.fetch_add(1, Ordering::Relaxed);
        self.counters.billed_chunks.fetch_add(chunks(body.len()), Ordering::Relaxed);
        let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        self.store(id.clone(), body.into(), Duration::from_secs(u64::from(delay_seconds)));
        Ok(id.to_string())
    }

    /// A message delivered by an SNS subscription (free on the SNS side, one SQS request).
    pub fn deliver_from_sns(&self, message_id: Arc<str>, body: Arc<str>) {
        self.counters.sns_deliveries.fetch_add(1, Ordering::Relaxed);
        self.counters.billed_chunks.fetch_add(chunks(body.len()), Ordering::Relaxed);
        self.store(message_id, body, Duration::ZERO);
    }

    /// `SendMessageBatch`: `(entry id, body, delay seconds)`; per-entry results in order.
    pub fn send_batch(&self, entries: &[(String, String, u32)]) -> Result<Vec<Result<String, SqsError>>, SqsError> {
        if entries.is_empty() {
            return Err(SqsError::EmptyBatchRequest);
        }
        if entries.len() > SQS_BATCH_MAX_ENTRIES {
            return Err(SqsError::TooManyEntriesInBatchRequest(entries.len()));
        }
        let total: usize = entries.iter().map(|(_, b, _)| b.len()).sum();
        if total > SQS_SEND_BATCH_MAX_BYTES {
            return Err(SqsError::BatchRequestTooLong(total));
        }
        let mut ids = HashSet::new();
        for (id, _, _) in entries {
            if !ids.insert(id.as_str()) {
                return Err(SqsError::BatchEntryIdsNotDistinct(id.clone()));
            }
        }
        self.counters.send_requests.fetch_add(1, Ordering::Relaxed);
        self.counters.billed_chunks.fetch_add(chunks(total), Ordering::Relaxed);
        Ok(entries
            .iter()
            .map(|(_, body, delay)| {
                Self::check_message(body, *delay)?;
                let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
                self.store(id.clone(), body.as_str().into(), Duration::from_secs(u64::from(*delay)));
                Ok(id.to_string())
            })
            .collect())
    }

    /// `ReceiveMessage`: up to `max` (1–10) messages, waiting up to `wait` (simulated, at
    /// most 20 s) for one to become visible; `stop` ends the wait early.
    pub async fn receive(
        &self,
        max: usize,
        wait: Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<Vec<Received>, SqsError> {
        if max == 0 || max > SQS_BATCH_MAX_ENTRIES {
            return Err(SqsError::InvalidParameterValue(format!("MaxNumberOfMessages {max} is not 1 to 10")));
        }
        if wait > Duration::from_secs(u64::from(SQS_MAX_WAIT_SECONDS)) {
            return Err(SqsError::InvalidParameterValue("WaitTimeSeconds over 20".into()));
        }
        self.counters.receive_requests.fetch_add(1, Ordering::Relaxed);
        let until = self.clock.now() + wait;
        let mut stop = stop.clone();
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (got, next_due) = self.take_visible(max);
            let now = self.clock.now();
            if !got.is_empty() || now >= until || *stop.borrow() {
                if got.is_empty() {
                    self.counters.empty_receives.fetch_add(1, Ordering::Relaxed);
                }
                let bytes: usize = got.iter().map(|m| m.body.len()).sum();
                self.counters.billed_chunks.fetch_add(chunks(bytes), Ordering::Relaxed);
                return Ok(got);
            }
            let wake = next_due.map_or(until, |d| d.min(until));
            tokio::select! {
                () = &mut arrived => {}
                () = self.clock.sleep(wake.saturating_sub(now)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Takes up to `max` visible messages; also returns when the next hidden one is due.
    fn take_visible(&self, max: usize) -> (Vec<Received>, Option<Duration>) {
        let now = self.clock.now();
        let vis = self.config.visibility_timeout;
        let mut out = Vec::new();
        let mut to_dlq = Vec::new();
        let mut st = self.lock();
        while out.len() < max {
            let Some(&Reverse((at, seq, version))) = st.due.peek() else { break };
            if at > now {
                break;
            }
            st.due.pop();
            let Some(m) = st.messages.get_mut(&seq) else { continue };
            if m.schedule != version {
                continue;
            }
            if let Some(r) = &self.config.redrive {
                if m.receive_count >= r.max_receive_count {
                    if let Some(m) = st.messages.remove(&seq) {
                        to_dlq.push((m.message_id, m.body));
                    }
                    continue;
                }
            }
            m.receive_count += 1;
            m.receipt += 1;
            m.schedule += 1;
            let (count, receipt, schedule) = (m.receive_count, m.receipt, m.schedule);
            out.push(Received {
                message_id: m.message_id.clone(),
                receipt_handle: format!("{seq}:{receipt}"),
                body: m.body.clone(),
                receive_count: count,
                sent_at_ms: m.sent_at.as_millis() as u64,
            });
            st.due.push(Reverse((now + vis, seq, schedule)));
        }
        let next_due = st.due.peek().map(|Reverse((at, _, _))| *at);
        drop(st);
        self.counters.messages_received.fetch_add(out.len() as u64, Ordering::Relaxed);
        let again = out.iter().filter(|m| m.receive_count > 1).count() as u64;
        self.counters.redeliveries.fetch_add(again, Ordering::Relaxed);
        if let Some(r) = &self.config.redrive {
            for (id, body) in to_dlq {
                self.counters.moved_to_dlq.fetch_add(1, Ordering::Relaxed);
                r.dlq.store(id, body, Duration::ZERO);
            }
        }
        (out, next_due)
    }

    fn parse_handle(handle: &str) -> Result<(u64, u32), SqsError> {
        let bad = || SqsError::ReceiptHandleIsInvalid(handle.to_owned());
        let (seq, receipt) = handle.split_once(':').ok_or_else(bad)?;
        Ok((seq.parse().map_err(|_| bad())?, receipt.parse().map_err(|_| bad())?))
    }

    /// `DeleteMessageBatch` (one request per 10 handles; a single `DeleteMessage` is a
    /// batch of one). Stale handles succeed without deleting.
    pub fn delete_batch(&self, handles: &[String]) -> Result<(), SqsError> {
        if handles.len() > SQS_BATCH_MAX_ENTRIES {
            return Err(SqsError::TooManyEntriesInBatchRequest(handles.len()));
        }
        let parsed = handles.iter().map(|h| Self::parse_handle(h)).collect::<Result<Vec<_>, _>>()?;
        self.counters.delete_requests.fetch_add(1, Ordering::Relaxed);
        self.counters.billed_chunks.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        for (seq, receipt) in parsed {
            if st.messages.get(&seq).is_some_and(|m| m.receipt == receipt) {
                st.messages.remove(&seq);
                self.counters.messages_deleted.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// `ChangeMessageVisibility`: hides the message for `timeout` from now (0 makes it
    /// visible at once). A stale handle is an error, as in AWS once the message was
    /// received again.
    pub fn change_visibility(&self, handle: &str, timeout: Duration) -> Result<(), SqsError> {
        let (seq, receipt) = Self::parse_handle(handle)?;
        self.counters.visibility_changes.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let mut st = self.lock();
        let m = st.messages.get_mut(&seq).filter(|m| m.receipt == receipt).ok_or_else(|| {
            SqsError::InvalidParameterValue(format!("message {handle} is not in flight with this receipt handle"))
        })?;
        m.schedule += 1;
        let schedule = m.schedule;
        st.due.push(Reverse((now + timeout, seq, schedule)));
        drop(st);
        self.arrived.notify_waiters();
        Ok(())
    }

    /// Messages stored: visible, delayed or in flight.
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    /// Whether the queue holds no message at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns every message body (for reading a dead-letter queue at the end
    /// of a run).
    pub fn drain(&self) -> Vec<Arc<str>> {
        let mut st = self.lock();
        st.due.clear();
        st.messages.drain().map(|(_, m)| m.body).collect()
    }
}

/// The worker's re-enqueue edge on this queue: `SendMessageBatch`.
impl Requeue for Queue {
    async fn enqueue(&self, messages: Vec<Outgoing>) -> Result<(), EdgeError> {
        let entries: Vec<(String, String, u32)> =
            messages.into_iter().enumerate().map(|(i, m)| (i.to_string(), m.body, m.delay_seconds)).collect();
        let results = self.send_batch(&entries).map_err(|e| EdgeError::permanent(e.to_string()))?;
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(EdgeError::permanent(e.to_string())),
            None => Ok(()),
        }
    }
}

/// The dead-letter edge on a queue: each record is one `SendMessage`.
pub struct DeadLetterQueue(pub Arc<Queue>);

impl DeadLetters for DeadLetterQueue {
    async fn write(&self, record: DeadLetterRecord) -> Result<(), EdgeError> {
        self.0.send(&record.to_json(), 0).map(drop).map_err(|e| EdgeError::permanent(e.to_string()))
    }
}
