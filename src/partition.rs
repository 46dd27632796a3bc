//! One partition replica on its owning shard: the log plus the high watermark that readers
//! wait on. Single node today, so "committed" means "durable on this broker"; with Raft the
//! high watermark follows the Raft commit index instead.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use storage::batch::ValidatedBatch;
use storage::{PartitionLog, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::producer::state::ProducerStates;

/// Leader epoch of every partition on a single-node broker (the Raft term, once replicated).
pub const LEADER_EPOCH: i32 = 0;

#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: PartitionLog,
    /// The high watermark, published so fetches on any shard can wait for it to move.
    high_watermark: watch::Sender<u64>,
    /// Idempotent producers' sequences, checked and updated around every append.
    pub producers: RefCell<ProducerStates>,
}

impl Partition {
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        log: PartitionLog,
        producers: ProducerStates,
    ) -> Rc<Self> {
        // Everything recovered from disk is durable, hence committed.
        log.set_high_watermark(log.log_end_offset());
        let (high_watermark, _) = watch::channel(log.high_watermark());
        Rc::new(Partition {
            topic,
            topic_id,
            index,
            log,
            high_watermark,
            producers: RefCell::new(producers),
        })
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// Appends validated batches; returns the base offset of the first.
    pub fn append(&self, batches: Vec<ValidatedBatch>) -> Result<(u64, u64), StorageError> {
        let mut first = None;
        let mut end = self.log.log_end_offset();
        for batch in batches {
            let info = self.log.append_validated(batch, LEADER_EPOCH)?;
            first.get_or_insert(info.base_offset);
            end = info.last_offset + 1;
        }
        Ok((first.unwrap_or(end), end))
    }

    /// Waits until `end` is committed (durable), then advances the high watermark.
    pub async fn commit(&self, end: u64) -> Result<(), StorageError> {
        self.log.wait_durable(end).await?;
        self.advance_high_watermark();
        Ok(())
    }

    fn advance_high_watermark(&self) {
        let durable = self.log.durable_offset();
        if durable > self.log.high_watermark() {
            self.log.set_high_watermark(durable);
        }
        let hw = self.log.high_watermark();
        self.high_watermark.send_if_modified(|current| {
            let changed = *current != hw;
            *current = hw;
            changed
        });
    }

    /// Starts the commit of `end` in the background (acks 0 and 1 do not wait for it, but
    /// consumers only see data once it is committed).
    pub fn commit_in_background(self: &Rc<Self>, end: u64) {
        let partition = self.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = partition.commit(end).await {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "background flush failed");
            }
        });
    }

    /// The last stable offset: the high watermark, or the first offset of the oldest open
    /// transaction when that is lower (read_committed consumers stop there).
    pub fn last_stable_offset(&self) -> u64 {
        let hw = self.log.high_watermark();
        match self.producers.borrow().first_unstable_offset() {
            Some(first) => hw.min(first.max(0) as u64),
            None => hw,
        }
    }

    /// Appends a transaction marker (commit or abort) for `producer_id` and ends its open
    /// transaction here; returns the end offset to commit.
    pub fn write_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<u64, StorageError> {
        let now = crate::cluster::metadata::now_ms();
        let batch = crate::producer::marker::control_batch(
            producer_id,
            epoch,
            commit,
            coordinator_epoch,
            now,
        )
        .map_err(StorageError::InvalidBatch)?;
        let (base, end) = self.append(vec![batch])?;
        self.producers
            .borrow_mut()
            .apply_marker(producer_id, epoch, commit, base as i64, now);
        Ok(end)
    }

    /// Saves the producer state as of the log end (at shutdown and periodically, so recovery
    /// replays only what came after).
    pub fn snapshot_producers(&self) {
        let producers = self.producers.borrow();
        if producers.producers.is_empty() {
            return;
        }
        if let Err(e) = producers.save(self.log.dir(), self.log.log_end_offset()) {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot save producer state");
        }
    }

    /// Publishes a high watermark change made by maintenance (DeleteRecords, truncation).
    pub fn publish_high_watermark(&self) {
        self.advance_high_watermark();
    }
}
