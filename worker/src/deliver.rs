//! The recipient edge: delivering one payload to one recipient, and the deliverers of the
//! built-in channels.

use std::future::Future;

use fanout_common::{BatchId, Channel, FailureClass, IdempotencyKey, JobId, Recipient};
use serde_json::value::RawValue;

use crate::webhook::WebhookDeliverer;

/// Everything a deliverer needs to deliver once.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The job.
    pub job_id: &'a JobId,
    /// The batch the recipient came in.
    pub batch_id: &'a BatchId,
    /// Which attempt this is for the recipient, from 1.
    pub attempt: u32,
    /// The channel.
    pub channel: Channel,
    /// What to deliver.
    pub payload: &'a RawValue,
    /// To whom.
    pub recipient: &'a Recipient,
    /// The same for every attempt and duplicate of this recipient in this job.
    pub key: IdempotencyKey,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipient has it.
    Delivered,
    /// It did not arrive; `class` decides whether it is tried again.
    Failed {
        /// Transient, throttled or permanent.
        class: FailureClass,
        /// What went wrong, for logs and dead-letter records.
        reason: String,
    },
}

/// Delivers a payload to a recipient.
pub trait Deliverer: Send + Sync {
    /// One attempt. Never panics by contract; a panic is caught per record anyway.
    fn deliver(&self, d: Delivery<'_>) -> impl Future<Output = Outcome> + Send;
}

/// The `noop` channel: delivers nowhere, to measure the pipeline's own cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDeliverer;

impl Deliverer for NoopDeliverer {
    async fn deliver(&self, _: Delivery<'_>) -> Outcome {
        Outcome::Delivered
    }
}

/// The `log` channel: one structured log line per delivery.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDeliverer;

impl Deliverer for LogDeliverer {
    async fn deliver(&self, d: Delivery<'_>) -> Outcome {
        tracing::info!(
            target: "fanout::delivery",
            job_id = %d.job_id,
            batch_id = %d.batch_id,
            recipient = %d.recipient.id,
            address = %d.recipient.address,
            idempotency_key = %d.key,
            attempt = d.attempt,
            payload = d.payload.get(),
            "delivered"
        );
        Outcome::Delivered
    }
}

/// Picks the deliverer by the batch's channel.
#[derive(Debug, Clone)]
pub struct Channels {
    /// For `webhook`.
    pub webhook: WebhookDeliverer,
    /// For `log`.
    pub log: LogDeliverer,
    /// For `noop`.
    pub noop: NoopDeliverer,
}

impl Channels {
    /// The built-in deliverers, the webhook one with `webhook`'s client.
    pub fn new(webhook: WebhookDeliverer) -> Self {
        Self { webhook, log: LogDeliverer, noop: NoopDeliverer }
    }
}

impl Deliverer for Channels {
    async fn deliver(&self, d: Delivery<'_>) -> Outcome {
        match d.channel {
            Channel::Webhook => self.webhook.deliver(d).await,
            Channel::Log => self.log.deliver(d).await,
            Channel::Noop => self.noop.deliver(d).await,
        }
    }
}

impl<T: Deliverer> Deliverer for std::sync::Arc<T> {
    fn deliver(&self, d: Delivery<'_>) -> impl Future<Output = Outcome> + Send {
        (**self).deliver(d)
    }
}
