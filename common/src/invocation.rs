//! Facts about one function invocation that producer and worker read the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Lambda's longest timeout: the budget assumed when a runtime gives no usable deadline.
pub const MAX_INVOCATION: Duration = Duration::from_secs(900);

/// The invocation's deadline as an `Instant`. Lambda always gives a deadline in the future;
/// a deadline already past at the start (`cargo lambda watch` sends the constant
/// `600000`, i.e. 1970) is not a deadline, and the longest Lambda timeout is assumed.
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    match deadline.duration_since(SystemTime::now()) {
        Ok(left) if !left.is_zero() => Instant::now() + left,
        _ => {
            tracing_warn_once();
            Instant::now() + MAX_INVOCATION
        }
    }
}

static WARNED: AtomicBool = AtomicBool::new(false);

fn tracing_warn_once() {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            assumed_s = MAX_INVOCATION.as_secs(),
            "the runtime gave a deadline in the past; assuming Lambda's longest timeout"
        );
    }
}

/// Whether this is the first invocation of the process (a cold start). True once.
pub fn cold_start() -> bool {
    static COLD: AtomicBool = AtomicBool::new(true);
    COLD.swap(false, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_deadline_is_kept_and_a_past_one_replaced() {
        let soon = deadline_instant(SystemTime::now() + Duration::from_secs(10));
        let left = soon.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
        let bogus = deadline_instant(SystemTime::UNIX_EPOCH + Duration::from_millis(600_000));
        assert!(bogus.saturating_duration_since(Instant::now()) > Duration::from_secs(899));
    }
}
