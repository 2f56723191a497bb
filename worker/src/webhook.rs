//! The `webhook` channel: an HTTP POST of the payload to the recipient's URL.
//!
//! 2xx is delivered; 408, 5xx and connection errors are transient; 429 is throttled and
//! honours `Retry-After`; any other status is permanent. The idempotency key travels as the
//! `Idempotency-Key` header, so a receiver can drop a repeat.

use std::time::{Duration, SystemTime};

use fanout_common::retry::{classify_http, parse_retry_after};
use fanout_common::FailureClass;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use crate::deliver::{Deliverer, Delivery, Outcome};

/// Header carrying the idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Header carrying the job id.
pub const JOB_ID_HEADER: &str = "x-fanout-job-id";
/// Header carrying the batch id.
pub const BATCH_ID_HEADER: &str = "x-fanout-batch-id";
/// Header carrying the attempt number.
pub const ATTEMPT_HEADER: &str = "x-fanout-attempt";
/// Header carrying the recipient id (left out when it is not a valid header value).
pub const RECIPIENT_ID_HEADER: &str = "x-fanout-recipient-id";

/// Delivers by HTTP POST with one shared keep-alive client.
#[derive(Debug, Clone)]
pub struct WebhookDeliverer {
    client: reqwest::Client,
}

impl WebhookDeliverer {
    /// A deliverer with its own client: keep-alive pool, `timeout` per request.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("fanout/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// A deliverer using an existing client.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl Deliverer for WebhookDeliverer {
    async fn deliver(&self, d: Delivery<'_>) -> Outcome {
        let mut req = self
            .client
            .post(&d.recipient.address)
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY_HEADER, d.key.to_string())
            .header(JOB_ID_HEADER, d.job_id.as_str())
            .header(BATCH_ID_HEADER, d.batch_id.as_str())
            .header(ATTEMPT_HEADER, d.attempt.to_string())
            .body(d.payload.get().to_owned());
        if let Ok(v) = HeaderValue::from_str(d.recipient.id.as_str()) {
            req = req.header(RECIPIENT_ID_HEADER, v);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                match classify_http(status, retry_after) {
                    None => Outcome::Delivered,
                    Some(class) => Outcome::Failed { class, reason: format!("http {status}") },
                }
            }
            Err(e) => {
                let class = if e.is_builder() { FailureClass::Permanent } else { FailureClass::Transient };
                Outcome::Failed { class, reason: error_chain(&e) }
            }
        }
    }
}

/// The error with its causes, which is where reqwest puts "connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
