//! The producer's configuration, read once from the environment at init.

use std::time::Duration;

use fanout_common::env::{millis, number_in, parsed, required, retry_policy, Vars};
use fanout_common::FieldError;

use crate::ProducerConfig;

/// Everything the producer binary needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `FANOUT_TOPIC_ARN`: where batches are published.
    pub topic_arn: String,
    /// `FANOUT_DEAD_LETTER_QUEUE_URL`: where unpublishable batches are recorded.
    pub dead_letter_queue_url: String,
    /// `FANOUT_PUBLISH_CONCURRENCY` (1–256, default 16), `FANOUT_DEADLINE_MARGIN_MS`
    /// (default 5000), `FANOUT_MAX_INVOCATION_MS` (default: the function's timeout),
    /// `FANOUT_MAX_INVOCATIONS` (invocations per job, default 10000) and `FANOUT_RETRY_*`.
    pub producer: ProducerConfig,
    /// `FANOUT_SELF_INVOKE` (default `true`): a job stopped by the deadline goes on in an
    /// asynchronous invocation of this function; `false` leaves the continuation in the
    /// summary for the caller (a Step Functions loop, say).
    pub self_invoke: bool,
}

impl Settings {
    /// Reads the settings; the error names the variable.
    pub fn from_env(vars: &impl Vars) -> Result<Self, FieldError> {
        let base = ProducerConfig::default();
        Ok(Self {
            topic_arn: required(vars, "FANOUT_TOPIC_ARN")?,
            dead_letter_queue_url: required(vars, "FANOUT_DEAD_LETTER_QUEUE_URL")?,
            producer: ProducerConfig {
                publish_concurrency: number_in(
                    vars,
                    "FANOUT_PUBLISH_CONCURRENCY",
                    base.publish_concurrency as u64,
                    1..=256,
                )? as usize,
                deadline_margin: millis(vars, "FANOUT_DEADLINE_MARGIN_MS", base.deadline_margin)?,
                max_invocation: match number_in(vars, "FANOUT_MAX_INVOCATION_MS", 0, 0..=900_000)? {
                    0 => None,
                    ms => Some(Duration::from_millis(ms)),
                },
                max_invocations: number_in(
                    vars,
                    "FANOUT_MAX_INVOCATIONS",
                    u64::from(base.max_invocations),
                    1..=1_000_000,
                )? as u32,
                retry: retry_policy(vars, base.retry)?,
            },
            self_invoke: parsed(vars, "FANOUT_SELF_INVOKE", true)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn missing_and_malformed_values_are_named() {
        let e = Settings::from_env(&HashMap::from([("FANOUT_DEAD_LETTER_QUEUE_URL", "q")])).unwrap_err();
        assert_eq!(e.to_string(), "FANOUT_TOPIC_ARN: is not set");
        let vars = HashMap::from([
            ("FANOUT_TOPIC_ARN", "arn:aws:sns:eu-west-1:1:t"),
            ("FANOUT_DEAD_LETTER_QUEUE_URL", "https://sqs/dlq"),
            ("FANOUT_PUBLISH_CONCURRENCY", "many"),
        ]);
        assert_eq!(
            Settings::from_env(&vars).unwrap_err().to_string(),
            "FANOUT_PUBLISH_CONCURRENCY: \"many\" is not a valid whole number"
        );
        let mut ok = vars.clone();
        ok.insert("FANOUT_PUBLISH_CONCURRENCY", "32");
        let s = Settings::from_env(&ok).unwrap();
        assert_eq!(s.producer.publish_concurrency, 32);
        assert_eq!(s.topic_arn, "arn:aws:sns:eu-west-1:1:t");
    }
}
