//! Waits with microsecond precision, for the rate schedule.
//!
//! Tokio's timer wheel ticks once a millisecond and rounds a deadline up to the next tick, so
//! a record due at `t` would leave 0-1 ms after `t`. The e2e latency is measured from the
//! intended send time, so every record would carry that lateness of the harness as if the
//! system under test had added it (at 1,000 records/s it was most of the measured p50).
//!
//! A thread of the pacer's own sleeps to each deadline (`nanosleep`, with the thread's timer
//! slack at 1 µs instead of Linux's 50 µs default) and then wakes the waiting task. A timerfd
//! in the runtime's reactor would save the thread, but registering a raw descriptor with
//! tokio takes `unsafe`, which this crate does not allow.

use std::num::NonZeroU64;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A deadline closer than this is treated as reached. Each wait costs two thread wake-ups
/// (some 10-20 µs of CPU on a small VM); this bounds them to 4,000 a second, which at high
/// rates means sending a burst of up to this long ahead of the schedule instead of one
/// wake-up per record. The caller stamps such a record with the time it was really sent.
pub const RESOLUTION: Duration = Duration::from_micros(250);

type Wait = (Instant, oneshot::Sender<()>);

#[derive(Debug)]
pub struct Pacer {
    /// None when the thread could not be started (the waits fall back to tokio's timer).
    waits: Option<mpsc::Sender<Wait>>,
}

impl Pacer {
    /// Starts the pacer's thread; it ends when the pacer is dropped.
    pub fn new() -> Pacer {
        let (waits, pending) = mpsc::channel::<Wait>();
        let started = std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1_000));
                while let Ok((due, done)) = pending.recv() {
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let _ = done.send(());
                }
            });
        match started {
            Ok(_) => Pacer { waits: Some(waits) },
            Err(e) => {
                tracing::debug!(error = %e, "no pacer thread: the schedule uses tokio's 1 ms timer");
                Pacer { waits: None }
            }
        }
    }

    /// Returns at `due` (within microseconds), or at once if it has passed.
    pub async fn sleep_until(&self, due: Instant) {
        if due <= Instant::now() {
            return;
        }
        let (done, woken) = oneshot::channel();
        let queued = self
            .waits
            .as_ref()
            .is_some_and(|waits| waits.send((due, done)).is_ok());
        if !queued || woken.await.is_err() {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_at_once_for_a_past_deadline_and_not_before_a_future_one() {
        let pacer = Pacer::new();
        assert!(pacer.waits.is_some(), "the pacer thread should start");
        pacer.sleep_until(Instant::now()).await;
        for _ in 0..3 {
            let due = Instant::now() + Duration::from_micros(300);
            pacer.sleep_until(due).await;
            assert!(Instant::now() >= due);
        }
    }
}
