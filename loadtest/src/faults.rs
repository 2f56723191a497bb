//! Injected receiver faults, decided by a pure function of the idempotency key and the
//! attempt, so a run is reproducible and the harness knows afterwards exactly which
//! recipients were refused for good.

use std::time::Duration;

use fanout_common::{FailureClass, IdempotencyKey};

/// What a receiver does with one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepts it (HTTP 200).
    Accept,
    /// Fails for now (HTTP 503).
    Transient,
    /// Asks to slow down (HTTP 429 with `Retry-After`).
    Throttle,
    /// Refuses it for good (HTTP 410); the same on every attempt.
    Permanent,
}

/// The fault rates of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultPlan {
    /// Share of attempts failed transiently.
    pub transient: f64,
    /// Share of recipients refused on every attempt.
    pub permanent: f64,
    /// Share of attempts throttled.
    pub throttle: f64,
    /// The `Retry-After` a throttle sends.
    pub retry_after: Duration,
    /// Extra latency of every response.
    pub latency: Duration,
    /// Seed mixed into every decision.
    pub seed: u64,
}

fn unit(key: IdempotencyKey, salt: u64, seed: u64) -> f64 {
    let mut buf = [0u8; 32];
    buf[..16].copy_from_slice(&key.0.to_le_bytes());
    buf[16..24].copy_from_slice(&salt.to_le_bytes());
    buf[24..].copy_from_slice(&seed.to_le_bytes());
    (xxhash_rust::xxh3::xxh3_64(&buf) >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultPlan {
    /// Whether the plan injects anything at all.
    pub fn is_quiet(&self) -> bool {
        self.transient <= 0.0 && self.permanent <= 0.0 && self.throttle <= 0.0 && self.latency.is_zero()
    }

    /// Whether the recipient with `key` is refused on every attempt.
    pub fn is_permanent(&self, key: IdempotencyKey) -> bool {
        self.permanent > 0.0 && unit(key, u64::MAX, self.seed) < self.permanent
    }

    /// The verdict on attempt `attempt` of the recipient with `key`.
    pub fn decide(&self, key: IdempotencyKey, attempt: u32) -> Verdict {
        if self.is_permanent(key) {
            return Verdict::Permanent;
        }
        if self.transient <= 0.0 && self.throttle <= 0.0 {
            return Verdict::Accept;
        }
        let u = unit(key, u64::from(attempt), self.seed);
        if u < self.transient {
            Verdict::Transient
        } else if u < self.transient + self.throttle {
            Verdict::Throttle
        } else {
            Verdict::Accept
        }
    }

    /// The verdict as the failure class a deliverer would have seen.
    pub fn class(&self, v: Verdict) -> Option<FailureClass> {
        match v {
            Verdict::Accept => None,
            Verdict::Transient => Some(FailureClass::Transient),
            Verdict::Throttle => Some(FailureClass::Throttled { retry_after: Some(self.retry_after) }),
            Verdict::Permanent => Some(FailureClass::Permanent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_hold_and_permanence_is_per_recipient() {
        let plan = FaultPlan { transient: 0.05, permanent: 0.01, throttle: 0.02, seed: 3, ..FaultPlan::default() };
        let n = 200_000u32;
        let mut counts = [0u32; 4];
        for i in 0..n {
            let key = IdempotencyKey::derive("job", &format!("r{i}"));
            let v = plan.decide(key, 1);
            counts[v as usize] += 1;
            if v == Verdict::Permanent {
                assert_eq!(plan.decide(key, 5), Verdict::Permanent);
            }
        }
        let share = |c: u32| f64::from(c) / f64::from(n);
        assert!((share(counts[Verdict::Permanent as usize]) - 0.01).abs() < 0.002);
        assert!((share(counts[Verdict::Transient as usize]) - 0.05 * 0.99).abs() < 0.004);
        assert!((share(counts[Verdict::Throttle as usize]) - 0.02 * 0.99).abs() < 0.003);
    }
}
