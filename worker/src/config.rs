//! The worker's configuration, read once from the environment at init.

use std::time::Duration;

use fanout_common::env::{millis, number_in, required, retry_policy, Vars};
use fanout_common::FieldError;

use crate::WorkerConfig;

/// Everything the worker binary needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `FANOUT_QUEUE_URL`: the queue failed recipients are re-enqueued to (the one the
    /// worker consumes).
    pub queue_url: String,
    /// `FANOUT_DEAD_LETTER_QUEUE_URL`: where dead-letter records go.
    pub dead_letter_queue_url: String,
    /// `FANOUT_WEBHOOK_TIMEOUT_MS` (default 10000): one HTTP delivery's time limit.
    pub webhook_timeout: Duration,
    /// `FANOUT_CONCURRENCY` (1–10000, default 256), `FANOUT_DEADLINE_MARGIN_MS` (default
    /// 3000) and `FANOUT_RETRY_*`.
    pub worker: WorkerConfig,
}

impl Settings {
    /// Reads the settings; the error names the variable. `queue_url` may come from the
    /// command line instead (consumer mode).
    pub fn from_env(vars: &impl Vars, queue_url: Option<String>) -> Result<Self, FieldError> {
        let base = WorkerConfig::default();
        let queue_url = match queue_url {
            Some(q) => q,
            None => required(vars, "FANOUT_QUEUE_URL")?,
        };
        Ok(Self {
            queue_url,
            dead_letter_queue_url: required(vars, "FANOUT_DEAD_LETTER_QUEUE_URL")?,
            webhook_timeout: millis(vars, "FANOUT_WEBHOOK_TIMEOUT_MS", Duration::from_secs(10))?,
            worker: WorkerConfig {
                concurrency: number_in(vars, "FANOUT_CONCURRENCY", base.concurrency as u64, 1..=10_000)? as usize,
                deadline_margin: millis(vars, "FANOUT_DEADLINE_MARGIN_MS", base.deadline_margin)?,
                retry: retry_policy(vars, base.retry)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn missing_and_malformed_values_are_named() {
        let e = Settings::from_env(&HashMap::new(), None).unwrap_err();
        assert_eq!(e.to_string(), "FANOUT_QUEUE_URL: is not set");
        let vars = HashMap::from([("FANOUT_DEAD_LETTER_QUEUE_URL", "d"), ("FANOUT_CONCURRENCY", "0")]);
        let e = Settings::from_env(&vars, Some("q".into())).unwrap_err();
        assert_eq!(e.to_string(), "FANOUT_CONCURRENCY: 0 is not between 1 and 10000");
        let vars = HashMap::from([("FANOUT_DEAD_LETTER_QUEUE_URL", "d"), ("FANOUT_DEADLINE_MARGIN_MS", "1500")]);
        let s = Settings::from_env(&vars, Some("q".into())).unwrap();
        assert_eq!((s.queue_url.as_str(), s.worker.deadline_margin), ("q", Duration::from_millis(1500)));
    }
}
