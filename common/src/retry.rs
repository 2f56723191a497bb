//! The retry policy: data (attempts, base delay, cap) plus pure functions (whether to
//! retry, how long to wait, full jitter), and the classifier that maps an outcome to a
//! [`FailureClass`]. The producer uses it for failed `PublishBatch` entries, the worker for
//! failed recipients.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::limits::SQS_MAX_DELAY_SECONDS;

/// What kind of failure an outcome is, which decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// May succeed later (timeouts, 5xx, connection errors): retry with backoff.
    Transient,
    /// The receiver asked us to slow down: retry, no sooner than `retry_after` if given.
    Throttled {
        /// The receiver's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Will never succeed (4xx other than 408/429, sender faults): never retry.
    Permanent,
}

impl FailureClass {
    /// Whether this class is ever retried.
    pub fn is_retryable(self) -> bool {
        !matches!(self, FailureClass::Permanent)
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: an item that failed on attempt
    /// `max_attempts` is not retried.
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; it doubles with each attempt.
    #[serde(with = "millis")]
    pub base_delay: Duration,
    /// The largest delay ever chosen (SQS's `DelaySeconds` stops at 900 s).
    #[serde(with = "millis")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, 2 s base, capped at SQS's 900 s: retries span about a minute on
    /// average and a few minutes at worst, well inside a typical alarm window.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(u64::from(SQS_MAX_DELAY_SECONDS)),
        }
    }
}

impl RetryPolicy {
    /// Whether an item that failed with `class` on `attempt` (from 1) gets another try.
    pub fn should_retry(&self, attempt: u32, class: FailureClass) -> bool {
        class.is_retryable() && attempt < self.max_attempts
    }

    /// The backoff ceiling after `attempt` failed: `base * 2^(attempt-1)`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base_delay.saturating_mul(1u32 << exp).min(self.max_delay)
    }

    /// The delay before retrying an item that failed with `class` on `attempt`: full
    /// jitter (uniform in `[0, ceiling]`), and never sooner than a throttle's
    /// `Retry-After`; capped at `max_delay`.
    pub fn delay(&self, attempt: u32, class: FailureClass, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter = Duration::from_nanos(rng.u64(0..=ceiling.as_nanos().min(u128::from(u64::MAX)) as u64));
        let floor = match class {
            FailureClass::Throttled { retry_after: Some(d) } => d,
            _ => Duration::ZERO,
        };
        jitter.max(floor).min(self.max_delay)
    }

    /// [`RetryPolicy::delay`] as SQS `DelaySeconds`: whole seconds, rounded up, at most 900.
    pub fn delay_seconds(&self, attempt: u32, class: FailureClass, rng: &mut fastrand::Rng) -> u32 {
        to_delay_seconds(self.delay(attempt, class, rng))
    }

    /// Checks the policy's own numbers; the error names the field.
    pub fn check(&self) -> Result<(), crate::error::FieldError> {
        use crate::error::FieldError;
        if self.max_attempts == 0 {
            return Err(FieldError::new("max_attempts", "must be at least 1"));
        }
        if self.base_delay > self.max_delay {
            return Err(FieldError::new("base_delay", "must not exceed max_delay"));
        }
        Ok(())
    }
}

/// A delay as SQS `DelaySeconds`: rounded up to whole seconds, at most 900.
pub fn to_delay_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(u64::from(SQS_MAX_DELAY_SECONDS)) as u32
}

/// Classifies an HTTP response status of a delivery: 2xx is not a failure (`None`);
/// 408 and 5xx are transient; 429 is throttled; any other status is permanent.
pub fn classify_http(status: u16, retry_after: Option<Duration>) -> Option<FailureClass> {
    match status {
        200..=299 => None,
        429 => Some(FailureClass::Throttled { retry_after }),
        408 | 500..=599 => Some(FailureClass::Transient),
        _ => Some(FailureClass::Permanent),
    }
}

/// Classifies a failed SNS `PublishBatch` entry by its error code and `SenderFault`: a
/// sender fault is never retried; throttling codes are throttled; the rest transient.
pub fn classify_publish_failure(code: &str, sender_fault: bool) -> FailureClass {
    if sender_fault {
        return FailureClass::Permanent;
    }
    match code {
        "Throttled"
        | "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "KMSThrottling"
        | "KMSThrottlingException" => FailureClass::Throttled { retry_after: None },
        _ => FailureClass::Transient,
    }
}

/// Reads an HTTP `Retry-After` value: delta-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_and_classes_decide_retries() {
        let p = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert!(p.should_retry(1, FailureClass::Transient));
        assert!(p.should_retry(2, FailureClass::Throttled { retry_after: None }));
        assert!(!p.should_retry(3, FailureClass::Transient), "attempt 3 of 3 is the last");
        assert!(!p.should_retry(1, FailureClass::Permanent));
    }

    #[test]
    fn delay_is_full_jitter_under_a_doubling_capped_ceiling() {
        let p =
            RetryPolicy { max_attempts: 20, base_delay: Duration::from_secs(2), max_delay: Duration::from_secs(900) };
        assert_eq!(p.ceiling(1), Duration::from_secs(2));
        assert_eq!(p.ceiling(4), Duration::from_secs(16));
        assert_eq!(p.ceiling(15), Duration::from_secs(900));
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: Vec<_> = (0..1000).map(|_| p.delay(4, FailureClass::Transient, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(16)));
        let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
        assert!((6.0..10.0).contains(&mean), "full jitter averages half the ceiling, got {mean}");
    }

    #[test]
    fn throttle_honours_retry_after_but_not_past_the_cap() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let t = FailureClass::Throttled { retry_after: Some(Duration::from_secs(30)) };
        assert!(p.delay(1, t, &mut rng) >= Duration::from_secs(30));
        let huge = FailureClass::Throttled { retry_after: Some(Duration::from_secs(5000)) };
        assert_eq!(p.delay_seconds(1, huge, &mut rng), 900);
    }

    #[test]
    fn delay_seconds_round_up() {
        assert_eq!(to_delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(to_delay_seconds(Duration::ZERO), 0);
        assert_eq!(to_delay_seconds(Duration::from_millis(2000)), 2);
        assert_eq!(to_delay_seconds(Duration::from_secs(10_000)), 900);
    }

    #[test]
    fn http_statuses_classify() {
        assert_eq!(classify_http(204, None), None);
        assert_eq!(classify_http(503, None), Some(FailureClass::Transient));
        assert_eq!(classify_http(408, None), Some(FailureClass::Transient));
        assert_eq!(classify_http(404, None), Some(FailureClass::Permanent));
        let ra = Some(Duration::from_secs(3));
        assert_eq!(classify_http(429, ra), Some(FailureClass::Throttled { retry_after: ra }));
    }

    #[test]
    fn publish_failures_classify() {
        assert_eq!(classify_publish_failure("InvalidParameter", true), FailureClass::Permanent);
        assert_eq!(classify_publish_failure("Throttled", false), FailureClass::Throttled { retry_after: None });
        assert_eq!(classify_publish_failure("InternalError", false), FailureClass::Transient);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(60));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
