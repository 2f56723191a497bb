//! The engine's clock. AWS delays (visibility timeouts, `DelaySeconds`, batching windows,
//! function timeouts) are simulated seconds; `speed` says how many pass per real second, so
//! a test can run a 15-minute retry schedule in a second. At speed 1 the engine runs in
//! real time.

use std::time::{Duration, Instant};

/// Simulated time since the engine started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    speed: f64,
}

impl Clock {
    /// A clock running `speed` simulated seconds per real second (≥ 1).
    pub fn new(speed: f64) -> Self {
        Self { origin: Instant::now(), speed: speed.max(1.0) }
    }

    /// Simulated seconds per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Simulated time elapsed.
    pub fn now(&self) -> Duration {
        self.origin.elapsed().mul_f64(self.speed)
    }

    /// How long `sim` simulated time lasts in real time.
    pub fn real(&self, sim: Duration) -> Duration {
        sim.div_f64(self.speed)
    }

    /// Sleeps for `sim` simulated time.
    pub async fn sleep(&self, sim: Duration) {
        tokio::time::sleep(self.real(sim)).await;
    }
}
