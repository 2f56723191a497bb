//! Consumer mode: the worker as a long-lived SQS consumer, for hosts that are not Lambda
//! and for driving the pipeline where no event source mapping exists.
//!
//! Each of `max_in_flight` pollers long-polls the queue (up to 10 messages, 20 s), hands
//! the messages to the same handler as an SQS event with the visibility timeout as its
//! deadline, deletes the successes with `DeleteMessageBatch` and gives the failures back
//! with `ChangeMessageVisibility`, delayed by the retry policy's backoff for their receive
//! count. On shutdown no new receive starts; batches being handled are finished, so nothing
//! is held when `run` returns.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName,
};
use fanout_common::aws::edge_error;
use fanout_common::limits::SQS_BATCH_MAX_ENTRIES;
use fanout_common::{DeadLetters, EdgeError, FailureClass, RetryPolicy};
use tokio::sync::watch;

use crate::deliver::Deliverer;
use crate::requeue::Requeue;
use crate::Worker;

/// How the consumer polls.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The queue to consume.
    pub queue_url: String,
    /// Batches handled at once (pollers).
    pub max_in_flight: usize,
    /// Long-poll wait per receive (at most 20 s).
    pub wait: Duration,
    /// Visibility timeout asked for on receive; the handler's deadline.
    pub visibility_timeout: Duration,
}

impl ConsumerConfig {
    /// Defaults for `queue_url`: 4 batches in flight, 20 s long polls, 60 s visibility.
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            max_in_flight: 4,
            wait: Duration::from_secs(20),
            visibility_timeout: Duration::from_secs(60),
        }
    }
}

/// What a consumer did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages received.
    pub received: u64,
    /// Messages deleted after success.
    pub deleted: u64,
    /// Messages given back for a later retry.
    pub released: u64,
}

/// Consumes until `shutdown` turns true, then returns what it did.
pub async fn run<D: Deliverer, Q: Requeue, L: DeadLetters>(
    worker: &Worker<D, Q, L>,
    client: &aws_sdk_sqs::Client,
    config: &ConsumerConfig,
    shutdown: watch::Receiver<bool>,
) -> ConsumerStats {
    let pollers = (0..config.max_in_flight.max(1)).map(|_| poll(worker, client, config, shutdown.clone()));
    let mut total = ConsumerStats::default();
    for s in futures::future::join_all(pollers).await {
        total.received += s.received;
        total.deleted += s.deleted;
        total.released += s.released;
    }
    total
}

async fn poll<D: Deliverer, Q: Requeue, L: DeadLetters>(
    worker: &Worker<D, Q, L>,
    client: &aws_sdk_sqs::Client,
    config: &ConsumerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> ConsumerStats {
    let mut stats = ConsumerStats::default();
    let mut rng = fastrand::Rng::new();
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        let receive = client
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(SQS_BATCH_MAX_ENTRIES as i32)
            .wait_time_seconds(config.wait.as_secs().min(20) as i32)
            .visibility_timeout(config.visibility_timeout.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send();
        let received_at = Instant::now();
        let out = tokio::select! {
            out = receive => out,
            _ = shutdown.changed() => break,
        };
        let messages = match out {
            Ok(out) => {
                backoff = Duration::from_millis(100);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                let e = edge_error("sqs ReceiveMessage", e);
                tracing::error!(error = %e, "receive failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(20));
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        stats.received += messages.len() as u64;
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| to_record(m, &config.queue_url)).collect();
        let response = worker.handle(event, received_at + config.visibility_timeout).await;
        let failed: HashSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        let (bad, good): (Vec<&Message>, Vec<&Message>) =
            messages.iter().partition(|m| m.message_id().is_some_and(|id| failed.contains(id)));
        match delete(client, &config.queue_url, &good).await {
            Ok(n) => stats.deleted += n,
            Err(e) => tracing::error!(error = %e, "delete failed; the messages will be received again"),
        }
        match release(client, &config.queue_url, &bad, &worker.config().retry, &mut rng).await {
            Ok(n) => stats.released += n,
            Err(e) => tracing::error!(error = %e, "visibility change failed; the messages return after their timeout"),
        }
    }
    stats
}

fn to_record(m: &Message, queue_url: &str) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = m.message_id().map(str::to_owned);
    r.receipt_handle = m.receipt_handle().map(str::to_owned);
    r.body = m.body().map(str::to_owned);
    if let Some(attrs) = m.attributes() {
        r.attributes = attrs.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect();
    }
    r.event_source = Some("aws:sqs".into());
    r.event_source_arn = Some(queue_url.to_owned());
    r
}

async fn delete(client: &aws_sdk_sqs::Client, queue_url: &str, done: &[&Message]) -> Result<u64, EdgeError> {
    let mut deleted = 0;
    for chunk in done.chunks(SQS_BATCH_MAX_ENTRIES) {
        let mut req = client.delete_message_batch().queue_url(queue_url);
        for (i, m) in chunk.iter().enumerate() {
            let entry = DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .map_err(|e| EdgeError::permanent(e.to_string()))?;
            req = req.entries(entry);
        }
        let out = req.send().await.map_err(|e| edge_error("sqs DeleteMessageBatch", e))?;
        deleted += out.successful().len() as u64;
    }
    Ok(deleted)
}

async fn release(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    failed: &[&Message],
    retry: &RetryPolicy,
    rng: &mut fastrand::Rng,
) -> Result<u64, EdgeError> {
    let mut released = 0;
    for chunk in failed.chunks(SQS_BATCH_MAX_ENTRIES) {
        let mut req = client.change_message_visibility_batch().queue_url(queue_url);
        for (i, m) in chunk.iter().enumerate() {
            let receives: u32 = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let delay = retry.delay_seconds(receives, FailureClass::Transient, rng);
            let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .visibility_timeout(delay as i32)
                .build()
                .map_err(|e| EdgeError::permanent(e.to_string()))?;
            req = req.entries(entry);
        }
        let out = req.send().await.map_err(|e| edge_error("sqs ChangeMessageVisibilityBatch", e))?;
        released += out.successful().len() as u64;
    }
    Ok(released)
}
