//! Delivery reports, one per batch: every record of a batch shares one [`BatchState`], and a
//! record's [`DeliveryFuture`] is that state plus the record's index in the batch. Resolving
//! a batch is one store and one wake-up per waiting task, whatever its record count.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::RecordMetadata;
use crate::client::ClientError;

/// How a batch ended.
#[derive(Debug, Clone)]
struct Outcome {
    result: Result<Ack, ClientError>,
    /// When the answer arrived (or the batch failed): one clock read per batch, so callers
    /// can measure per-record latency from their own send times.
    at: Instant,
}

/// A successful batch: where its first record went.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ack {
    /// -1 with acks none (the broker does not answer).
    pub base_offset: i64,
    /// The broker's LogAppendTime, or -1 for CreateTime topics.
    pub log_append_time: i64,
}

/// What the records of one batch share.
#[derive(Debug)]
pub(super) struct BatchState {
    topic: String,
    partition: u32,
    outcome: OnceLock<Outcome>,
    /// Tasks waiting on a record of the batch; a future keeps its slot across polls.
    wakers: Mutex<Vec<Option<Waker>>>,
}

impl BatchState {
    pub fn new(topic: String, partition: u32) -> Arc<BatchState> {
        Arc::new(BatchState {
            topic,
            partition,
            outcome: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        })
    }

    pub fn is_done(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// Resolves every record of the batch; later calls do nothing (the first outcome wins).
    pub fn complete(&self, result: Result<Ack, ClientError>) {
        if self.is_done() {
            return;
        }
        let outcome = Outcome {
            result,
            at: Instant::now(),
        };
        if self.outcome.set(outcome).is_err() {
            return;
        }
        // Set before the lock is taken: a poll that registered finds its waker here, and a
        // poll that comes later sees the outcome.
        let wakers = std::mem::take(&mut *self.lock_wakers());
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    fn lock_wakers(&self) -> std::sync::MutexGuard<'_, Vec<Option<Waker>>> {
        // A panic while holding this lock leaves the Vec valid: keep going.
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Owns a batch's outcome until it is decided: dropped undecided (the producer went away, the
/// runtime shut down), it fails the batch with `Closed` so no `DeliveryFuture` waits forever.
#[derive(Debug)]
pub(super) struct Unresolved(pub Arc<BatchState>);

impl Drop for Unresolved {
    fn drop(&mut self) {
        self.0.complete(Err(ClientError::Closed));
    }
}

/// Resolves when the record's batch was acknowledged (per `acks`) or failed for good.
pub struct DeliveryFuture {
    state: Arc<BatchState>,
    index: u32,
    /// The record's CreateTime, reported unless the topic uses LogAppendTime.
    timestamp: i64,
    slot: Option<usize>,
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.state.topic)
            .field("partition", &self.state.partition)
            .field("index", &self.index)
            .field("done", &self.state.is_done())
            .finish()
    }
}

impl DeliveryFuture {
    pub(super) fn new(state: Arc<BatchState>, index: u32, timestamp: i64) -> DeliveryFuture {
        DeliveryFuture {
            state,
            index,
            timestamp,
            slot: None,
        }
    }

    #[cfg(test)]
    pub(super) fn state_for_tests(&self) -> Arc<BatchState> {
        self.state.clone()
    }

    /// The outcome without waiting: `None` while the record's batch is in flight.
    pub fn try_result(&self) -> Option<Result<RecordMetadata, ClientError>> {
        self.state.outcome.get().map(|o| self.metadata(o))
    }

    /// When the record's batch was acknowledged (`Ok`, the instant its answer arrived; with
    /// acks none, when it was written to the socket) or why it failed; `None` while in flight.
    /// Cheaper than [`try_result`](Self::try_result) (no metadata built), for callers that
    /// measure latency from their own send times.
    pub fn acknowledged_at(&self) -> Option<Result<Instant, ClientError>> {
        self.state
            .outcome
            .get()
            .map(|o| o.result.as_ref().map(|_| o.at).map_err(Clone::clone))
    }

    fn metadata(&self, outcome: &Outcome) -> Result<RecordMetadata, ClientError> {
        let ack = outcome.result.as_ref().map_err(Clone::clone)?;
        Ok(RecordMetadata {
            topic: self.state.topic.clone(),
            partition: self.state.partition,
            offset: if ack.base_offset < 0 {
                -1
            } else {
                ack.base_offset + i64::from(self.index)
            },
            timestamp: if ack.log_append_time >= 0 {
                ack.log_append_time
            } else {
                self.timestamp
            },
        })
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.state.outcome.get() {
            return Poll::Ready(self.metadata(outcome));
        }
        let state = self.state.clone();
        let mut wakers = state.lock_wakers();
        // Checked again under the lock: `complete` sets the outcome before taking it.
        if let Some(outcome) = state.outcome.get() {
            drop(wakers);
            return Poll::Ready(self.metadata(outcome));
        }
        match self.slot {
            Some(slot) if slot < wakers.len() => match &mut wakers[slot] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                entry => *entry = Some(cx.waker().clone()),
            },
            _ => {
                wakers.push(Some(cx.waker().clone()));
                self.slot = Some(wakers.len() - 1);
            }
        }
        Poll::Pending
    }
}

impl Drop for DeliveryFuture {
    fn drop(&mut self) {
        // Give the slot's waker back, so a dropped future does not keep its task alive.
        if let Some(slot) = self.slot {
            if let Some(entry) = self.state.lock_wakers().get_mut(slot) {
                *entry = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_completion_resolves_every_record_of_the_batch() {
        let state = BatchState::new("t".into(), 3);
        let futures: Vec<_> = (0..3)
            .map(|i| DeliveryFuture::new(state.clone(), i, 100 + i64::from(i)))
            .collect();
        assert!(futures[0].try_result().is_none());
        let waiter = tokio::spawn(async move {
            let mut out = Vec::new();
            for f in futures {
                out.push(f.await);
            }
            out
        });
        tokio::task::yield_now().await;
        state.complete(Ok(Ack {
            base_offset: 10,
            log_append_time: -1,
        }));
        state.complete(Err(ClientError::Closed)); // ignored: the first outcome wins
        let results = waiter.await.unwrap();
        let offsets: Vec<_> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|m| (m.partition, m.offset, m.timestamp))
                    .unwrap()
            })
            .collect();
        assert_eq!(offsets, [(3, 10, 100), (3, 11, 101), (3, 12, 102)]);
    }

    #[tokio::test]
    async fn failures_and_log_append_time_reach_every_record() {
        let state = BatchState::new("t".into(), 0);
        let f = DeliveryFuture::new(state.clone(), 1, 5);
        state.complete(Ok(Ack {
            base_offset: 0,
            log_append_time: 77,
        }));
        assert_eq!(f.await.unwrap().timestamp, 77);
        let failed = BatchState::new("t".into(), 0);
        let f = DeliveryFuture::new(failed.clone(), 0, 5);
        drop(Unresolved(failed)); // undecided when dropped: Closed
        assert!(matches!(
            f.acknowledged_at(),
            Some(Err(ClientError::Closed))
        ));
        assert_eq!(f.await, Err(ClientError::Closed));
    }
}
