//! Exponential backoff with jitter, for reconnects and retries.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays that double from `initial` up to `max`, each drawn uniformly from the upper half of
/// its step ("equal jitter"), so clients that lost the same broker do not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let jitter_ns = random_u64() % (half.as_nanos() as u64 + 1);
        half + Duration::from_nanos(jitter_ns)
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A random number without a dependency: std's per-instance random hasher keys.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_bounds_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for max_ms in bounds {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(max_ms / 2), "{d:?}");
            assert!(d <= Duration::from_millis(max_ms), "{d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
